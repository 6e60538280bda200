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
from _support.agent_up import coding_agent_up, sdk_client
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
from _support.procs import marked_processes
from _support.pty_terminal import in_terminal
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

STEP_TIMEOUT_S = 120.0
"""Upper bound for each awaited step of the session on a loaded machine."""
# Claude Code's own pattern for its background-task notice (from its bundled JS).
STARTED = re.compile(
    r'MCP tool "[^"]+" started server-side task ([\x21-\x7e]{1,128}?)\. It was moved'
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
    """The client model: create_task, then wait_task with the id of Claude Code's notice, end.

    ``background_id`` is the id the notice gave; ``asked_to_wait`` is set once the model has
    answered that notice with ``wait_task``; ``ended`` once it saw ``end_task``'s result.
    """

    background_id: str | None = None
    notice: str = ""
    seen: list[Called] = attrs.field(factory=list)
    asked_to_wait: trio.Event = attrs.field(factory=trio.Event)
    ended: trio.Event = attrs.field(factory=trio.Event)

    def __call__(self, body: dict[str, Any]) -> ToolCall | Reply:
        calls = tool_calls(body)
        self.seen = calls
        if not calls:
            return ToolCall(mcp_tool("create_task"), {"title": "hello", "instructions": "hi"})
        last = calls[-1]
        if last.is_error or last.name == mcp_tool("end_task"):
            self.ended.set()
            return Reply(f"{last.name} said: {last.text[:2000]}")
        if last.name == mcp_tool("create_task"):
            started = STARTED.search(last.text)
            if started is None:
                return Reply(f"create_task did not start a background task: {last.text[:2000]}")
            self.background_id, self.notice = started.group(1), last.text
            self.asked_to_wait.set()
            return ToolCall(mcp_tool("wait_task"), {"id": self.background_id, "timeout_s": 50})
        task = last.answer()["result"]
        if task["status"] == "in_progress":
            return ToolCall(mcp_tool("wait_task"), {"id": task["task_id"], "timeout_s": 50})
        return ToolCall(mcp_tool("end_task"), {"id": task["task_id"]})


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
    agent_model.script(held, Reply("Wrote hello.py."))
    plan = Plan()
    client_model.script(Decide(plan))
    client = client_in(tmp_path, claude, client_model.base_url)
    pass_first_run_dialogs(client, allow=[f"mcp__{SERVER}"])
    async with coding_agent_up(agent.state, agent.root, agent.env) as up:
        await add_server(client, up)
        argv = [client.claude, "--permission-mode", "default", "Hand hello.py to coding-agent."]
        async with in_terminal(argv, env=client.env(), cwd=client.cwd) as term:
            with trio.fail_after(STEP_TIMEOUT_S):
                await plan.asked_to_wait.wait()
                await held.reached.wait()
            assert plan.background_id is not None, term.screen()
            async with sdk_client(up) as sdk:
                try:
                    read = await sdk.read_resource(f"task://{plan.background_id}")
                except MCPError as exc:
                    pytest.fail(f"the model was told {plan.notice!r}; that id: {exc}")
            content = read.contents[0]
            assert isinstance(content, TextResourceContents)
            in_flight = json.loads(content.text)
            assert in_flight["status"] == "in_progress", in_flight
            held.release()
            with trio.fail_after(STEP_TIMEOUT_S):
                await plan.ended.wait()
    assert marked_processes(MARKER, agent.marker) == []

    calls = plan.seen
    assert not any(call.is_error for call in calls), calls
    names = [call.name.removeprefix(f"mcp__{SERVER}__") for call in calls]
    assert names[0] == "create_task"
    assert names[-1] == "end_task"
    assert set(names[1:-1]) == {"wait_task"}, names
    done = calls[-2].answer()["result"]
    assert (done["task_id"], done["status"], done["outcome"]) == (
        plan.background_id,
        "waiting",
        "success",
    ), done
    assert calls[-1].answer()["result"]["status"] == "completed"
    assert (agent.root / "hello.py").read_text() == "hi"
