"""End to end, supervised live runs: a real server and daemon, the real Claude Code CLI live on
stdin against the scripted model, and MCP clients answering its permission requests.

Each test's agent environment carries a marker variable, so "no process left" is a scan of
``/proc/*/environ`` for it after the server and daemon are gone (and, mid-test, while they run).
"""

from __future__ import annotations

import contextlib
import functools
import json
import pathlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import mcp_types as types
import pytest
import trio
from _support import procs
from _support.agent_up import coding_agent_up, sdk_client
from _support.claude_cli import claude_env, claude_executable
from _support.polling import eventually as _eventually
from _support.scripted_model import BashCall, Hold, Reply, ScriptedModel
from _support.sdk_tasks import events, ok, read_json, said
from _support.task_server import Env, task_server
from mcp import Client
from mcp.client.session import ClientRequestContext, ElicitationFnT

pytestmark = pytest.mark.claude_cli

MARKER = "CODING_AGENT_TEST_RUN"
DEADLINE_S = 90.0
eventually = functools.partial(_eventually, timeout=DEADLINE_S)

Elicit = ElicitationFnT


@attrs.frozen
class World:
    tmp: pathlib.Path
    env: dict[str, str]
    marker: str


@pytest.fixture(scope="session")
def claude() -> str:
    """The pinned Claude Code binary (installed on first use)."""
    return claude_executable()


@pytest.fixture
def world(tmp_path: pathlib.Path, claude: str, model: ScriptedModel) -> World:
    """The environment that runs the real Claude against the scripted model, with a marker."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    marker = uuid.uuid4().hex
    env = claude_env(model.base_url, home) | {"CLAUDE_PATH": claude, MARKER: marker}
    return World(tmp_path, env, marker)


def marked(world: World) -> list[tuple[int, str]]:
    """The live processes carrying this test's marker."""
    return procs.marked_processes(MARKER, world.marker)


@contextlib.asynccontextmanager
async def serving(world: World, **daemon_config: Any) -> AsyncIterator[Env]:
    """Daemon + server with the real Claude; afterwards no process of the test is left."""
    try:
        async with task_server(world.tmp, daemon_env=world.env, daemon_config=daemon_config) as env:
            yield env
    finally:
        assert marked(world) == []


@contextlib.asynccontextmanager
async def client(
    env: Env, mode: str = "legacy", elicit: Elicit | None = None
) -> AsyncIterator[Client]:
    """The official SDK client of the server (``elicit``: it declares elicitation)."""
    async with Client(env.client.url, mode=mode, elicitation_callback=elicit) as sdk:
        yield sdk


async def create(sdk: Client, instructions: str, **options: Any) -> str:
    created = await ok(sdk, "create_task", title="live", instructions=instructions, **options)
    assert created["live"] is True, created
    return str(created["task_id"])


async def until_asked(sdk: Client, task_id: str) -> dict[str, Any]:
    """wait_task until the task is input_required (a client without elicitation)."""
    with trio.fail_after(DEADLINE_S):
        while True:
            task = await ok(sdk, "wait_task", id=task_id, timeout_s=20)
            if task["status"] == "input_required":
                return task
            assert task["status"] == "in_progress", task


async def until_done(sdk: Client, task_id: str) -> dict[str, Any]:
    """wait_task until the run ended."""
    with trio.fail_after(DEADLINE_S):
        while True:
            task = await ok(sdk, "wait_task", id=task_id, timeout_s=20)
            if task["status"] not in ("in_progress", "input_required"):
                return task


WRITE = "sh write.sh approved"
"""A Bash step Claude asks about (acceptEdits lets ``echo … > file`` run unasked)."""


def script(env: Env) -> None:
    """``write.sh WORD``: writes WORD to out.txt in the root."""
    (env.root / "write.sh").write_text('echo "$1" > out.txt\n')


