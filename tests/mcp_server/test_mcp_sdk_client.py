"""The official Python SDK client (``mcp`` 2.3.0) against the conformance fixtures, both eras.

Each test starts the fixture registry on a real Hypercorn server (``_support.mcp_http``) and
talks to it with ``mcp.Client``: ``mode="auto"`` probes ``server/discover`` and lands on
2026-07-28; ``mode="legacy"`` forces the ``initialize`` handshake (2025-11-25).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import mcp_types as types
import pytest
import trio
from _support.mcp_http import serving
from _support.sdk_mcp_tasks import (
    ModernCancelTask,
    ModernTask,
    ModernTaskParams,
    TasksExtension,
    legacy_task_call,
    poll_modern,
)
from conformance.server import WATCHED_URI, build_registry
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError
from pydantic import FileUrl

Mode = Literal["auto", "legacy"]
MODES: tuple[Mode, ...] = ("auto", "legacy")
ERA = {"auto": "2026-07-28", "legacy": "2025-11-25"}


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """The ``/mcp`` URL of a live server holding every conformance fixture."""
    async with serving(build_registry()) as mcp_url:
        yield mcp_url


def texts(result: types.CallToolResult | types.GetPromptResult) -> list[str]:
    """The text blocks of a tool result or the text contents of a prompt's messages."""
    if isinstance(result, types.CallToolResult):
        return [block.text for block in result.content if isinstance(block, types.TextContent)]
    return [
        message.content.text
        for message in result.messages
        if isinstance(message.content, types.TextContent)
    ]


async def accept_name(
    context: ClientRequestContext, params: types.ElicitRequestParams
) -> types.ElicitResult:
    """An elicitation callback that answers every form with a fixed user."""
    return types.ElicitResult(action="accept", content={"name": "Ada", "response": "yes"})


async def answer_paris(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    """A sampling callback standing in for the client's model."""
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="Paris"),
        model="stand-in",
        stop_reason="endTurn",
    )


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_negotiates_the_expected_era(url: str, mode: Mode) -> None:
    """auto lands on 2026-07-28 via server/discover; legacy on 2025-11-25 via initialize."""
    async with Client(url, mode=mode) as client:
        assert client.protocol_version == ERA[mode]
        assert client.server_capabilities.tools is not None


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_lists_and_calls_tools(url: str, mode: Mode) -> None:
    """tools/list names the fixtures and tools/call returns their content."""
    async with Client(url, mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"test_simple_text", "test_image_content", "slow_compute"} <= names
        result = await client.call_tool("test_simple_text", {})
        assert texts(result) == ["This is a simple text response for testing."]
        image = (await client.call_tool("test_image_content", {})).content[0]
        assert isinstance(image, types.ImageContent)
        assert image.mime_type == "image/png"


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_sees_tool_errors_as_results(url: str, mode: Mode) -> None:
    """A failing tool is a result with isError, not a protocol error."""
    async with Client(url, mode=mode) as client:
        result = await client.call_tool("test_error_handling", {})
        assert result.is_error is True


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_sees_schema_violations_as_tool_errors(url: str, mode: Mode) -> None:
    """Arguments that break the input schema come back as a tool error naming the field."""
    async with Client(url, mode=mode) as client:
        result = await client.call_tool("greet", {"name": 5})
    assert result.is_error is True
    assert texts(result) == ["Invalid arguments: expected string, got integer @ $.arguments.name"]


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_reads_resources_and_templates(url: str, mode: Mode) -> None:
    """Static text, static binary and a templated resource read back as declared."""
    async with Client(url, mode=mode) as client:
        uris = {str(resource.uri) for resource in (await client.list_resources()).resources}
        assert {"test://static-text", "test://static-binary", WATCHED_URI} <= uris
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["test://template/{id}/data"]

        text = (await client.read_resource("test://static-text")).contents[0]
        assert isinstance(text, types.TextResourceContents)
        assert text.text == "This is the content of the static text resource."
        blob = (await client.read_resource("test://static-binary")).contents[0]
        assert isinstance(blob, types.BlobResourceContents)
        assert blob.mime_type == "image/png"
        templated = (await client.read_resource("test://template/42/data")).contents[0]
        assert isinstance(templated, types.TextResourceContents)
        assert json.loads(templated.text)["id"] == "42"


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_gets_resource_not_found(url: str, mode: Mode) -> None:
    """Reading an unknown URI is an error, never empty contents."""
    async with Client(url, mode=mode) as client:
        with pytest.raises(MCPError):
            await client.read_resource("test://no-such-resource")


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_renders_prompts(url: str, mode: Mode) -> None:
    """prompts/get substitutes the arguments; a missing required argument is rejected."""
    async with Client(url, mode=mode) as client:
        names = {prompt.name for prompt in (await client.list_prompts()).prompts}
        assert {"test_simple_prompt", "test_prompt_with_arguments"} <= names
        rendered = await client.get_prompt(
            "test_prompt_with_arguments", {"arg1": "one", "arg2": "two"}
        )
        assert texts(rendered) == ["Prompt with arguments: arg1='one', arg2='two'"]
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("test_prompt_with_arguments", {"arg1": "one"})
        assert caught.value.error.code == types.INVALID_PARAMS


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_completes_prompt_arguments(url: str, mode: Mode) -> None:
    """completion/complete returns the candidates that start with the partial value."""
    async with Client(url, mode=mode) as client:
        result = await client.complete(
            types.PromptReference(type="ref/prompt", name="test_prompt_with_arguments"),
            {"name": "arg1", "value": "par"},
        )
        assert result.completion.values == ["paris", "park", "party"]


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_receives_progress(url: str, mode: Mode) -> None:
    """A tool's progress arrives at the caller's callback, in order, before the result."""
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(url, mode=mode) as client:
        await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
    assert [step[0] for step in seen] == [0, 50, 100]
    assert all(step[1] == 100 for step in seen)


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_receives_log_messages(url: str, mode: Mode) -> None:
    """Log messages reach the logging callback (modern: because the client opted in)."""
    seen: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        seen.append(params.data)

    async with Client(url, mode=mode, logging_callback=on_log, log_level="info") as client:
        await client.call_tool("test_tool_with_logging", {})
    assert seen == ["Tool execution started", "Tool processing data", "Tool execution completed"]


