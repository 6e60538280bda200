"""Claude Code 2.1.332 as the MCP client of a real ``coding-agent up``, headless (``claude -p``).

Two real Claude Code CLIs, each with its own scripted model on loopback: the *client* (added with
the README's ``claude mcp add`` line) hands a task to ``up``; the *agent* behind ``up`` does it.
The client's model picks every call from the tool results Claude Code sent it (``Decide``), so the
task id reaches ``wait_task``, ``update_task``, the resource read and ``end_task`` only if Claude
Code passed the results through.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
from _support.agent_up import coding_agent_up, sdk_client
from _support.claude_cli import claude_executable
from _support.claude_mcp_client import (
    MARKER,
    READ_RESOURCE,
    SERVER,
    Agent,
    Called,
    Client,
    add_server,
    agent_in,
    client_in,
    mcp_tool,
    stream_events,
    tool_calls,
)
from _support.procs import marked_processes
from _support.scripted_model import (
    Decide,
    Reply,
    ScriptedModel,
    ToolCall,
    open_scripted_model,
)
from mcp import Client as SdkClient
from mcp.types import TextResourceContents

pytestmark = pytest.mark.real_clients

RUN_TIMEOUT_S = 240.0
"""Upper bound for the whole client session (two agent turns) on a loaded machine."""
FIRST = "Write hello.py that prints hi."
FOLLOW_UP = "Now write bye.py that prints bye."
TOOLS = ("create_task", "wait_task", "update_task", "end_task")


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
    """The client model's plan: create, wait, follow up, wait, read the logs, end.

    Each call is picked from the result of the one before, the task id included (never from
    the test): ``wait_task`` again while the task is in progress.
    """

    seen: list[Called] = attrs.field(factory=list)

    def __call__(self, body: dict[str, Any]) -> ToolCall | Reply:
        calls = tool_calls(body)
        self.seen = calls
        if not calls:
            return ToolCall(mcp_tool("create_task"), {"title": "hello", "instructions": FIRST})
        last = calls[-1]
        if last.is_error:
            return Reply(f"stopping: {last.name} failed: {last.text}")
        if last.name == mcp_tool("end_task"):
            return Reply(f"The task ended {last.answer()['result']['status']}.")
        task_id, arguments = _task_of(last), {}
        if last.name == READ_RESOURCE:
            name = mcp_tool("end_task")
        elif (
            last.name != mcp_tool("wait_task") or last.answer()["result"]["status"] == "in_progress"
        ):
            name, arguments = mcp_tool("wait_task"), {"timeout_s": 50}
        elif not any(call.name == mcp_tool("update_task") for call in calls):
            name, arguments = mcp_tool("update_task"), {"instructions": FOLLOW_UP}
        else:
            return ToolCall(READ_RESOURCE, {"server": SERVER, "uri": f"task://{task_id}/logs"})
        return ToolCall(name, {"id": task_id, **arguments})


def _task_of(call: Called) -> str:
    """The task id a call's result names: the tool's answer, or the URI of the read resource."""
    if call.name == READ_RESOURCE:
        uri: str = json.loads(call.text)["contents"][0]["uri"]
        return uri.removeprefix("task://").split("/")[0]
    task_id: str = call.answer()["result"]["task_id"]
    return task_id


async def claude_p(client: Client, prompt: str) -> list[dict[str, Any]]:
    """``claude -p PROMPT`` with the server's tools allowed; its stream-json events."""
    allowed = [mcp_tool(name) for name in TOOLS] + [READ_RESOURCE]
    argv = [
        client.claude,
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--allowedTools",
        *allowed,
    ]
    with trio.fail_after(RUN_TIMEOUT_S):
        done = await trio.run_process(
            argv,
            env=client.env(),
            cwd=str(client.cwd),
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    return stream_events(done.stdout)


async def task_resource(sdk: SdkClient, task_id: str) -> dict[str, Any]:
    """The task as the server keeps it (the ``task://ID`` resource)."""
    read = await sdk.read_resource(f"task://{task_id}")
    content = read.contents[0]
    assert isinstance(content, TextResourceContents), content
    value: dict[str, Any] = json.loads(content.text)
    return value


async def test_headless_claude_code_runs_a_task_through_the_tools(
    tmp_path: pathlib.Path,
    claude: str,
    agent: Agent,
    agent_model: ScriptedModel,
    client_model: ScriptedModel,
) -> None:
    """claude -p creates, waits, follows up, reads the logs and ends a task the real agent does."""
    agent_model.script(
        ToolCall("Write", {"file_path": str(agent.root / "hello.py"), "content": "print('hi')\n"}),
        Reply("Wrote hello.py."),
        ToolCall("Write", {"file_path": str(agent.root / "bye.py"), "content": "print('bye')\n"}),
        Reply("Wrote bye.py."),
    )
    plan = Plan()
    client_model.script(Decide(plan))
    client = client_in(tmp_path, claude, client_model.base_url)
    async with coding_agent_up(agent.state, agent.root, agent.env) as up:
        await add_server(client, up)
        events = await claude_p(client, "Hand hello.py to coding-agent, then bye.py.")
        calls = plan.seen
        async with sdk_client(up) as sdk:
            stored = await task_resource(sdk, calls[0].answer()["result"]["task_id"])
    assert marked_processes(MARKER, agent.marker) == []

    # Claude Code 2.1.332 defers MCP tools: it names them to the model (a list the model can
    # load with ToolSearch) rather than in the request's tools; the model calls them by name.
    announced = json.dumps(client_model.main_requests[0])
    for name in [*(mcp_tool(name) for name in TOOLS), READ_RESOURCE]:
        assert name in announced, name
    result = events[-1]
    assert (result["type"], result["subtype"]) == ("result", "success"), result
    assert client_model.unexpected == []
    assert agent_model.unexpected == []
    names = [call.name.removeprefix(f"mcp__{SERVER}__") for call in calls]
    assert [name for name in names if name != "wait_task"] == [
        "create_task",
        "update_task",
        READ_RESOURCE,
        "end_task",
    ], names
    assert not any(call.is_error for call in calls), calls
    task_id = calls[0].answer()["result"]["task_id"]
    ids = [call.input.get("id") for call in calls[1:] if call.name != READ_RESOURCE]
    assert set(ids) == {task_id}, ids

    waits = [call.answer()["result"] for call in calls if call.name == mcp_tool("wait_task")]
    first_done, second_done = [w for w in waits if w["status"] != "in_progress"]
    assert (first_done["status"], first_done["turns"]) == ("waiting", 1), first_done
    assert (second_done["status"], second_done["turns"]) == ("waiting", 2), second_done
    assert second_done["outcome"] == "success"

    logs = json.loads(next(call.text for call in calls if call.name == READ_RESOURCE))
    page = json.loads(logs["contents"][0]["text"])
    logged = json.dumps(page["events"])
    assert "Wrote hello.py." in logged
    assert "Wrote bye.py." in logged

    ended = calls[-1].answer()["result"]
    assert ended["status"] == "completed", ended
    assert (agent.root / "hello.py").read_text() == "print('hi')\n"
    assert (agent.root / "bye.py").read_text() == "print('bye')\n"
    follow_up_history = json.dumps(agent_model.main_requests[-1]["messages"])
    assert FIRST in follow_up_history
    assert FOLLOW_UP in follow_up_history
    assert "Wrote hello.py." in follow_up_history
    assert (stored["status"], stored["turns"]) == ("completed", 2), stored