def tool_results(model: ScriptedModel) -> list[dict[str, Any]]:
    """The tool_result blocks of the latest main-loop call's messages."""
    return [
        block
        for message in model.main_requests[-1]["messages"]
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


async def test_a_bash_step_approved_with_the_approve_tool(
    world: World, model: ScriptedModel
) -> None:
    """A live task's Bash step waits input_required; approve lets it run: the file changes and
    the turn completes; the log records the request and who decided."""
    target = world.tmp / "root" / "out.txt"
    model.script(BashCall(WRITE), Reply("Done."))
    async with serving(world) as env, client(env) as sdk:
        script(env)
        task_id = await create(sdk, "write out.txt")
        task = await until_asked(sdk, task_id)
        (pending,) = task["pending_approvals"]
        assert pending["tool_name"] == "Bash"
        assert pending["input"]["command"] == WRITE
        assert not target.exists()
        approved = await ok(
            sdk, "approve", id=task_id, request_id=pending["request_id"], decision="allow"
        )
        assert approved["pending_approvals"] == []
        done = await until_done(sdk, task_id)
        assert done["status"] == "waiting", done
        assert done["report"]["outcome"] == "success"
        assert target.read_text() == "approved\n"
        kinds = [
            (e["kind"], (e.get("data") or {}).get("decided_by")) for e in await events(sdk, task_id)
        ]
        assert ("approval_request", None) in kinds
        assert ("approval", "client") in kinds


def answering(decision: str, asked: list[str], **content: Any) -> Elicit:
    """An elicitation callback that answers every approval form with ``decision``."""

    async def answer(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams), params
        asked.append(params.message)
        assert params.requested_schema["required"] == ["decision"]
        return types.ElicitResult(action="accept", content={"decision": decision, **content})

    return answer


@pytest.mark.parametrize(
    ("mode", "how"),
    [("legacy", "elicitation/create"), ("auto", "2026-07-28 input_required retry")],
)
async def test_a_bash_step_approved_by_elicitation(
    world: World, model: ScriptedModel, mode: str, how: str
) -> None:
    """wait_task from a client that declares elicitation asks the form; its allow reaches the
    agent (legacy: a server→client request; 2026-07-28: input_required and the retry)."""
    target = world.tmp / "root" / "out.txt"
    model.script(BashCall(WRITE), Reply("Done."))
    asked: list[str] = []
    async with serving(world) as env, client(env, mode, answering("allow", asked)) as sdk:
        script(env)
        assert sdk.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        task_id = await create(sdk, "write out.txt")
        done = await until_done(sdk, task_id)
        assert done["status"] == "waiting", (how, done)
        assert target.read_text() == "approved\n"
        (message,) = asked
        assert task_id in message
        assert WRITE in message
        decided = [e["data"] for e in await events(sdk, task_id) if e["kind"] == "approval"]
        assert [(d["decided_by"], d["decider"]) for d in decided] == [("client", "elicitation")]


async def test_a_bash_step_allowed_by_the_daemons_policy(
    world: World, model: ScriptedModel
) -> None:
    """A daemon --allow-rule lets the step run without asking: never input_required, and the
    log names the rule."""
    target = world.tmp / "root" / "out.txt"
    model.script(BashCall(WRITE), Reply("Done."))
    async with serving(world, allow_rules=("Bash(sh write.sh:*)",)) as env, client(env) as sdk:
        script(env)
        task_id = await create(sdk, "write out.txt")
        done = await until_done(sdk, task_id)
        assert done["status"] == "waiting", done
        assert target.read_text() == "approved\n"
        logged = await events(sdk, task_id)
        assert "approval_request" not in [e["kind"] for e in logged]
        (decided,) = [e["data"] for e in logged if e["kind"] == "approval"]
        assert (decided["decided_by"], decided["rule"]) == ("policy", "Bash(sh write.sh:*)")


async def test_a_tasks_narrowing_asks_what_the_daemon_would_allow(
    world: World, model: ScriptedModel
) -> None:
    """allow_rules on the task narrow the daemon's: a step outside them is asked about."""
    model.script(BashCall(WRITE), Reply("Done."))
    async with serving(world, allow_rules=("Bash(sh write.sh:*)",)) as env, client(env) as sdk:
        script(env)
        task_id = await create(sdk, "write out.txt", allow_rules=["Bash(pytest:*)"])
        task = await until_asked(sdk, task_id)
        (pending,) = task["pending_approvals"]
        await ok(sdk, "approve", id=task_id, request_id=pending["request_id"], decision="deny")
        assert (await until_done(sdk, task_id))["status"] == "waiting"


async def test_a_deny_message_reaches_the_model(world: World, model: ScriptedModel) -> None:
    """A deny with a message: the step does not run, the model gets the message as the tool's
    error result, and the turn goes on to its end."""
    target = world.tmp / "root" / "out.txt"
    model.script(BashCall(WRITE), Reply("Understood, not writing."))
    async with serving(world) as env, client(env) as sdk:
        script(env)
        task_id = await create(sdk, "write out.txt")
        (pending,) = (await until_asked(sdk, task_id))["pending_approvals"]
        await ok(
            sdk,
            "approve",
            id=task_id,
            request_id=pending["request_id"],
            decision="deny",
            message="not in this repository, use a scratch dir",
        )
        done = await until_done(sdk, task_id)
        assert done["status"] == "waiting", done
        assert not target.exists()
        (result,) = tool_results(model)
        assert result.get("is_error") is True
        assert "not in this repository, use a scratch dir" in json.dumps(result["content"])


async def test_an_approval_after_the_task_ended_is_a_clear_error(
    world: World, model: ScriptedModel
) -> None:
    """end_task while a request waits: the agent is gone, and approve then says why not."""
    model.script(BashCall(WRITE), Reply("never reached"))
    async with serving(world) as env, client(env) as sdk:
        script(env)
        task_id = await create(sdk, "write out.txt")
        (pending,) = (await until_asked(sdk, task_id))["pending_approvals"]
        ended = await ok(sdk, "end_task", id=task_id)
        assert (ended["status"], ended["pending_approvals"]) == ("completed", [])
        await eventually(lambda: marked(world) == [], "the live agent gone")
        result = await sdk.call_tool(
            "approve", {"id": task_id, "request_id": pending["request_id"], "decision": "allow"}
        )
        assert result.is_error
        assert result.structured_content is not None
        assert result.structured_content["error"]["code"] == "not_pending"
        assert "the task is completed" in said(result)
        assert not (world.tmp / "root" / "out.txt").exists()


async def test_two_requests_in_one_turn(world: World, model: ScriptedModel) -> None:
    """Two Bash steps in one turn: each waits in turn, each approval lets one run."""
    model.script(BashCall("sh write.sh one"), BashCall("sh append.sh two"), Reply("Both done."))
    async with serving(world) as env, client(env) as sdk:
        script(env)
        (env.root / "append.sh").write_text('echo "$1" >> out.txt\n')
        task_id = await create(sdk, "write then append")
        seen = []
        for _ in range(2):
            (pending,) = (await until_asked(sdk, task_id))["pending_approvals"]
            seen.append(pending["input"]["command"])
            await ok(sdk, "approve", id=task_id, request_id=pending["request_id"], decision="allow")
        done = await until_done(sdk, task_id)
        assert done["status"] == "waiting", done
        assert seen == ["sh write.sh one", "sh append.sh two"]
        assert (env.root / "out.txt").read_text() == "one\ntwo\n"


WAIT = "sh wait.sh"
"""A Bash step that runs until the test creates ``go`` in the root (a tool in flight)."""


def wait_script(env: Env) -> None:
    (env.root / "wait.sh").write_text("while [ ! -e go ]; do sleep 0.05; done\necho waited\n")


def names(world: World) -> list[str]:
    return [name for _, name in marked(world)]


async def test_steering_reaches_the_model_in_the_same_turn(
    world: World, model: ScriptedModel
) -> None:
    """update_task while a tool runs goes into the live turn (steered: true) and the model sees
    it in the same conversation; the task then waits as usual."""
    model.script(BashCall(WAIT), Reply("Tool done."), Reply("Steered done."))
    async with serving(world, allow_rules=(f"Bash({WAIT})",)) as env, client(env) as sdk:
        wait_script(env)
        task_id = await create(sdk, "run the waiting tool")
        await eventually(lambda: "sleep" in names(world), "the tool running")
        steered = await ok(sdk, "update_task", id=task_id, instructions="Also mention bananas.")
        assert steered["steered"] is True
        (env.root / "go").touch()
        done = await until_done(sdk, task_id)
        assert done["status"] == "waiting", done
        assert done["turns"] == 1
        bodies = [json.dumps(request["messages"]) for request in model.main_requests]
        assert "Also mention bananas." in bodies[-1]
        assert "run the waiting tool" in bodies[-1]
        steers = [e["data"] for e in await events(sdk, task_id) if e["kind"] == "steer"]
        assert [(s["text"], s["steered"]) for s in steers] == [("Also mention bananas.", True)]


async def test_interrupt_mid_tool_keeps_the_conversation(
    world: World, model: ScriptedModel
) -> None:
    """interrupt_task while a tool runs: the tool's processes are gone, the task waits with
    outcome interrupted, and a follow-up goes on in the same conversation."""
    model.script(BashCall(WAIT), Reply("I was asked to run the waiting tool."))
    async with serving(world, allow_rules=(f"Bash({WAIT})",)) as env, client(env) as sdk:
        wait_script(env)
        task_id = await create(sdk, "run the waiting tool")
        await eventually(lambda: "sleep" in names(world), "the tool running")
        task = await ok(sdk, "interrupt_task", id=task_id)
        assert task["status"] == "waiting", task
        assert task["report"]["outcome"] == "interrupted"
        await eventually(
            lambda: not {"sh", "sleep"} & set(names(world)), "the tool's processes gone"
        )
        await ok(sdk, "update_task", id=task_id, instructions="What did I ask first?")
        again = await until_done(sdk, task_id)
        assert again["status"] == "waiting", again
        assert again["session_id"] == task["session_id"]
        assert again["report"]["final_text"] == "I was asked to run the waiting tool."
        sent = json.dumps(model.main_requests[-1]["messages"])
        assert "run the waiting tool" in sent
        assert "What did I ask first?" in sent


# resources/subscribe is the legacy era's API on purpose here; the SDK flags it as deprecated.
@pytest.mark.filterwarnings(
    "ignore:resources/(un)?subscribe is removed:mcp.shared.exceptions.MCPDeprecationWarning"
)
async def test_a_request_is_announced_and_shown(world: World, model: ScriptedModel) -> None:
    """A new request: resources/updated for task://{id} and a warning message to a subscribed
    client; report and the task resource show it pending with status input_required."""
    hold = Hold(then=BashCall(WRITE))
    model.script(hold, Reply("Done."))
    updated: list[str] = []
    warnings: list[Any] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        if params.level == "warning":
            warnings.append(params.data)

    async with serving(world) as env:
        script(env)
        async with Client(
            env.client.url, mode="legacy", message_handler=on_message, logging_callback=on_log
        ) as sdk:
            task_id = await create(sdk, "write out.txt")
            await sdk.session.subscribe_resource(f"task://{task_id}")
            await hold.reached.wait()
            hold.release()
            await until_asked(sdk, task_id)
            await eventually(lambda: bool(warnings), "the warning")
            assert f"task://{task_id}" in updated
            (warning,) = warnings
            assert warning["task_id"] == task_id
            assert "sh write.sh approved" in warning["message"]
            report = await ok(sdk, "report", id=task_id)
            assert report["status"] == "input_required"
            (pending,) = report["pending_approvals"]
            resource = await read_json(sdk, f"task://{task_id}")
            assert resource["pending_approvals"] == [pending]
            await ok(sdk, "approve", id=task_id, request_id=pending["request_id"], decision="allow")
            assert (await until_done(sdk, task_id))["status"] == "waiting"


async def test_a_request_nobody_answers_is_denied_at_the_timeout(
    world: World, model: ScriptedModel
) -> None:
    """approval_timeout_s: an unanswered request is denied with a message saying so, which the
    model gets; the log says the timeout decided; the turn ends normally."""
    model.script(BashCall(WRITE), Reply("Timed out, moving on."))
    async with serving(world) as env, client(env) as sdk:
        script(env)
        task_id = await create(sdk, "write out.txt", approval_timeout_s=1)
        (pending,) = (await until_asked(sdk, task_id))["pending_approvals"]
        assert pending["timeout_at"] is not None
        done = await until_done(sdk, task_id)
        assert done["status"] == "waiting", done
        assert not (env.root / "out.txt").exists()
        (decided,) = [e["data"] for e in await events(sdk, task_id) if e["kind"] == "approval"]
        assert (decided["decided_by"], decided["behavior"]) == ("timeout", "deny")
        (result,) = tool_results(model)
        assert "no decision within" in json.dumps(result["content"])
        late = await sdk.call_tool(
            "approve", {"id": task_id, "request_id": pending["request_id"], "decision": "allow"}
        )
        assert late.is_error
        assert "decided already (deny by the approval timeout)" in said(late)


async def test_a_declined_form_leaves_the_request_pending(
    world: World, model: ScriptedModel
) -> None:
    """A user who declines the form: wait_task returns input_required with the request still
    pending, and the approve tool can still answer it."""
    asked: list[str] = []

    async def decline(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="decline")

    model.script(BashCall(WRITE), Reply("Done."))
    async with serving(world) as env, client(env, "legacy", decline) as sdk:
        script(env)
        task_id = await create(sdk, "write out.txt")
        task = await until_asked(sdk, task_id)
        (pending,) = task["pending_approvals"]
        assert len(asked) == 1
        await ok(sdk, "approve", id=task_id, request_id=pending["request_id"], decision="allow")
        assert (await until_done(sdk, task_id))["status"] == "waiting"
        assert (env.root / "out.txt").read_text() == "approved\n"


async def test_create_task_as_an_mcp_task_asks_by_elicitation(
    world: World, model: ScriptedModel
) -> None:
    """create_task run as an MCP task (legacy) from a client that can elicit: the approval form
    comes on the session's stream while the task works; its allow reaches the agent and the
    MCP task's result is the finished run."""
    model.script(BashCall(WRITE), Reply("Done."))
    async with serving(world) as env:
        script(env)
        raw = env.client
        initialize = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"elicitation": {"form": {}}},
            "clientInfo": {"name": "test", "version": "1"},
        }
        raw.session = None
        response = await raw.http.post(
            raw.url,
            headers=raw.headers(),
            json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize},
        )
        raw.session = response.headers["mcp-session-id"]
        await raw.http.post(
            raw.url,
            headers=raw.headers(),
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )
        async with raw.http.stream("GET", raw.url, headers=raw.headers()) as stream:
            answer = await raw.rpc(
                "tools/call",
                {
                    "name": "create_task",
                    "arguments": {"title": "t", "instructions": "write out.txt", "live": True},
                    "task": {},
                },
            )
            mcp_task = answer["result"]["task"]["taskId"]
            with trio.fail_after(DEADLINE_S):
                async for line in stream.aiter_lines():
                    if line.startswith("data:") and '"elicitation/create"' in line:
                        asked = json.loads(line[5:])
                        break
            assert WRITE in asked["params"]["message"]
            status = await raw.rpc("tasks/get", {"taskId": mcp_task})
            assert status["result"]["status"] == "input_required"
            reply = {
                "jsonrpc": "2.0",
                "id": asked["id"],
                "result": {"action": "accept", "content": {"decision": "allow"}},
            }
            await raw.http.post(raw.url, headers=raw.headers(), json=reply)
            with trio.fail_after(DEADLINE_S):
                result = await raw.rpc("tasks/result", {"taskId": mcp_task})
        structured = result["result"]["structuredContent"]
        assert structured["status"] == "success", structured
        assert structured["result"]["status"] == "waiting"
        assert (env.root / "out.txt").read_text() == "approved\n"