async def test_sdk_client_without_log_level_gets_no_logs_on_2026(url: str) -> None:
    """On 2026-07-28 a request that did not set a log level receives no log messages."""
    seen: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        seen.append(params.data)

    async with Client(url, logging_callback=on_log) as client:
        result = await client.call_tool("test_tool_with_logging", {})
    assert texts(result) == ["Tool with logging executed successfully"]
    assert seen == []


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_answers_elicitation(url: str, mode: Mode) -> None:
    """Elicitation reaches the client's callback (legacy: a request; modern: input_required)."""
    async with Client(url, mode=mode, elicitation_callback=accept_name) as client:
        result = await client.call_tool("test_input_required_result_elicitation", {})
    assert texts(result) == ["Hello, Ada!"]


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_answers_sampling(url: str, mode: Mode) -> None:
    """Sampling reaches the client's callback and its answer reaches the tool."""
    async with Client(url, mode=mode, sampling_callback=answer_paris) as client:
        result = await client.call_tool("test_sampling", {"prompt": "Capital of France?"})
    assert texts(result) == ["LLM response: Paris"]


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_answers_several_inputs_at_once(url: str, mode: Mode) -> None:
    """Elicitation, sampling and roots asked together are all answered before the result."""

    async def roots(context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=FileUrl("file:///work"), name="work")])

    async with Client(
        url,
        mode=mode,
        elicitation_callback=accept_name,
        sampling_callback=answer_paris,
        list_roots_callback=roots,
    ) as client:
        result = await client.call_tool("test_input_required_result_multiple_inputs", {})
    assert texts(result) == ["Paris, Ada! (1 roots)"]


async def test_sdk_client_gets_missing_capability_on_2026(url: str) -> None:
    """A tool that needs sampling from a client without it fails with -32021."""
    async with Client(url) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("test_missing_capability", {})
    assert caught.value.error.code == -32021
    assert "sampling" in caught.value.error.message
    assert caught.value.error.data == {"requiredCapabilities": {"sampling": {}}}


# resources/subscribe is the legacy era's API on purpose here; the SDK flags it as deprecated.
LEGACY_SUBSCRIBE = pytest.mark.filterwarnings(
    "ignore:resources/(un)?subscribe is removed:mcp.shared.exceptions.MCPDeprecationWarning"
)


@LEGACY_SUBSCRIBE
async def test_sdk_legacy_subscription_receives_resource_updates(url: str) -> None:
    """resources/subscribe, then a change: notifications/resources/updated reaches the client."""
    updated: list[str] = []
    arrived = trio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))
            arrived.set()

    async with Client(url, mode="legacy", message_handler=on_message) as client:
        await client.session.subscribe_resource(WATCHED_URI)
        await client.call_tool("test_touch_watched_resource", {})
        with trio.fail_after(10):
            await arrived.wait()
        contents = (await client.read_resource(WATCHED_URI)).contents[0]
    assert updated == [WATCHED_URI]
    assert isinstance(contents, types.TextResourceContents)
    assert contents.text.endswith("version 1")


@LEGACY_SUBSCRIBE
async def test_sdk_legacy_unsubscribed_client_gets_no_updates(url: str) -> None:
    """After resources/unsubscribe a change is not announced to that client."""
    updated: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))

    async with Client(url, mode="legacy", message_handler=on_message) as client:
        await client.session.subscribe_resource(WATCHED_URI)
        await client.session.unsubscribe_resource(WATCHED_URI)
        await client.call_tool("test_touch_watched_resource", {})
        # A second, subscribed client proves the update went out before we look.
        seen = trio.Event()

        async def witness(message: Any) -> None:
            if isinstance(message, types.ResourceUpdatedNotification):
                seen.set()

        async with Client(url, mode="legacy", message_handler=witness) as other:
            await other.session.subscribe_resource(WATCHED_URI)
            await other.call_tool("test_touch_watched_resource", {})
            with trio.fail_after(10):
                await seen.wait()
    assert updated == []


