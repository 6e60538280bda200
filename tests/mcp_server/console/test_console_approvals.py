"""Approvals and interrupts from the task CLI against a real ``coding-agent up`` whose daemon runs
the real Claude CLI live against the scripted model: ``tasks``/``show`` list pending requests,
``approve`` (with or without the request id) and ``interrupt`` reach the agent, ``logs -f``
shows the request and its decision, and refusals exit with docs/cli.md's codes."""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from _support.console_cli import Ran, World, cli_env, console_world, run_cli
from _support.scripted_model import BashCall, Reply, ScriptedModel, open_scripted_model

from mcp_server._console._client import ToolFailed
from mcp_server._console._commands import _only_pending

pytestmark = pytest.mark.claude_cli

WRITE = "python3 -c \"open('f.txt', 'w').write('written')\""


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with open_scripted_model() as scripted:
        yield scripted
        assert scripted.unexpected == []


@pytest.fixture
async def world(tmp_path: pathlib.Path, model: ScriptedModel) -> AsyncIterator[World]:
    async with console_world(tmp_path, model=model) as served:
        yield served


async def show(world: World, task_id: str) -> dict[str, Any]:
    ran = await world.cli("show", task_id, "--json")
    assert ran.code == 0, ran
    task: dict[str, Any] = json.loads(ran.out)
    return task


async def asking(world: World, model: ScriptedModel) -> tuple[str, str]:
    """A task whose agent asks to run ``WRITE``: its id and the pending request's id."""
    model.script(BashCall(WRITE, "write the file"), Reply("done"))
    ran = await world.cli("new", "--title", "needs bash", "write f.txt", "--json")
    assert ran.code == 0, ran
    task_id = json.loads(ran.out)["task_id"]
    found: dict[str, Any] = {}

    async def pending() -> bool:
        found.update(await show(world, task_id))
        return found["status"] == "input_required"

    with trio.fail_after(60):
        while not await pending():
            assert found["status"] == "in_progress", found
    return task_id, found["pending_approvals"][0]["request_id"]


async def ended(world: World, task_id: str) -> dict[str, Any]:
    """The task once its run ended (``logs -f`` follows it to its end)."""
    ran = await world.cli("logs", task_id, "-f")
    assert ran.code == 0, ran
    return await show(world, task_id)


async def test_tasks_and_show_list_the_pending_request(world: World, model: ScriptedModel) -> None:
    """``tasks`` and ``show`` show input_required, the request and how to answer it."""
    task_id, request_id = await asking(world, model)
    listing = await world.cli("tasks")
    assert listing.code == 0, listing
    row = next(line for line in listing.out.splitlines() if line.startswith(task_id))
    assert "input_required" in row
    assert "1 waiting for a decision:" in listing.out
    assert f"  {task_id} request {request_id}: Bash {WRITE}" in listing.out
    shown = await world.cli("show", task_id)
    assert shown.code == 0, shown
    assert "status:     input_required" in shown.out
    assert "waiting for a decision (1):" in shown.out
    assert f"  request {request_id}: Bash {WRITE}" in shown.out
    assert "    description: write the file" in shown.out
    assert "if nobody decides" in shown.out
    assert f"  answer: coding-agent approve {task_id} allow|deny" in shown.out
    await world.cli("approve", task_id, "deny")


async def test_approve_without_a_request_id_allows_the_only_one(
    world: World, model: ScriptedModel
) -> None:
    """``approve ID allow`` answers the one pending request: the command runs, the log says who."""
    task_id, request_id = await asking(world, model)
    ran = await world.cli("approve", task_id, "allow")
    assert ran.code == 0, ran
    assert ran.out.startswith(f"{task_id} allowed request {request_id}: status ")
    task = await ended(world, task_id)
    assert (task["status"], task["pending_approvals"]) == ("waiting", [])
    assert (world.root / "f.txt").read_text() == "written"
    logs = await world.cli("logs", task_id)
    assert "allow by the client (approve tool)" in logs.out


async def test_deny_with_a_message_reaches_the_model(world: World, model: ScriptedModel) -> None:
    """``approve ID REQUEST deny --message M``: nothing runs and the model receives M."""
    task_id, request_id = await asking(world, model)
    ran = await world.cli("approve", task_id, request_id, "deny", "--message", "not here")
    assert ran.code == 0, ran
    assert ran.out.startswith(f"{task_id} denied request {request_id}: status ")
    await ended(world, task_id)
    assert not (world.root / "f.txt").exists()
    last = model.main_requests[-1]["messages"]
    assert "not here" in str([m for m in last if m["role"] == "user"][-1]["content"])