async def test_end_task_closes_the_idle_live_session(world: World, model: ScriptedModel) -> None:
    """After a live turn the agent stays alive for the next one; end_task closes it (no
    process of the task is left while the server and daemon still run)."""
    model.script(Reply("Hello."))
    async with serving(world) as env, client(env) as sdk:
        task_id = await create(sdk, "say hello")
        done = await until_done(sdk, task_id)
        assert done["status"] == "waiting", done
        assert marked(world) != []  # the live agent waits for the next turn
        await ok(sdk, "end_task", id=task_id)
        await eventually(lambda: marked(world) == [], "the live session closed")


async def test_a_restart_clears_pending_requests(world: World, model: ScriptedModel) -> None:
    """`up` killed while a request waits: the live agent goes with it (its daemon too); after
    the restart the task is interrupted with nothing pending, the old request is not_pending,
    and a follow-up resumes the conversation."""
    model.script(BashCall(WRITE), Reply("Resumed without writing."))
    state, root = world.tmp / "state", world.tmp / "root"
    root.mkdir(exist_ok=True)
    (root / "write.sh").write_text('echo "$1" > out.txt\n')
    async with coding_agent_up(state, root, world.env) as up, sdk_client(up) as sdk:
        task_id = await create(sdk, "write out.txt")
        (pending,) = (await until_asked(sdk, task_id))["pending_approvals"]
        up.kill()
        await up.process.wait()
    await eventually(lambda: marked(world) == [], "the killed server's live agent")
    async with coding_agent_up(state, root, world.env) as up, sdk_client(up) as sdk:
        # The server re-attaches to the run; the daemon, restarted with it, no longer has it.
        task = await until_done(sdk, task_id)
        assert (task["status"], task["pending_approvals"]) == ("interrupted", [])
        assert "the host daemon no longer has the run" in task["report"]["error"]
        late = await sdk.call_tool(
            "approve", {"id": task_id, "request_id": pending["request_id"], "decision": "allow"}
        )
        assert late.is_error
        assert "never decided: the run ended first); the task is interrupted" in said(late)
        await ok(sdk, "update_task", id=task_id, instructions="Go on")
        resumed = await until_done(sdk, task_id)
        assert resumed["status"] == "waiting", resumed
        assert resumed["session_id"] == task["session_id"]
        assert "write out.txt" in json.dumps(model.main_requests[-1]["messages"])
    assert not (root / "out.txt").exists()
    assert marked(world) == []


