"""Interactive Claude Code 2.1.332 (in a pseudo-terminal) as the MCP client of ``coding-agent up``.

Interactive Claude Code runs ``create_task`` as a background MCP task (the tasks extension of
2026-07-28; headless ``claude -p`` does not): the tool result its model gets is only
``MCP tool "coding-agent/create_task" started server-side task <MCP task id>. It was moved to the
background …``. The client's scripted model takes that id and calls ``wait_task`` with it while
the agent's run is held in flight (its own scripted model holds its first answer), which works only
when the MCP task id is the coding task id (issue 15, item 1).
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
from _support.agent_up import Up, coding_agent_up, sdk_client
from _support.claude_cli import claude_executable
from _support.claude_mcp_client import (
    MARKER,
    SERVER,
    Agent,
    Called,
    add_server,
    agent_in,
    client_in,
    mcp_tool,
    pass_first_run_dialogs,
    tool_calls,
)
from _support.polling import eventually
from _support.procs import marked_processes
from _support.pty_terminal import Terminal, in_terminal
from _support.scripted_model import (
    Decide,
    Hold,
    Reply,
    ScriptedModel,
    ToolCall,
    open_scripted_model,
)
from mcp.shared.exceptions import MCPError
from mcp.types import TextResourceContents

pytestmark = pytest.mark.real_clients

CLIENT_MARKER = "CODING_AGENT_TEST_CLIENT"
"""Marks the client's processes, so the test can check that none outlives the terminal."""
STEP_TIMEOUT_S = 120.0
"""Upper bound for each awaited step of the session on a loaded machine."""
FIRST = "Write hello.py."
FOLLOW_UP = "What does it print?"
# Claude Code's own pattern for its background-task notice (from its bundled JS); the second
# form is the notice when the server adds a note for the model.
STARTED = re.compile(
    r'MCP tool "(?:.{1,2000}?)" started server-side task ([\x21-\x7e]{1,128}?)'
    r"(?:\. It was moved|, running in the background)"
)


@pytest.fixture(scope="session")
def claude() -> str:
    """The pinned Claude Code binary (installed on first use)."""
    return claude_executable()


@pytest.fixture
async def agent_model() -> AsyncIterator[ScriptedModel]:
    """The scripted model of the coding agent behind ``up``."""
    async with open_scripted_model() as scripted:
        yield scripted


@pytest.fixture
async def client_model() -> AsyncIterator[ScriptedModel]:
    """The scripted model of the Claude Code that is the MCP client."""
    async with open_scripted_model() as scripted:
        yield scripted


@pytest.fixture
def agent(tmp_path: pathlib.Path, claude: str, agent_model: ScriptedModel) -> Agent:
    """``up``'s agent: the real Claude Code against ``agent_model``."""
    return agent_in(tmp_path, claude, agent_model.base_url)


@attrs.define
class Plan:
    """The client model: create_task, wait_task with the id of Claude Code's notice, a follow-up
    (update_task, also run in the background), wait_task again, end_task.

    ``background_id`` is the id the create notice gave (``notice`` the whole text);
    ``noticed`` is set once the model answered create_task's result (with ``wait_task`` when it
    was that notice); ``ended`` once it saw ``end_task``'s result (or an error).
    """

    background_id: str | None = None
    notice: str = ""
    update_notice: str = ""
    seen: list[Called] = attrs.field(factory=list)
    noticed: trio.Event = attrs.field(factory=trio.Event)
    ended: trio.Event = attrs.field(factory=trio.Event)

    def __call__(self, body: dict[str, Any]) -> ToolCall | Reply:
        calls = tool_calls(body)
        self.seen = calls
        if not calls:
            return ToolCall(mcp_tool("create_task"), {"title": "hello", "instructions": FIRST})
        last = calls[-1]
        if last.is_error or last.name == mcp_tool("end_task"):
            self.ended.set()
            return Reply(f"{last.name} said: {last.text[:2000]}")
        if last.name == mcp_tool("create_task"):
            return self._after_notice(last)
        return self._after(last, calls)

    def _after_notice(self, created: Called) -> ToolCall | Reply:
        """wait_task with the id Claude Code's background-task notice gave."""
        self.noticed.set()
        started = STARTED.search(created.text)
        if started is None:
            self.ended.set()
            return Reply(f"create_task did not start a background task: {created.text[:2000]}")
        self.background_id, self.notice = started.group(1), created.text
        return wait(self.background_id)

    def _after(self, last: Called, calls: list[Called]) -> ToolCall:
        """After update_task's notice or a wait_task result: wait, follow up or end."""
        if last.name == mcp_tool("update_task"):
            self.update_notice = last.text
            return wait(self.background_id or "")
        task = last.answer()["result"]
        if task["status"] == "in_progress":
            return wait(task["task_id"])
        if not any(call.name == mcp_tool("update_task") for call in calls):
            arguments = {"id": task["task_id"], "instructions": FOLLOW_UP}
            return ToolCall(mcp_tool("update_task"), arguments)
        return ToolCall(mcp_tool("end_task"), {"id": task["task_id"]})


