"""The sans-IO core: negotiation, envelopes, dispatch, pagination, input-required and tasks."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from mcp_server import (
    InvalidParams,
    McpError,
    Prompt,
    PromptArgument,
    PromptResult,
    Registry,
    RequestContext,
    ResourceTemplate,
    TextContents,
    Tool,
    ToolResult,
)
from mcp_server._core import Core, Envelope, ServerInfo, TrioMcpTaskGroup
from mcp_server._core._errors import HeaderMismatch, MissingCapability, UnsupportedVersion
from mcp_server._core._jsonrpc import Request
from mcp_server._core._versions import classify

MODERN = "2026-07-28"
JSON = dict[str, Any]


class RecordingPeer:
    """Collects what a handler sends; answers server→client requests from a script."""

    def __init__(self, answers: dict[str, JSON] | None = None) -> None:
        self.notifications: list[tuple[str, JSON]] = []
        self.requests: list[tuple[str, JSON]] = []
        self.answers = answers or {}
        self.closed = False

    async def notify(self, method: str, params: JSON) -> None:
        self.notifications.append((method, params))

    async def request(self, method: str, params: JSON) -> JSON:
        self.requests.append((method, params))
        return self.answers[method]

    def close_stream(self) -> None:
        self.closed = True


async def echo(ctx: RequestContext, args: JSON) -> ToolResult:
    await ctx.progress(1, 2, "half")
    await ctx.log("info", "echoing")
    return ToolResult([{"type": "text", "text": str(args.get("text", ""))}])


async def ask_name(ctx: RequestContext, args: JSON) -> ToolResult:
    first = await ctx.elicit("name?", {"type": "object"}, key="name")
    second = await ctx.elicit("city?", {"type": "object"}, key="city")
    return ToolResult([{"type": "text", "text": f"{first['content']} {second['content']}"}])


def make_core(group: TrioMcpTaskGroup | None = None, **tools: Any) -> tuple[Core, Registry]:
    registry = Registry()
    registry.add_tool(
        Tool(
            "echo",
            "Echo",
            {
                "type": "object",
                "properties": {"text": {"type": "string"}, "limit": {"type": "integer"}},
                "additionalProperties": False,
            },
            echo,
        )
    )
    registry.add_tool(Tool("ask", "Ask twice", {"type": "object"}, ask_name))
    for tool in tools.values():
        registry.add_tool(tool)
    return Core(registry, ServerInfo("test", "1.0"), secret=b"k" * 32, task_group=group), registry


def modern_meta(**extra: Any) -> JSON:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": extra.pop("caps", {}),
        **extra,
    }


def modern_headers(method: str, name: str | None = None) -> list[tuple[str, str]]:
    headers = [("MCP-Protocol-Version", MODERN), ("Mcp-Method", method)]
    if name is not None:
        headers.append(("Mcp-Name", name))
    return headers


async def call_modern(
    core: Core, method: str, params: JSON, name: str | None = None, caps: JSON | None = None
) -> JSON:
    request = Request(1, method, {**params, "_meta": modern_meta(caps=caps or {})})
    env = core.modern_envelope(request, modern_headers(method, name))
    return await core.handle(request, env, RecordingPeer())


def legacy_session(core: Core, caps: JSON | None = None) -> Any:
    state, _ = core.initialize(
        {"protocolVersion": "2025-11-25", "capabilities": caps or {}, "clientInfo": {}}, "s1"
    )
    return state


async def call_legacy(
    core: Core, session: Any, method: str, params: JSON, peer: RecordingPeer | None = None
) -> JSON:
    request = Request(7, method, params)
    env = core.legacy_envelope(request, session)
    return await core.handle(request, env, peer or RecordingPeer())


@pytest.fixture
async def running_core() -> Any:
    group = TrioMcpTaskGroup()
    core, registry = make_core(group)
    async with trio.open_nursery() as nursery:
        await nursery.start(group.run)
        yield core, registry
        nursery.cancel_scope.cancel()


# -- negotiation ---------------------------------------------------------------------------------


def test_legacy_initialize_offering_modern_gets_2025_11_25() -> None:
    """A legacy initialize offering 2026-07-28 is answered with 2025-11-25, never an error."""
    core, _ = make_core()
    _, result = core.initialize({"protocolVersion": MODERN, "capabilities": {}}, "s")
    assert result["protocolVersion"] == "2025-11-25"


def test_legacy_initialize_echoes_a_served_version() -> None:
    """An offered legacy version we serve is echoed."""
    core, _ = make_core()
    _, result = core.initialize({"protocolVersion": "2025-06-18", "capabilities": {}}, "s")
    assert result["protocolVersion"] == "2025-06-18"
    assert "tasks" not in result["capabilities"]


def test_unknown_version_initialize_gets_latest_legacy() -> None:
    """An unknown offered version gets 2025-11-25."""
    core, _ = make_core()
    _, result = core.initialize({"protocolVersion": "1999-01-01", "capabilities": {}}, "s")
    assert result["protocolVersion"] == "2025-11-25"


def test_classify_by_header_and_envelope() -> None:
    """Modern by a non-legacy header or the body envelope; otherwise legacy."""
    assert classify(MODERN, {}) == "modern"
    assert classify(None, {"_meta": modern_meta()}) == "modern"
    assert classify("2025-11-25", {}) == "legacy"
    assert classify(None, {}) == "legacy"


# -- the 2026-07-28 envelope and headers ---------------------------------------------------------


def test_modern_envelope_requires_meta() -> None:
    """A modern request without _meta is -32602."""
    core, _ = make_core()
    with pytest.raises(InvalidParams, match=r"_meta"):
        core.modern_envelope(Request(1, "tools/list", {}), modern_headers("tools/list"))


def test_modern_envelope_requires_client_capabilities() -> None:
    """clientCapabilities is required in the envelope."""
    core, _ = make_core()
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN}
    with pytest.raises(InvalidParams, match="clientCapabilities"):
        core.modern_envelope(
            Request(1, "tools/list", {"_meta": meta}), modern_headers("tools/list")
        )


def test_method_header_mismatch_is_32020() -> None:
    """Mcp-Method differing from the body is a HeaderMismatch."""
    core, _ = make_core()
    request = Request(1, "tools/list", {"_meta": modern_meta()})
    with pytest.raises(HeaderMismatch) as caught:
        core.modern_envelope(request, modern_headers("prompts/list"))
    assert caught.value.code == -32020
    assert caught.value.message == (
        "Mcp-Method header does not match the request body: "
        "header 'prompts/list', body 'tools/list'"
    )


def test_unsupported_version_is_32022_with_data() -> None:
    """An unsupported version names what is supported and what was requested."""
    core, _ = make_core()
    meta = modern_meta()
    meta["io.modelcontextprotocol/protocolVersion"] = "v999"
    request = Request(1, "tools/list", {"_meta": meta})
    headers = [("MCP-Protocol-Version", "v999"), ("Mcp-Method", "tools/list")]
    with pytest.raises(UnsupportedVersion) as caught:
        core.modern_envelope(request, headers)
    assert caught.value.code == -32022
    assert caught.value.data["requested"] == "v999"
    assert MODERN in caught.value.data["supported"]


def test_version_header_mismatch_wins_over_unsupported_version() -> None:
    """Header 2026-07-28 with _meta v999 is a mismatch, not an unsupported version."""
    core, _ = make_core()
    meta = modern_meta()
    meta["io.modelcontextprotocol/protocolVersion"] = "v999"
    with pytest.raises(HeaderMismatch):
        core.modern_envelope(
            Request(1, "tools/list", {"_meta": meta}), modern_headers("tools/list")
        )


def test_name_header_accepts_base64_and_rejects_mismatch() -> None:
    """Mcp-Name may be =?base64?…?= encoded; a different name is rejected."""
    core, _ = make_core()
    request = Request(1, "tools/call", {"name": "echo", "_meta": modern_meta()})
    core.modern_envelope(request, modern_headers("tools/call", "=?base64?ZWNobw==?="))
    with pytest.raises(HeaderMismatch):
        core.modern_envelope(request, modern_headers("tools/call", "Echo"))


def test_duplicate_header_rejected() -> None:
    """A routing header sent twice is rejected."""
    core, _ = make_core()
    request = Request(1, "tools/list", {"_meta": modern_meta()})
    headers = [*modern_headers("tools/list"), ("mcp-method", "tools/list")]
    with pytest.raises(HeaderMismatch, match="more than once"):
        core.modern_envelope(request, headers)


# -- dispatch ------------------------------------------------------------------------------------


async def test_modern_results_carry_result_type_and_cache_fields() -> None:
    """Modern list results carry resultType, serverInfo, ttlMs and cacheScope."""
    core, _ = make_core()
    result = await call_modern(core, "tools/list", {})
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"] == {
        "name": "test",
        "version": "1.0",
    }
    assert result["cacheScope"] == "public"
    assert isinstance(result["ttlMs"], int)


async def test_invalid_arguments_rendered_with_path() -> None:
    """Arguments failing the input schema give an isError result naming the path."""
    core, _ = make_core()
    session = legacy_session(core)
    result = await call_legacy(
        core, session, "tools/call", {"name": "echo", "arguments": {"limit": "5"}}
    )
    assert result["isError"] is True
    assert "expected integer, got string @ $.arguments.limit" in result["content"][0]["text"]


async def test_unknown_tool_is_invalid_params() -> None:
    """Calling an unknown tool is -32602."""
    core, _ = make_core()
    with pytest.raises(InvalidParams, match="Unknown tool"):
        await call_legacy(core, legacy_session(core), "tools/call", {"name": "nope"})


async def test_progress_and_log_go_to_the_peer() -> None:
    """A handler's progress and log reach the request's peer on a legacy session."""
    core, _ = make_core()
    peer = RecordingPeer()
    params = {"name": "echo", "arguments": {"text": "hi"}, "_meta": {"progressToken": "p"}}
    result = await call_legacy(core, legacy_session(core), "tools/call", params, peer)
    assert result["content"][0]["text"] == "hi"
    assert [m for m, _ in peer.notifications] == [
        "notifications/progress",
        "notifications/message",
    ]
    assert peer.notifications[0][1]["progressToken"] == "p"


async def test_log_level_filters_messages() -> None:
    """After logging/setLevel warning, info messages are not sent."""
    core, _ = make_core()
    session = legacy_session(core)
    await call_legacy(core, session, "logging/setLevel", {"level": "warning"})
    peer = RecordingPeer()
    await call_legacy(core, session, "tools/call", {"name": "echo", "arguments": {}}, peer)
    assert peer.notifications == []


async def test_pagination_with_signed_cursor() -> None:
    """Lists page with opaque cursors; a forged cursor is rejected."""
    core, registry = make_core()
    core.page_size = 2
    for index in range(3):
        registry.add_tool(Tool(f"t{index}", "x", {"type": "object"}, echo))
    session = legacy_session(core)
    names: list[str] = []
    cursor = None
    while True:
        params: JSON = {} if cursor is None else {"cursor": cursor}
        page = await call_legacy(core, session, "tools/list", params)
        names += [tool["name"] for tool in page["tools"]]
        cursor = page.get("nextCursor")
        if cursor is None:
            break
    assert names == ["echo", "ask", "t0", "t1", "t2"]
    with pytest.raises(InvalidParams, match="cursor"):
        await call_legacy(core, session, "tools/list", {"cursor": "eyJrIjoidG9vbHMifQ.AAAA"})


async def test_list_cache_follows_registry_revision() -> None:
    """A cached tools/list page is rebuilt after the registry changes."""
    core, registry = make_core()
    session = legacy_session(core)
    before = await call_legacy(core, session, "tools/list", {})
    registry.remove_tool("ask")
    after = await call_legacy(core, session, "tools/list", {})
    assert len(after["tools"]) == len(before["tools"]) - 1


async def test_prompt_required_argument_enforced() -> None:
    """prompts/get without a required argument is -32602."""
    core, registry = make_core()

    async def render(args: Any) -> PromptResult:
        return PromptResult([{"role": "user", "content": {"type": "text", "text": args["a"]}}])

    registry.add_prompt(Prompt("p", "P", render, (PromptArgument("a", required=True),)))
    session = legacy_session(core)
    with pytest.raises(InvalidParams, match=r"arguments\.a"):
        await call_legacy(core, session, "prompts/get", {"name": "p"})
    result = await call_legacy(core, session, "prompts/get", {"name": "p", "arguments": {"a": "x"}})
    assert result["messages"][0]["content"]["text"] == "x"


async def test_template_read_and_resource_not_found() -> None:
    """Templates match by variable; an unknown URI is -32602 with data.uri."""
    core, registry = make_core()

    async def read(uri: str, variables: Any) -> list[Any]:
        return [TextContents(uri, f"item {variables['id']}")]

    registry.add_template(ResourceTemplate("x://{id}/data", "data", read))
    session = legacy_session(core)
    result = await call_legacy(core, session, "resources/read", {"uri": "x://42/data"})
    assert result["contents"] == [{"uri": "x://42/data", "text": "item 42"}]
    with pytest.raises(McpError) as caught:
        await call_legacy(core, session, "resources/read", {"uri": "x://nope"})
    assert caught.value.code == -32602
    assert caught.value.data == {"uri": "x://nope"}


# -- input required (2026-07-28) and server→client requests (legacy) ------------------------------


async def test_input_required_then_resumed_with_answers() -> None:
    """Each round asks for the missing key; the signed state carries earlier answers."""
    core, _ = make_core()
    caps: JSON = {"elicitation": {}}
    first = await call_modern(core, "tools/call", {"name": "ask"}, "ask", caps)
    assert first["resultType"] == "input_required"
    assert list(first["inputRequests"]) == ["name"]
    assert first["inputRequests"]["name"]["method"] == "elicitation/create"
    answer = {"action": "accept", "content": "Ada"}
    second = await call_modern(
        core,
        "tools/call",
        {"name": "ask", "inputResponses": {"name": answer}, "requestState": first["requestState"]},
        "ask",
        caps,
    )
    assert list(second["inputRequests"]) == ["city"]
    third = await call_modern(
        core,
        "tools/call",
        {
            "name": "ask",
            "inputResponses": {"city": {"action": "accept", "content": "Paris"}},
            "requestState": second["requestState"],
        },
        "ask",
        caps,
    )
    assert third["resultType"] == "complete"
    assert third["content"][0]["text"] == "Ada Paris"


async def test_tampered_request_state_rejected() -> None:
    """A modified requestState fails its integrity check."""
    core, _ = make_core()
    caps: JSON = {"elicitation": {}}
    first = await call_modern(core, "tools/call", {"name": "ask"}, "ask", caps)
    with pytest.raises(InvalidParams, match="requestState"):
        await call_modern(
            core,
            "tools/call",
            {"name": "ask", "requestState": first["requestState"] + "x"},
            "ask",
            caps,
        )


async def test_elicit_without_capability_is_32021() -> None:
    """Asking a client that did not declare elicitation is a MissingCapability."""
    core, _ = make_core()
    with pytest.raises(MissingCapability) as caught:
        await call_modern(core, "tools/call", {"name": "ask"}, "ask")
    assert caught.value.data == {"requiredCapabilities": {"elicitation": {}}}


async def test_legacy_elicit_is_a_server_request() -> None:
    """On a legacy session ctx.elicit sends elicitation/create through the peer."""
    core, _ = make_core()
    session = legacy_session(core, {"elicitation": {}})
    peer = RecordingPeer({"elicitation/create": {"action": "accept", "content": "X"}})
    result = await call_legacy(core, session, "tools/call", {"name": "ask"}, peer)
    assert result["content"][0]["text"] == "X X"
    assert [m for m, _ in peer.requests] == ["elicitation/create", "elicitation/create"]


# -- tasks ---------------------------------------------------------------------------------------


def long_tool(started: trio.Event, cancelled: trio.Event, release: trio.Event) -> Tool:
    async def handler(ctx: RequestContext, args: JSON) -> ToolResult:
        assert ctx.as_task
        started.set()
        try:
            await release.wait()
        except trio.Cancelled:
            cancelled.set()
            raise
        return ToolResult([{"type": "text", "text": "done"}])

    return Tool("long", "Long", {"type": "object"}, handler, task_support="optional")


async def test_legacy_task_result_carries_related_task(running_core: Any) -> None:
    """A task-augmented call returns a task; tasks/result returns the result with related-task."""
    core, registry = running_core
    started, release = trio.Event(), trio.Event()
    registry.add_tool(long_tool(started, trio.Event(), release))
    session = legacy_session(core)
    created = await call_legacy(core, session, "tools/call", {"name": "long", "task": {}})
    task_id = created["task"]["taskId"]
    assert created["task"]["status"] == "working"
    await started.wait()
    release.set()
    result = await call_legacy(core, session, "tasks/result", {"taskId": task_id})
    assert result["content"][0]["text"] == "done"
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task_id}
    status = await call_legacy(core, session, "tasks/get", {"taskId": task_id})
    assert status["status"] == "completed"


async def test_task_cancel_cancels_the_handler(running_core: Any) -> None:
    """tasks/cancel cancels the handler's scope; cancelling again is -32602."""
    core, registry = running_core
    started, release = trio.Event(), trio.Event()
    cancelled = trio.Event()
    registry.add_tool(long_tool(started, cancelled, release))
    session = legacy_session(core)
    created = await call_legacy(core, session, "tools/call", {"name": "long", "task": {}})
    task_id = created["task"]["taskId"]
    await started.wait()
    answer = await call_legacy(core, session, "tasks/cancel", {"taskId": task_id})
    assert answer["status"] == "cancelled"
    with trio.fail_after(10):
        await cancelled.wait()
    with pytest.raises(InvalidParams):
        await call_legacy(core, session, "tasks/cancel", {"taskId": task_id})


