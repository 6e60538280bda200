"""End to end, supervised live Codex and Gemini: a real server and daemon, the pinned
``codex app-server`` / ``gemini --acp`` against their scripted models, and an MCP client
answering their permission requests with the ``approve`` tool.

Each test's agent environment carries a marker variable: once the server and daemon are gone,
no process of the test may be left in ``/proc``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import pathlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from _support import procs
from _support.agent_clis import (
    GEMINI_MODEL,
    codex_env,
    codex_executable,
    gemini_env,
    gemini_executable,
)
from _support.polling import eventually as _eventually
from _support.scripted_codex import ShellCall, open_scripted_codex_model
from _support.scripted_gemini import ShellCommand, open_scripted_gemini_model
from _support.scripted_model import Reply
from _support.sdk_tasks import events, ok
from _support.task_server import Env, task_server
from mcp import Client

pytestmark = [pytest.mark.agent_cli, pytest.mark.slow]

MARKER = "CODING_AGENT_TEST_RUN"
DEADLINE_S = 90.0
eventually = functools.partial(_eventually, timeout=DEADLINE_S)


@contextlib.asynccontextmanager
async def serving(tmp: pathlib.Path, env: dict[str, str]) -> AsyncIterator[tuple[Env, Client, str]]:
    """Daemon + server running the agent with ``env``, an SDK client, and the marker of the
    agents' processes; afterwards no process of the test is left."""
    marker = uuid.uuid4().hex
    env = {**env, MARKER: marker}
    try:
        async with (
            task_server(tmp, daemon_env=env) as served,
            Client(served.client.url, mode="legacy") as sdk,
        ):
            yield served, sdk, marker
    finally:
        await eventually(
            lambda: not procs.marked_processes(MARKER, marker), "no agent process left"
        )


async def until(sdk: Client, task_id: str, *statuses: str) -> dict[str, Any]:
    """wait_task until the task's status is one of ``statuses``."""
    with trio.fail_after(DEADLINE_S):
        while True:
            task = await ok(sdk, "wait_task", id=task_id, timeout_s=20)
            if task["status"] in statuses:
                return task
            assert task["status"] in ("in_progress", "input_required"), task


async def approve_all_then_finish(sdk: Client, task_id: str) -> dict[str, Any]:
    """Approve every request of the task's turn until it ended; the ended task."""
    while True:
        task = await until(sdk, task_id, "input_required", "waiting", "completed", "failed")
        if task["status"] != "input_required":
            return task
        for pending in task["pending_approvals"]:
            await ok(sdk, "approve", id=task_id, request_id=pending["request_id"], decision="allow")


async def test_codex_command_approved_then_a_follow_up_after_an_interrupt(
    tmp_path: pathlib.Path,
) -> None:
    """A live Codex task: its command waits input_required, approve runs it; a second command
    interrupted mid-run ends Codex's process; the follow-up resumes the thread in a new process,
    its command is asked and approved like the first, and the model still sees the first turn."""
    async with open_scripted_codex_model() as model:
        model.script(ShellCall("echo approved > out.txt"), Reply("Wrote out.txt."))
        model.script(ShellCall("sleep 3000"))
        model.script(ShellCall("echo again > again.txt"), Reply("You asked me for out.txt first."))
        env = codex_env(model.base_url, tmp_path / "home") | {"CODEX_PATH": codex_executable()}
        async with serving(tmp_path, env) as (served, sdk, marker):
            created = await ok(
                sdk, "create_task", title="live codex", instructions="Write out.txt.", agent="codex"
            )
            assert created["live"] is True, created
            task_id = created["task_id"]
            (pending,) = (await until(sdk, task_id, "input_required"))["pending_approvals"]
            assert (pending["tool_name"], pending["input"]) == (
                "Bash",
                {"command": "echo approved > out.txt"},
            )
            done = await approve_all_then_finish(sdk, task_id)
            assert (done["status"], done["report"]["outcome"]) == ("waiting", "success"), done
            assert (served.root / "out.txt").read_text() == "approved\n"
            decided = [e["data"] for e in await events(sdk, task_id) if e["kind"] == "approval"]
            assert [(d["decided_by"], d["behavior"]) for d in decided] == [("client", "allow")]

            await ok(sdk, "update_task", id=task_id, instructions="Now wait a long time.")
            (pending,) = (await until(sdk, task_id, "input_required"))["pending_approvals"]
            await ok(sdk, "approve", id=task_id, request_id=pending["request_id"], decision="allow")
            await eventually(lambda: bool(_running(marker, "sleep")), "the command running")
            interrupted = await ok(sdk, "interrupt_task", id=task_id)
            assert interrupted["status"] == "waiting", interrupted
            assert interrupted["report"]["outcome"] == "interrupted"
            await eventually(lambda: not procs.marked_processes(MARKER, marker), "codex gone")

            await ok(sdk, "update_task", id=task_id, instructions="What did I ask first?")
            # Codex counts its request ids from 0 again in the new process: still a new request.
            (pending,) = (await until(sdk, task_id, "input_required"))["pending_approvals"]
            assert pending["input"] == {"command": "echo again > again.txt"}
            again = await approve_all_then_finish(sdk, task_id)
            assert again["report"]["outcome"] == "success", again
            assert (served.root / "again.txt").read_text() == "again\n"
            assert again["session_id"] == done["session_id"]
            assert again["report"]["final_text"] == "You asked me for out.txt first."
            assert "Write out.txt." in json.dumps(model.main_requests[-1]["input"])


def _running(marker: str, name: str) -> list[int]:
    return [pid for pid, command in procs.marked_processes(MARKER, marker) if command == name]


async def test_gemini_command_approved_and_the_next_turn_remembers(
    tmp_path: pathlib.Path,
) -> None:
    """A live Gemini task: its command waits input_required, approve runs it; the follow-up
    goes to the same live session and the model sees the first turn."""
    async with open_scripted_gemini_model() as model:
        model.script(ShellCommand("echo approved > out.txt"), Reply("Wrote out.txt."))
        model.script(Reply("You asked me for out.txt first."))
        env = gemini_env(model.base_url, tmp_path / "home") | {
            "GEMINI_PATH": gemini_executable(),
            "GEMINI_CLI_NO_RELAUNCH": "1",
        }
        async with serving(tmp_path, env) as (served, sdk, _):
            created = await ok(
                sdk,
                "create_task",
                title="live gemini",
                instructions="Write out.txt.",
                agent="gemini",
                model=GEMINI_MODEL,
            )
            assert created["live"] is True, created
            task_id = created["task_id"]
            (pending,) = (await until(sdk, task_id, "input_required"))["pending_approvals"]
            assert (pending["tool_name"], pending["input"]) == (
                "Bash",
                {"command": "echo approved > out.txt"},
            )
            done = await approve_all_then_finish(sdk, task_id)
            assert (done["status"], done["report"]["outcome"]) == ("waiting", "success"), done
            assert (served.root / "out.txt").read_text() == "approved\n"

            await ok(sdk, "update_task", id=task_id, instructions="What did I ask first?")
            again = await until(sdk, task_id, "waiting", "completed", "failed")
            assert again["report"]["final_text"] == "You asked me for out.txt first.", again
            assert again["session_id"] == done["session_id"]
            assert "Write out.txt." in json.dumps(model.main_requests[-1]["contents"])
