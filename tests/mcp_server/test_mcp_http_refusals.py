"""What the Streamable HTTP transport refuses, and how clearly: protocol-version headers,
``subscriptions/listen`` floods and oversized filters, Host and Origin variants."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from _support.mcp_http import (
    JSON,
    modern_headers,
    modern_params,
    open_session,
    rpc,
    serving,
)

from mcp_server import Registry, RequestContext, Tool, ToolResult

SUPPORTED = ("2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")


def make_registry() -> Registry:
    registry = Registry()

    async def echo(ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult([{"type": "text", "text": str(args.get("text", ""))}])

    registry.add_tool(Tool("echo", "Echo", {"type": "object"}, echo))
    return registry


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as http:
        yield http


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with serving(make_registry()) as served:
        yield served


def assert_names_supported_versions(response: httpx.Response, requested: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == -32022
    assert requested in error["message"]
    assert all(version in error["message"] for version in SUPPORTED), error["message"]
    assert error["data"] == {"supported": list(SUPPORTED), "requested": requested}


# -- MCP-Protocol-Version ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ping", "tools/list"])
async def test_legacy_session_version_header(
    url: str, client: httpx.AsyncClient, method: str
) -> None:
    """On a session a served version works; an unsupported one is 400 naming the served ones."""
    headers = await open_session(client, url)
    served = await client.post(
        url, headers={**headers, "mcp-protocol-version": "2025-03-26"}, json=rpc(1, method)
    )
    assert served.status_code == 200
    assert "result" in served.json()
    unsupported = await client.post(
        url, headers={**headers, "mcp-protocol-version": "1999-01-01"}, json=rpc(2, method)
    )
    assert_names_supported_versions(unsupported, "1999-01-01")
    assert unsupported.json()["id"] == 2


async def test_legacy_session_version_header_on_get_and_delete(
    url: str, client: httpx.AsyncClient
) -> None:
    """GET and DELETE with an unsupported version are 400 too (not 405), and leave the session."""
    headers = await open_session(client, url)
    bad = {**headers, "mcp-protocol-version": "1999-01-01"}
    assert_names_supported_versions(await client.get(url, headers=bad), "1999-01-01")
    assert_names_supported_versions(await client.delete(url, headers=bad), "1999-01-01")
    still = await client.post(url, headers=headers, json=rpc(3, "ping"))
    assert still.status_code == 200


@pytest.mark.parametrize("method", ["ping", "tools/list"])
async def test_modern_version_header(url: str, client: httpx.AsyncClient, method: str) -> None:
    """Without a session, 2026-07-28 works and an unknown version is 400 naming the served ones."""
    listed = await client.post(
        url, headers=modern_headers("tools/list"), json=rpc(1, "tools/list", modern_params())
    )
    assert listed.status_code == 200
    assert listed.json()["result"]["tools"][0]["name"] == "echo"
    params = modern_params()
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    headers = {**modern_headers(method), "mcp-protocol-version": "2099-01-01"}
    unsupported = await client.post(url, headers=headers, json=rpc(2, method, params))
    assert_names_supported_versions(unsupported, "2099-01-01")