def wait(task_id: str) -> ToolCall:
    return ToolCall(mcp_tool("wait_task"), {"id": task_id, "timeout_s": 50})


async def within(term: Terminal, event: trio.Event, what: str) -> None:
    """Wait for ``event`` (a generous bound); at the bound fail with the terminal's last text."""
    with trio.move_on_after(STEP_TIMEOUT_S):
        await event.wait()
        return
    pytest.fail(f"timed out after {STEP_TIMEOUT_S} s waiting for {what}: {term.screen()[-3000:]}")


async def task_resource(up: Up, task_id: str, told: str) -> dict[str, Any]:
    """The task ``task_id`` as the server keeps it; a failure quotes what the model was told."""
    async with sdk_client(up) as sdk:
        try:
            read = await sdk.read_resource(f"task://{task_id}")
        except MCPError as exc:
            pytest.fail(f"the model was told {told!r}; that id: {exc}")
    content = read.contents[0]
    assert isinstance(content, TextResourceContents), content
    value: dict[str, Any] = json.loads(content.text)
    return value


async def test_interactive_claude_code_waits_on_its_background_task_id(
    tmp_path: pathlib.Path,
    claude: str,
    agent: Agent,
    agent_model: ScriptedModel,
    client_model: ScriptedModel,
) -> None:
    """Interactive Claude Code's background-task id is one wait_task takes while the run goes on."""
    held = Hold(
        then=ToolCall("Write", {"file_path": str(agent.root / "hello.py"), "content": "hi"})
    )
    agent_model.script(held, Reply("Wrote hello.py."), Reply("It prints hi."))
    plan = Plan()
    client_model.script(Decide(plan))
    client = client_in(tmp_path, claude, client_model.base_url)
    pass_first_run_dialogs(client, allow=[f"mcp__{SERVER}"])
    async with coding_agent_up(agent.state, agent.root, agent.env) as up:
        await add_server(client, up)
        argv = [client.claude, "--permission-mode", "default", "Hand hello.py to coding-agent."]
        env = client.env() | {CLIENT_MARKER: agent.marker}
        async with in_terminal(argv, env=env, cwd=client.cwd) as term:
            await within(term, plan.noticed, "create_task's result to reach the model")
            assert plan.background_id is not None, plan.seen
            await within(term, held.reached, "the agent's run to reach its model")
            in_flight = await task_resource(up, plan.background_id, plan.notice)
            assert (in_flight["status"], in_flight["turns"]) == ("in_progress", 1), in_flight
            held.release()
            await within(term, plan.ended, "end_task's result (or an error) to reach the model")
            stored = await task_resource(up, plan.background_id, plan.notice)
        await eventually(
            lambda: marked_processes(CLIENT_MARKER, agent.marker) == [],
            "the interactive client's processes to be gone",
            lambda: repr(marked_processes(CLIENT_MARKER, agent.marker)),
        )
    assert marked_processes(MARKER, agent.marker) == []

    calls = plan.seen
    assert not any(call.is_error for call in calls), calls
    names = [call.name.removeprefix(f"mcp__{SERVER}__") for call in calls]
    assert [name for name in names if name != "wait_task"] == [
        "create_task",
        "update_task",
        "end_task",
    ], names
    assert STARTED.search(plan.update_notice), plan.update_notice
    waits = [call.answer()["result"] for call in calls if call.name == mcp_tool("wait_task")]
    first, second = [w for w in waits if w["status"] != "in_progress"]
    assert (first["task_id"], first["status"], first["turns"]) == (
        plan.background_id,
        "waiting",
        1,
    ), first
    assert (second["status"], second["turns"], second["outcome"]) == ("waiting", 2, "success")
    assert (stored["status"], stored["turns"]) == ("completed", 2), stored
    assert (agent.root / "hello.py").read_text() == "hi"
    follow_up_history = json.dumps(agent_model.main_requests[-1]["messages"])
    assert FIRST in follow_up_history
    assert FOLLOW_UP in follow_up_history