async def test_tasks_are_scoped_to_their_session(running_core: Any) -> None:
    """Another session cannot see a task."""
    core, registry = running_core
    registry.add_tool(long_tool(trio.Event(), trio.Event(), trio.Event()))
    created = await call_legacy(
        core, legacy_session(core), "tools/call", {"name": "long", "task": {}}
    )
    other, _ = core.initialize({"protocolVersion": "2025-11-25", "capabilities": {}}, "s2")
    with pytest.raises(InvalidParams, match="Unknown task"):
        await call_legacy(core, other, "tasks/get", {"taskId": created["task"]["taskId"]})


async def test_modern_task_parks_for_input_and_resumes(running_core: Any) -> None:
    """A modern task asking for input is input_required until tasks/update answers it."""
    core, registry = running_core

    async def confirm(ctx: RequestContext, args: JSON) -> ToolResult:
        answer = await ctx.elicit("sure?", {"type": "object"}, key="confirm")
        return ToolResult([{"type": "text", "text": answer["action"]}])

    registry.add_tool(Tool("confirm", "C", {"type": "object"}, confirm, task_support="optional"))
    caps: JSON = {"elicitation": {}, "extensions": {"io.modelcontextprotocol/tasks": {}}}
    created = await call_modern(core, "tools/call", {"name": "confirm"}, "confirm", caps)
    assert created["resultType"] == "task"
    task_id = created["taskId"]
    with trio.fail_after(10):
        while True:
            task = await call_modern(core, "tasks/get", {"taskId": task_id}, task_id, caps)
            if task["status"] == "input_required":
                break
            await trio.sleep(0.01)
    assert list(task["inputRequests"]) == ["confirm"]
    ack = await call_modern(
        core,
        "tasks/update",
        {"taskId": task_id, "inputResponses": {"confirm": {"action": "accept"}}},
        task_id,
        caps,
    )
    assert ack["resultType"] == "complete"
    with trio.fail_after(10):
        while task["status"] != "completed":
            await trio.sleep(0.01)
            task = await call_modern(core, "tasks/get", {"taskId": task_id}, task_id, caps)
    assert task["result"]["content"][0]["text"] == "accept"


