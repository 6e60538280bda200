"""Errors quote client-supplied names and values cut short, so they stay small."""

from __future__ import annotations

from typing import Any

import httpx
from _support.mcp_http import serving

from mcp_server import Registry, RequestContext, Tool, ToolResult
from mcp_server._core._schema import CLIP_CHARS, clip, validate

JSON = dict[str, Any]
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
STRICT = {"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": False}


async def noop(ctx: RequestContext, args: JSON) -> ToolResult:
    return ToolResult([{"type": "text", "text": "ok"}])


def test_clip_cuts_with_a_marker() -> None:
    """A long text is cut to the limit ending in …; a short one is unchanged."""
    assert clip("abc") == "abc"
    cut = clip("x" * 1000)
    assert len(cut) == CLIP_CHARS
    assert cut.endswith("…")


def test_unexpected_property_name_is_cut() -> None:
    """A 300,000-character unexpected key appears cut, with the marker, in the error path."""
    error = validate(STRICT, {"k" * 300_000: 1}, "$.arguments")
    assert error is not None
    assert error.startswith("unexpected property @ $.arguments.kkk")
    assert error.endswith("…")
    assert len(error) < 200


def test_deep_nesting_path_is_bounded() -> None:
    """A deeply nested error keeps a bounded path, ending with the failing segment."""
    schema: JSON = {"type": "integer"}
    value: Any = "x"
    for _ in range(100):
        schema = {"type": "object", "additionalProperties": schema}
        value = {"a" * 100: value}
    error = validate(schema, value, "$.arguments")
    assert error is not None
    assert error.startswith("expected integer, got string @ …")
    assert len(error) < 400


async def test_tools_call_with_a_huge_key_gets_a_small_result() -> None:
    """Over HTTP, tools/call with a 300,000-character unexpected key answers in under 2 KB."""
    registry = Registry()
    registry.add_tool(Tool("strict", "Strict", STRICT, noop))
    async with serving(registry) as url, httpx.AsyncClient(timeout=30) as http:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}}
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        response = await http.post(url, headers=HEADERS, json=init)
        headers = {
            **HEADERS,
            "mcp-session-id": response.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-11-25",
        }
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post(url, headers=headers, json=note)).status_code == 202
        call = {"name": "strict", "arguments": {"k" * 300_000: 1}}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}
        answer = await http.post(url, headers=headers, json=body)
        assert answer.status_code == 200
        assert len(answer.content) < 2048
        result = answer.json()["result"]
        assert result["isError"] is True
        assert "unexpected property @ $.arguments.kkk" in result["content"][0]["text"]
        assert "…" in result["content"][0]["text"]


async def test_unknown_tool_name_is_cut() -> None:
    """Over HTTP, a 300,000-character unknown tool name comes back cut in the error."""
    registry = Registry()
    async with serving(registry) as url, httpx.AsyncClient(timeout=30) as http:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}}
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        response = await http.post(url, headers=HEADERS, json=init)
        headers = {
            **HEADERS,
            "mcp-session-id": response.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-11-25",
        }
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "t" * 300_000},
        }
        answer = await http.post(url, headers=headers, json=body)
        assert len(answer.content) < 2048
        assert answer.json()["error"]["message"].startswith("Unknown tool: ttt")
