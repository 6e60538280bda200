"""Runs that outlive their stream, through a real daemon and a real runner: a stream cut
mid-run (a TCP proxy between them) and a runner restarted mid-run re-attach and record every
event once; a daemon that does not know the run, or stays unreachable past its grace, ends the
run ``interrupted`` saying why; ``end_task`` while the daemon is unreachable cancels the run
once it answers."""

from __future__ import annotations

import contextlib
import functools
import json
import pathlib
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any

import trio
from _support.polling import eventually
from _support.split_up import free_port
from _support.task_server import Env, all_events, task_daemon, task_server, wait_done
from _support.tcp_proxy import TcpProxy, tcp_proxy

from host_daemon._proc import read_stat
from mcp_server._tasks import DaemonEndpoint, TaskRunner, TaskStore, Workspace
from mcp_server._tasks._model import Task, TaskOptions, new_task, start_run
from mcp_server._tasks._reattach import run_so_far

RUN_ID = "0123456789abcdef0123456789abcdef"
GRACE = {"detach_grace_s": 60.0}
DEADLINE_S = 60.0


def steps(env: Env, count: int) -> str:
    """A prompt that says ``step i`` once ``steps/i`` exists, for i in 1..count (``step``)."""
    (env.root / "steps").mkdir(exist_ok=True)
    return f"steps {env.root / 'steps'} {count}"


def step(env: Env, name: str) -> None:
    (env.root / "steps" / name).write_text("go")


async def said(env: Env, task_id: str, text: str) -> int:
    """How many of the task's events say ``text``."""
    return sum(text in e["summary"] for e in await all_events(env.client, task_id))