async def test_required_task_tool_needs_the_extension() -> None:
    """A task-required tool called without the tasks extension is -32021."""
    core, registry = make_core()
    registry.add_tool(Tool("job", "J", {"type": "object"}, echo, task_support="required"))
    with pytest.raises(MissingCapability) as caught:
        await call_modern(core, "tools/call", {"name": "job"}, "job")
    assert caught.value.data == {
        "requiredCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}
    }


async def test_removed_methods_unknown_on_modern_leg() -> None:
    """ping and tasks/list are not served on 2026-07-28."""
    core, _ = make_core()
    assert not core.knows("modern", "ping")
    assert not core.knows("modern", "tasks/list")
    assert core.knows("legacy", "ping")


def test_registry_listeners_fan_out_and_detach() -> None:
    """list_changed and resource_updated reach listeners until they detach."""
    registry = Registry()
    seen: list[Any] = []
    remove = registry.add_listener(seen.append)
    registry.list_changed("tools")
    registry.resource_updated("x://1")
    remove()
    registry.list_changed("prompts")
    assert [type(e).__name__ for e in seen] == ["ListChanged", "ResourceUpdated"]


def test_envelope_is_frozen() -> None:
    """Envelopes are immutable records."""
    env = Envelope("legacy", "2025-11-25", {}, None, None)
    with pytest.raises(AttributeError):
        env.version = "x"  # type: ignore[misc]


