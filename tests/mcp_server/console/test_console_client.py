"""The task CLI's MCP client against a live server: JSON and SSE answers, and the GET stream's
notifications (after its priming event)."""

from __future__ import annotations

import pytest
import trio
from _support.mcp_http import serving

from mcp_server._console._client import JSON, open_session
from mcp_server._core import Registry, Resource, ResourceContents, TextContents


def registry_with_status() -> Registry:
    """A registry with one JSON resource, ``test://status``."""
    registry = Registry()

    async def read(uri: str) -> list[ResourceContents]:
        return [TextContents(uri=uri, text='{"ok": true}', mime_type="application/json")]

    registry.add_resource(Resource(uri="test://status", name="status", read=read))
    return registry


@pytest.mark.parametrize("sse_responses", [False, True])
async def test_reads_a_resource_answered_as_json_or_sse(sse_responses: bool) -> None:
    """``read_json`` gets the value whether the server answers with JSON or an SSE stream."""
    async with (
        serving(registry_with_status(), auth_token="tok", sse_responses=sse_responses) as url,
        open_session(url, "tok") as session,
    ):
        assert await session.read_json("test://status") == {"ok": True}


async def test_listen_delivers_resource_updates_after_the_priming_event() -> None:
    """A subscribed resource's update arrives on the GET stream, past its empty priming event."""
    registry = registry_with_status()
    async with serving(registry, auth_token="tok") as url, open_session(url, "tok") as session:
        await session.request("resources/subscribe", {"uri": "test://status"})
        send, receive = trio.open_memory_channel[JSON](8)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.listen, send)
            registry.resource_updated("test://status")
            with trio.fail_after(10):
                message = await receive.receive()
            nursery.cancel_scope.cancel()
    assert message == {
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": {"uri": "test://status"},
    }