async def test_remember_task_keeps_the_rule(world: World, model: ScriptedModel) -> None:
    """``--remember task`` allows the command and keeps its rule for the task (``--json``)."""
    task_id, request_id = await asking(world, model)
    ran = await world.cli("approve", task_id, "allow", "--remember", "task", "--json")
    assert ran.code == 0, ran
    answer = json.loads(ran.out)
    assert answer["task_id"] == task_id
    assert request_id not in [p["request_id"] for p in answer["pending_approvals"]]
    task = await ended(world, task_id)
    assert task["granted_rules"] == [f"Bash({WRITE})"]
    assert (world.root / "f.txt").read_text() == "written"


async def test_deciding_a_request_no_longer_pending_exits_1(
    world: World, model: ScriptedModel
) -> None:
    """A second decision on the same request is refused clearly (exit 1, ``not_pending``)."""
    task_id, request_id = await asking(world, model)
    assert (await world.cli("approve", task_id, request_id, "allow")).code == 0
    await ended(world, task_id)
    again = await world.cli("approve", task_id, request_id, "deny")
    assert again.code == 1
    assert f"no pending request '{request_id}' in task {task_id}" in again.err
    assert "it was decided already (allow by the client (approve tool))" in again.err
    as_json = await world.cli("approve", task_id, request_id, "deny", "--json")
    assert as_json.code == 1
    assert json.loads(as_json.out)["error"]["code"] == "not_pending"
    nothing = await world.cli("approve", task_id, "allow")
    assert nothing.code == 1
    assert f"task {task_id} has no pending request (it is waiting) (not_pending)" in nothing.err


async def test_interrupt_stops_the_turn_and_keeps_the_task(
    world: World, model: ScriptedModel
) -> None:
    """``interrupt ID`` ends the turn in flight (the task waits); again: exit 1."""
    task_id, _ = await asking(world, model)
    ran = await world.cli("interrupt", task_id)
    assert ran.code == 0, ran
    assert ran.out.strip() == f"{task_id} interrupted: status waiting"
    task = await show(world, task_id)
    assert (task["status"], task["pending_approvals"]) == ("waiting", [])
    assert not (world.root / "f.txt").exists()
    again = await world.cli("interrupt", task_id)
    assert again.code == 1
    assert "has no run in flight to interrupt" in again.err


async def test_logs_follow_shows_the_request_and_its_decision(
    world: World, model: ScriptedModel
) -> None:
    """``logs -f`` shows the request with the command that answers it, then the decision."""
    task_id, request_id = await asking(world, model)
    followed: list[Ran] = []

    async def follow() -> None:
        followed.append(await world.cli("logs", task_id, "-f"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        assert (await world.cli("approve", task_id, "allow")).code == 0
    ran = followed[0]
    assert ran.code == 0, ran
    lines = ran.out.splitlines()
    asked = next(i for i, line in enumerate(lines) if " approval_request " in line)
    assert (
        lines[asked + 1] == f"      answer: coding-agent approve {task_id} {request_id} allow|deny"
    )
    assert any(" approval " in line and "allow by the client" in line for line in lines)
    assert lines[-1] == f"{task_id} run ended: status waiting"


@pytest.mark.parametrize(
    "arguments",
    [
        ["approve", "T", "maybe"],
        ["approve", "T", "R", "S", "allow"],
        ["approve", "T"],
        ["approve", "T", "allow", "--remember", "forever"],
        ["interrupt"],
    ],
)
async def test_bad_approve_arguments_exit_2(tmp_path: pathlib.Path, arguments: list[str]) -> None:
    """Malformed ``approve``/``interrupt`` arguments exit 2 before any server is asked."""
    ran = await run_cli(*arguments, env=cli_env(tmp_path))
    assert (ran.code, ran.out) == (2, ""), ran
    assert ran.err.startswith("usage: coding-agent ")
    assert "error: " in ran.err.splitlines()[-1]


def test_several_pending_requests_need_the_request_id() -> None:
    """Without a request id and with two pending, ``approve`` names both and refuses."""
    task = {
        "task_id": "T",
        "status": "input_required",
        "pending_approvals": [
            {"request_id": "r1", "tool_name": "Bash"},
            {"request_id": "r2", "tool_name": "Write"},
        ],
    }
    with pytest.raises(ToolFailed) as refused:
        _only_pending(task)
    assert refused.value.code == "ambiguous_request"
    assert str(refused.value) == (
        "task T has 2 pending requests: name one of r1 (Bash), r2 (Write) (ambiguous_request)"
    )
