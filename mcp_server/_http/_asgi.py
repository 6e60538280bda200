"""ASGI plumbing for ``/mcp``: the callable types, complete answers, chunks and disconnects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import orjson
import trio

from .._core import McpError, RequestId

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS: Final = [(b"content-type", b"application/json")]


class HttpError(Exception):
    """An HTTP-level rejection with an optional JSON-RPC error body."""

    def __init__(
        self,
        status: int,
        error: McpError | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        rid: RequestId | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.error = error
        self.headers = headers or []
        self.rid = rid


def dumps(obj: Any) -> bytes:
    """One JSON message as bytes."""
    return orjson.dumps(obj)


async def watch_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` when the client goes away.

    Hypercorn also delivers ``http.disconnect`` right after the response's last byte, so this
    returns by itself once the answer is sent (cancelling a finished scope does nothing).
    """
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            scope.cancel()
            return


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """A complete answer; ``content-length`` spares chunked framing and a terminator write."""
    if status != 204:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def end_body(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})
