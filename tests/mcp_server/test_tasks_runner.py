"""The task runner on a real daemon: races with follow-ups, and how often output is announced."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import pathlib
import sys
from collections.abc import AsyncIterator
from pathlib import PurePosixPath

import attrs
import pytest
import trio
import trio.testing
from _support.daemon import running_daemon

from mcp_server._tasks import (
    DaemonEndpoint,
    InvalidTransition,
    Listener,
    TaskChange,
    TaskNotFound,
    TaskOptions,
    TaskRunner,
    TaskStore,
    Workspace,
)
from mcp_server._tasks._runner import OUTPUT_NOTIFY_INTERVAL_S

STAND_IN = pathlib.Path(__file__).parents[1] / "e2e" / "stand_in_claude.py"
ROUNDS = 6
"""Trio orders the two woken tasks at random: each round has an even chance to hit the race."""


@attrs.define
class Env:
    runner: TaskRunner
    nursery: trio.Nursery
    listeners: list[Listener[TaskChange]]
    """What the runner's listener passes each change on to (a test sets them as it goes)."""


@contextlib.asynccontextmanager
async def runner_env(tmp_path: pathlib.Path) -> AsyncIterator[Env]:
    """A task runner on a real daemon running the stand-in ``claude``."""
    root = tmp_path / "root"
    root.mkdir()
    agent = tmp_path / "claude"
    agent.write_text(f"#!{sys.executable}\n{STAND_IN.read_text()}")
    agent.chmod(0o755)
    async with running_daemon(roots=[root], env={"CLAUDE_PATH": str(agent)}) as daemon:
        endpoint = DaemonEndpoint(host=daemon.host, port=daemon.port, token=daemon.token)
        listeners: list[Listener[TaskChange]] = []

        def relay(change: TaskChange) -> None:
            for listener in listeners:
                listener(change)

        runner = TaskRunner(
            functools.partial(TaskStore, tmp_path / "state"),
            endpoint,
            Workspace(PurePosixPath(root), PurePosixPath(root)),
            listener=relay,
        )
        await runner.store.load()
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            yield Env(runner, nursery, listeners)
            nursery.cancel_scope.cancel()


async def follow_up_quietly(runner: TaskRunner, task_id: str, instructions: str) -> None:
    """A follow-up that may lose the race (the task already ended or was deleted)."""
    with contextlib.suppress(InvalidTransition, TaskNotFound):
        await runner.follow_up(task_id, instructions)


async def create(runner: TaskRunner, instructions: str, project_dir: str | None = None) -> str:
    task = await runner.create(
        title="t",
        instructions=instructions,
        agent="claude",
        project_dir=project_dir,
        options=TaskOptions(),
    )
    return task.id


async def test_end_stops_a_follow_up_started_while_ending(tmp_path: pathlib.Path) -> None:
    """A follow-up started while end_task stops the run is stopped too; the task ends."""
    async with runner_env(tmp_path) as env:
        for _ in range(ROUNDS):
            task_id = await create(env.runner, "sleep 30")
            fired = False

            def on_change(change: TaskChange, task_id: str = task_id) -> None:
                nonlocal fired
                if change.task_id == task_id and change.kind == "transition" and not fired:
                    fired = True  # the run's end is recorded; end_task is about to resume
                    env.nursery.start_soon(follow_up_quietly, env.runner, task_id, "hello")

            env.listeners[:] = [on_change]
            with trio.fail_after(60):
                ended = await env.runner.end(task_id)
                assert ended.status == "completed"
                await trio.testing.wait_all_tasks_blocked()
            assert fired
            assert not env.runner.is_running(task_id)
            assert env.runner.get(task_id).status == "completed"


async def test_clean_stops_a_run_started_while_cleaning(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A follow-up started while clean_state stops another run is stopped before its delete."""
    async with runner_env(tmp_path) as env:
        for project in ("busy", "other"):  # two projects: both run at once
            (tmp_path / "root" / project).mkdir()
        running = await create(env.runner, "sleep 30", "busy")
        idle = await create(env.runner, "hello", "other")
        with trio.fail_after(60):
            await env.runner.wait(idle, 50)
        assert env.runner.get(idle).status == "waiting"

        def on_change(change: TaskChange) -> None:
            if change.task_id == running and change.kind == "transition":
                env.nursery.start_soon(follow_up_quietly, env.runner, idle, "sleep 30")

        env.listeners[:] = [on_change]
        with trio.fail_after(60):
            deleted = await env.runner.clean()
        assert deleted == 2
        assert env.runner.running() == 0
        assert env.runner.active_tasks() == []
        await trio.testing.wait_all_tasks_blocked()
        failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert failures == []  # a run whose task vanished under it fails "unexpectedly"


async def test_output_announced_at_a_bounded_rate(tmp_path: pathlib.Path) -> None:
    """A run printing thousands of events is announced at most every OUTPUT_NOTIFY_INTERVAL_S."""
    async with runner_env(tmp_path) as env:
        announced: list[float] = []

        def on_change(change: TaskChange) -> None:
            if change.kind == "output":
                announced.append(trio.current_time())

        env.listeners[:] = [on_change]
        task_id = await create(env.runner, "lines 40000")
        with trio.fail_after(60):
            await env.runner.wait(task_id, 50)
        assert env.runner.last_seq(task_id) > 40000
        assert len(announced) >= 2, announced  # the run spans several intervals
        gaps = [b - a for a, b in itertools.pairwise(announced)]
        assert min(gaps, default=OUTPUT_NOTIFY_INTERVAL_S) >= OUTPUT_NOTIFY_INTERVAL_S * 0.99, gaps