async def test_pre_task_input_is_gathered_before_the_task(running_core: Any) -> None:
    """before_task input ends the call with input_required; the answered retry creates the task."""
    core, registry = running_core

    async def greet(ctx: RequestContext, args: JSON) -> ToolResult:
        asked = {"user_name": ("elicitation/create", {"message": "name?", "requestedSchema": {}})}
        answers = await ctx.ask(asked, before_task=True)
        return ToolResult([{"type": "text", "text": f"hi {answers['user_name']['content']}"}])

    registry.add_tool(Tool("greet", "G", {"type": "object"}, greet, task_support="required"))
    caps: JSON = {"elicitation": {}, "extensions": {"io.modelcontextprotocol/tasks": {}}}
    first = await call_modern(core, "tools/call", {"name": "greet"}, "greet", caps)
    assert first["resultType"] == "input_required"
    assert "taskId" not in first
    answer = {"user_name": {"action": "accept", "content": "Ada"}}
    params = {"name": "greet", "inputResponses": answer, "requestState": first["requestState"]}
    created = await call_modern(core, "tools/call", params, "greet", caps)
    assert created["resultType"] == "task"
    assert "requestState" not in created
    task_id = created["taskId"]
    with trio.fail_after(10):
        while True:
            task = await call_modern(core, "tasks/get", {"taskId": task_id}, task_id, caps)
            if task["status"] == "completed":
                break
            await trio.sleep(0.01)
    assert task["result"]["content"][0]["text"] == "hi Ada"