async def test_sdk_listen_receives_resource_updates_on_2026(url: str) -> None:
    """subscriptions/listen with a resource filter delivers its update events."""
    with trio.fail_after(10):
        async with (
            Client(url) as client,
            client.listen(resource_subscriptions=[WATCHED_URI]) as subscription,
        ):
            await client.call_tool("test_touch_watched_resource", {})
            event = await subscription.__anext__()
    assert WATCHED_URI in repr(event)


async def test_sdk_listen_receives_tool_list_changes_on_2026(url: str) -> None:
    """A tools list change reaches a listen stream that asked for it, and the list did change."""
    with trio.fail_after(10):
        async with Client(url) as client:
            before = {tool.name for tool in (await client.list_tools()).tools}
            async with client.listen(tools_list_changed=True) as subscription:
                await client.call_tool("test_trigger_tool_change", {})
                event = await subscription.__anext__()
            after = {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}
    assert "tools" in repr(event).lower()
    assert after - before == {"test_dynamic_tool"}


# ----- Tasks -----------------------------------------------------------------------------------


async def test_sdk_client_runs_a_task_on_2026(url: str) -> None:
    """With the tasks extension a task tool answers a task; tasks/get then inlines its result."""
    extension = TasksExtension()
    with trio.fail_after(30):
        async with Client(url, extensions=[extension]) as client:
            result = await client.call_tool("slow_compute", {"seconds": 0.2, "label": "sdk"})
    assert [task.status for task in extension.created] == ["working"]
    assert texts(result) == ["Computed sdk after 0.2s"]


async def test_sdk_client_without_tasks_extension_runs_inline_on_2026(url: str) -> None:
    """Without the extension the same optional-task tool answers synchronously."""
    async with Client(url) as client:
        result = await client.call_tool("slow_compute", {"seconds": 0, "label": "inline"})
    assert texts(result) == ["Computed inline after 0s"]


async def test_sdk_client_cancels_a_task_on_2026(url: str) -> None:
    """tasks/cancel on a running task ends it as cancelled."""
    with trio.fail_after(30):
        async with Client(url, extensions=[TasksExtension()]) as client:
            created = await client.session.call_tool(
                "slow_compute", {"seconds": 60, "label": "cancel-me"}, allow_claimed=True
            )
            assert isinstance(created, ModernTask)
            await client.session.send_request(
                ModernCancelTask(params=ModernTaskParams(task_id=created.task_id)), types.Result
            )
            state = await poll_modern(client.session, created.task_id)
    assert state.status == "cancelled"


async def test_sdk_legacy_client_runs_a_task(url: str) -> None:
    """2025-11-25: params.task makes a task; tasks/get sees it; tasks/result returns the result."""
    with trio.fail_after(30):
        async with Client(url, mode="legacy") as client:
            task = await legacy_task_call(client, "slow_compute", {"seconds": 0.2, "label": "old"})
            assert task.status == "working"
            get = types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task.task_id))
            seen = await client.session.send_request(get, types.GetTaskResult)
            assert seen.task_id == task.task_id
            payload = types.GetTaskPayloadRequest(
                params=types.GetTaskPayloadRequestParams(task_id=task.task_id)
            )
            result = await client.session.send_request(payload, types.CallToolResult)
            final = await client.session.send_request(get, types.GetTaskResult)
    assert texts(result) == ["Computed old after 0.2s"]
    assert (result.meta or {})["io.modelcontextprotocol/related-task"] == {"taskId": task.task_id}
    assert final.status == "completed"


async def test_sdk_legacy_client_cancels_a_task(url: str) -> None:
    """2025-11-25: tasks/cancel on a running task answers it cancelled; a second cancel fails."""
    with trio.fail_after(30):
        async with Client(url, mode="legacy") as client:
            task = await legacy_task_call(client, "slow_compute", {"seconds": 60, "label": "x"})
            cancel = types.CancelTaskRequest(
                params=types.CancelTaskRequestParams(task_id=task.task_id)
            )
            cancelled = await client.session.send_request(cancel, types.CancelTaskResult)
            with pytest.raises(MCPError) as caught:
                await client.session.send_request(cancel, types.CancelTaskResult)
    assert cancelled.status == "cancelled"
    assert caught.value.error.code == types.INVALID_PARAMS


async def test_sdk_legacy_client_hears_tool_list_changes(url: str) -> None:
    """On a legacy session a tools list change arrives as notifications/tools/list_changed."""
    changed = trio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    with trio.fail_after(20):
        async with Client(url, mode="legacy", message_handler=on_message) as client:
            before = {tool.name for tool in (await client.list_tools()).tools}
            await client.call_tool("test_trigger_tool_change", {})
            await changed.wait()
            after = {tool.name for tool in (await client.list_tools()).tools}
    assert after - before == {"test_dynamic_tool"}