async def test_remember_for_the_task_allows_the_rule_in_later_turns(
    world: World, model: ScriptedModel
) -> None:
    """approve with remember "task": the rule (Claude's suggestion: the exact command) is kept
    on the task; the idle agent is closed (a short --live-idle-s), and in the next turn, a
    resumed process, the same step runs without asking, decided by that rule."""
    model.script(BashCall(APPEND), Reply("Once."), BashCall(APPEND), Reply("Twice."))
    async with serving(world, live_idle_s=0.5) as env, client(env) as sdk:
        (env.root / "append.sh").write_text('echo "$1" >> out.txt\n')
        task_id = await create(sdk, "append once")
        (pending,) = (await until_asked(sdk, task_id))["pending_approvals"]
        await ok(
            sdk,
            "approve",
            id=task_id,
            request_id=pending["request_id"],
            decision="allow",
            remember="task",
        )
        first = await until_done(sdk, task_id)
        assert first["granted_rules"] == [f"Bash({APPEND})"]
        await eventually(lambda: marked(world) == [], "the idle live agent closed")
        await ok(sdk, "update_task", id=task_id, instructions="append again")
        second = await until_done(sdk, task_id)
        assert second["status"] == "waiting", second
        assert second["session_id"] == first["session_id"]
        assert "append once" in json.dumps(model.main_requests[-1]["messages"])
        assert (env.root / "out.txt").read_text() == "x\nx\n"
        logged = await events(sdk, task_id)
        assert [e["kind"] for e in logged].count("approval_request") == 1
        decided = [e["data"] for e in logged if e["kind"] == "approval"]
        assert decided[-1]["request_id"] != pending["request_id"]
        assert (decided[-1]["decided_by"], decided[-1]["rule"]) == ("policy", f"Bash({APPEND})")


APPEND = "sh append.sh x"
