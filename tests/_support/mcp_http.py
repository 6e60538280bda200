"""A live MCP server for tests (``async with serving(registry, **settings) as url``) and the raw
protocol helpers transport tests speak to it with."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from mcp_server import HttpSettings, Registry, serve


@asynccontextmanager
async def serving(registry: Registry, **settings: Any) -> AsyncIterator[str]:
    """Yield the ``/mcp`` URL of a server on 127.0.0.1:0; on exit, drain it and wait for it.

    ``settings`` override ``HttpSettings`` fields (auth is off unless ``auth_token`` is given).
    The server runs in a nursery this context owns; the URL uses ``localhost``.
    """
    settings.setdefault("port", 0)
    settings.setdefault("graceful_timeout_s", 2.0)
    config = HttpSettings(**settings)
    shutdown = trio.Event()
    stopped = trio.Event()

    async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(registry, config, shutdown=shutdown, task_status=task_status)
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(run)
        url = urls[0].replace("127.0.0.1", "localhost") + "/mcp"
        try:
            yield url
        finally:
            shutdown.set()
            with trio.move_on_after(config.graceful_timeout_s + 10):
                await stopped.wait()
            nursery.cancel_scope.cancel()


# -- raw protocol helpers for transport tests ------------------------------------------------------

JSON = dict[str, Any]
ACCEPT = "application/json, text/event-stream"
BASE_HEADERS = {"accept": ACCEPT, "content-type": "application/json"}
LEGACY = "2025-11-25"
MODERN = "2026-07-28"


def rpc(rid: int | str | None, method: str, params: JSON | None = None) -> JSON:
    """A JSON-RPC request (``rid`` given) or notification."""
    message: JSON = {"jsonrpc": "2.0", "method": method}
    if rid is not None:
        message["id"] = rid
    if params is not None:
        message["params"] = params
    return message


async def open_session(client: httpx.AsyncClient, url: str, caps: JSON | None = None) -> JSON:
    """Initialize a 2025-11-25 session; the headers every later request of it carries."""
    params = {"protocolVersion": LEGACY, "capabilities": caps or {}, "clientInfo": {}}
    response = await client.post(url, headers=BASE_HEADERS, json=rpc(0, "initialize", params))
    assert response.status_code == 200, response.text
    headers = {
        **BASE_HEADERS,
        "mcp-session-id": response.headers["mcp-session-id"],
        "mcp-protocol-version": LEGACY,
    }
    done = await client.post(url, headers=headers, json=rpc(None, "notifications/initialized"))
    assert done.status_code == 202, done.text
    return headers


def modern_headers(method: str, name: str | None = None) -> JSON:
    """The routing headers of a 2026-07-28 request."""
    headers = {**BASE_HEADERS, "mcp-protocol-version": MODERN, "mcp-method": method}
    if name is not None:
        headers["mcp-name"] = name
    return headers


def modern_params(**params: Any) -> JSON:
    """``params`` with the 2026-07-28 ``_meta`` envelope."""
    return {
        **params,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    }


async def read_events(response: httpx.Response) -> AsyncIterator[tuple[str | None, JSON | None]]:
    """(id, message) per SSE event; message is None for priming/retry events."""
    event_id: str | None = None
    data: str | None = None
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "":
            yield event_id, json.loads(data) if data else None
            event_id, data = None, None