def stored(state: pathlib.Path, task_id: str) -> list[dict[str, Any]]:
    path = state / "tasks" / f"{task_id}.events.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_each_once(state: pathlib.Path, task_id: str) -> None:
    """The log's seq runs 1..n and the run's frames were recorded 1..m, once each."""
    events = stored(state, task_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    numbers = [e["daemon_seq"] for e in events if "daemon_seq" in e]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert numbers, "no event recorded a daemon frame"


def alive(pid: int) -> bool:
    status = read_stat(pid)
    return status is not None and status.alive


async def run_pid(env: Env, task_id: str) -> int:
    started = [e for e in await all_events(env.client, task_id) if e["kind"] == "run_started"]
    pid: int = started[-1]["data"]["pid"]
    return pid


@contextlib.asynccontextmanager
async def proxied(tmp_path: pathlib.Path) -> AsyncIterator[tuple[Env, TcpProxy]]:
    """A task server whose runner reaches the daemon through a proxy the test can cut."""
    async with (
        task_daemon(tmp_path, **GRACE) as daemon,
        tcp_proxy(daemon.host, daemon.port) as proxy,
        task_server(tmp_path, daemon=daemon, port=proxy.port) as env,
    ):
        yield env, proxy


async def test_a_cut_stream_is_reattached_and_each_event_recorded_once(
    tmp_path: pathlib.Path,
) -> None:
    """The connection to the daemon drops mid-run: the runner re-attaches, the frames sent
    meanwhile are recorded once, and the turn ends waiting."""
    async with proxied(tmp_path) as (env, proxy):
        task_id = (await env.client.ok("create_task", title="t", instructions=steps(env, 3)))[
            "task_id"
        ]
        step(env, "1")
        await eventually(lambda: env.runner.last_seq(task_id) >= 4, "step 1 to be recorded")
        proxy.refusing = True
        proxy.sever()
        step(env, "2")  # said while no stream is attached: spooled by the daemon
        assert env.runner.get(task_id).status == "in_progress"
        proxy.refusing = False
        with trio.fail_after(DEADLINE_S):
            while await said(env, task_id, "step 2") == 0:  # noqa: ASYNC110 (the log)
                await trio.sleep(0.05)
        step(env, "3")
        step(env, "done")
        task = await wait_done(env.client, task_id)
        assert task["status"] == "waiting", task
        for text in ("step 1", "step 2", "step 3"):
            assert await said(env, task_id, text) == 1
        assert_each_once(env.state, task_id)
        assert proxy.accepted >= 3  # the run, at least one re-attach, … (probes too)


async def test_a_restarted_runner_reattaches_to_its_run(tmp_path: pathlib.Path) -> None:
    """The runner stops mid-run (detaching, no cancel): the run goes on in the daemon, and the
    next runner re-attaches, records what it missed once, and the turn ends waiting."""
    async with task_daemon(tmp_path, **GRACE) as daemon:
        async with task_server(tmp_path, daemon=daemon) as env:
            task_id = (await env.client.ok("create_task", title="t", instructions=steps(env, 2)))[
                "task_id"
            ]
            step(env, "1")
            await eventually(lambda: env.runner.last_seq(task_id) >= 4, "step 1 to be recorded")
            pid = await run_pid(env, task_id)
        assert json.loads((env.state / "tasks" / f"{task_id}.json").read_text())["status"] == (
            "in_progress"
        )
        assert alive(pid)
        step(env, "2")
        step(env, "done")
        async with task_server(tmp_path, daemon=daemon) as env:
            task = await wait_done(env.client, task_id)
            assert task["status"] == "waiting", task
            assert task["report"]["final_text"] == "stepped"
            for text in ("step 1", "step 2"):
                assert await said(env, task_id, text) == 1
            assert_each_once(env.state, task_id)


async def test_a_run_detached_past_the_grace_is_interrupted_saying_so(
    tmp_path: pathlib.Path,
) -> None:
    """Nobody re-attaches within the daemon's detach grace: the daemon ends the run; the next
    runner gets its end and records the turn interrupted with the daemon's reason."""
    async with task_daemon(tmp_path, detach_grace_s=1.0, finished_spool_s=60.0) as daemon:
        async with task_server(tmp_path, daemon=daemon) as env:
            task_id = (await env.client.ok("create_task", title="t", instructions=steps(env, 2)))[
                "task_id"
            ]
            step(env, "1")
            await eventually(lambda: env.runner.last_seq(task_id) >= 4, "step 1 to be recorded")
            pid = await run_pid(env, task_id)
        await eventually(lambda: not alive(pid), "the grace to end the run", timeout=DEADLINE_S)
        async with task_server(tmp_path, daemon=daemon) as env:
            task = await wait_done(env.client, task_id)
            assert task["status"] == "interrupted", task
            assert "detached for longer than the 1 s grace" in task["report"]["error"]
            assert_each_once(env.state, task_id)


async def test_end_task_while_the_daemon_is_unreachable_cancels_the_run_later(
    tmp_path: pathlib.Path,
) -> None:
    """end_task while the run's stream is cut and the daemon unreachable: the task completes
    at once, and the run is cancelled by id as soon as the daemon answers again."""
    async with proxied(tmp_path) as (env, proxy):
        task_id = (await env.client.ok("create_task", title="t", instructions=steps(env, 2)))[
            "task_id"
        ]
        step(env, "1")
        await eventually(lambda: env.runner.last_seq(task_id) >= 4, "step 1 to be recorded")
        pid = await run_pid(env, task_id)
        proxy.refusing = True
        proxy.sever()
        ended = await env.client.ok("end_task", id=task_id)
        assert ended["status"] == "completed"
        assert alive(pid)  # the daemon kept it: nothing reached it yet
        proxy.refusing = False
        await eventually(lambda: not alive(pid), "the run to be cancelled", timeout=DEADLINE_S)
        assert await said(env, task_id, "step 2") == 0


async def running_record(state: pathlib.Path, cwd: str) -> Task:
    """A task recorded in_progress with a detachable run (as a server killed mid-run left it)."""
    store = TaskStore(state)
    await store.load()
    task = new_task(
        title="t",
        instructions="go",
        agent="claude",
        project_dir="",
        cwd=cwd,
        options=TaskOptions(),
        now=store.clock.wall(),
    )
    await store.create(task)
    started = await store.commit(task.id, lambda t: start_run(t, t.created_at, run_id=RUN_ID))
    store.append_event(task.id, kind="run_started", summary="run started", daemon_seq=1)
    await store.save(task.id)
    return started


async def follow(state: pathlib.Path, endpoint: DaemonEndpoint, task_id: str, **kw: Any) -> Task:
    """Run a runner on ``state`` until the task's run ended; its record."""
    root = PurePosixPath(state.parent / "root")
    runner = TaskRunner(functools.partial(TaskStore, state), endpoint, Workspace(root, root), **kw)
    await runner.store.load()
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        task = await runner.wait(task_id, DEADLINE_S)
        nursery.cancel_scope.cancel()
    return task


async def test_a_run_the_daemon_does_not_know_is_interrupted_with_its_reason(
    tmp_path: pathlib.Path,
) -> None:
    """Re-attaching to a run the daemon does not have (``unknown_run``): interrupted, and the
    report says what the daemon said."""
    state = tmp_path / "state"
    task = await running_record(state, str(tmp_path / "root"))
    async with task_daemon(tmp_path, **GRACE) as daemon:
        endpoint = DaemonEndpoint(daemon.host, daemon.port, daemon.token)
        ended = await follow(state, endpoint, task.id)
    assert ended.status == "interrupted"
    assert ended.report is not None
    assert ended.report.error is not None
    assert ended.report.error.startswith("the host daemon no longer has the run: ")


async def test_an_unreachable_daemon_past_its_grace_interrupts_the_run(
    tmp_path: pathlib.Path,
) -> None:
    """No daemon answers: re-attaching is retried until the daemon's detach grace has passed,
    then the run is recorded interrupted, saying the daemon was unreachable."""
    state = tmp_path / "state"
    task = await running_record(state, str(tmp_path / "root"))
    endpoint = DaemonEndpoint("127.0.0.1", free_port(), "no-daemon-listens-here")
    ended = await follow(state, endpoint, task.id, detach_grace_s=1.0)
    assert ended.status == "interrupted"
    assert ended.report is not None
    assert "the host daemon was unreachable for longer than its 1 s detach grace" in (
        ended.report.error or ""
    )


async def test_the_log_says_how_far_the_run_was_recorded(tmp_path: pathlib.Path) -> None:
    """Read back from the log's end to the run's start: the run's last frame recorded, and the
    events its report needs (an earlier run's frames do not count)."""
    store = TaskStore(tmp_path)
    await store.load()
    task = new_task(
        title="t",
        instructions="go",
        agent="claude",
        project_dir="",
        cwd="/w",
        options=TaskOptions(),
        now=store.clock.wall(),
    )
    await store.create(task)
    add = functools.partial(store.append_event, task.id)
    add(kind="turn", summary="turn 1", data={"turn": 1, "run_id": "a" * 32})
    for seq in (1, 2, 3, 4):
        add(kind="agent", summary=f"old {seq}", data={"kind": "text"}, daemon_seq=seq)
    marker = {"kind": "turn", "summary": "turn 2", "data": {"turn": 2, "run_id": RUN_ID}}
    task = await store.commit(
        task.id, lambda t: start_run(t, t.created_at, run_id=RUN_ID), lambda t: [marker]
    )
    assert (await run_so_far(store, task)).daemon_seq == 0  # nothing of this run yet
    add(kind="run_started", summary="run started", data={"pid": 1}, daemon_seq=1)
    add(kind="agent", summary="init", data={"kind": "init", "session_id": "s1"}, daemon_seq=2)
    edit = {"kind": "tool_use", "tool_name": "Edit", "tool_input": {"file_path": "/w/a.py"}}
    add(kind="agent", summary="edit", data=edit, daemon_seq=3)
    add(kind="steer", summary="steer: faster", data={"text": "faster"})
    await store.save(task.id)
    so_far = await run_so_far(store, task)
    assert so_far.daemon_seq == 3
    assert [(e.kind, e.session_id, e.tool_name) for e in so_far.seen] == [
        ("init", "s1", None),
        ("tool_use", None, "Edit"),
    ]
    started = (await store.read_events(task.id, 6, 1))[0]
    assert (started.kind, so_far.started_at) == ("run_started", started.time)


async def test_with_no_detach_grace_a_restart_interrupts_the_run(tmp_path: pathlib.Path) -> None:
    """A daemon with ``detach_grace_s=0`` ends a run when its stream ends, as before runs were
    detachable: the next runner records it interrupted."""
    async with task_daemon(tmp_path, detach_grace_s=0.0) as daemon:
        async with task_server(tmp_path, daemon=daemon) as env:
            task_id = (await env.client.ok("create_task", title="t", instructions=steps(env, 2)))[
                "task_id"
            ]
            step(env, "1")
            await eventually(lambda: env.runner.last_seq(task_id) >= 4, "step 1 to be recorded")
            pid = await run_pid(env, task_id)
        await eventually(lambda: not alive(pid), "the run to end with its stream")
        async with task_server(tmp_path, daemon=daemon) as env:
            task = await wait_done(env.client, task_id)
            assert task["status"] == "interrupted", task
            assert_each_once(env.state, task_id)


async def test_a_cancel_owed_at_a_restart_is_sent_by_the_next_server(
    tmp_path: pathlib.Path,
) -> None:
    """end_task while the daemon is unreachable, then the server restarts before it answers:
    the next server sends the cancel (it was stored), and the run's processes are gone."""
    async with (
        task_daemon(tmp_path, detach_grace_s=600.0) as daemon,
        tcp_proxy(daemon.host, daemon.port) as proxy,
    ):
        async with task_server(tmp_path, daemon=daemon, port=proxy.port) as env:
            task_id = (await env.client.ok("create_task", title="t", instructions=steps(env, 2)))[
                "task_id"
            ]
            step(env, "1")
            await eventually(lambda: env.runner.last_seq(task_id) >= 4, "step 1 to be recorded")
            pid = await run_pid(env, task_id)
            proxy.refusing = True
            proxy.sever()
            assert (await env.client.ok("end_task", id=task_id))["status"] == "completed"
        assert alive(pid)
        proxy.refusing = False
        async with task_server(tmp_path, daemon=daemon, port=proxy.port):
            await eventually(lambda: not alive(pid), "the run to be cancelled", timeout=DEADLINE_S)
        assert json.loads((tmp_path / "state" / "owed-cancels.json").read_text()) == {}
