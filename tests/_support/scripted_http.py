"""Loopback HTTP/1.1 for the scripted model stand-ins (Anthropic, OpenAI Responses, Gemini).

Just enough HTTP for an agent CLI's client: one request per connection, answered with
``Connection: close``, as JSON or as a server-sent event stream. ``serve_loopback`` runs a
handler on ``127.0.0.1:0`` in a nursery owned by the context manager.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

__all__ = ["BadRequest", "read_request", "send_json", "send_sse", "serve_loopback"]

_MAX_HEADER_BYTES = 64 * 1024
_MAX_BODY_BYTES = 64 * 1024 * 1024


class BadRequest(Exception):
    """The request is not HTTP/1.1 this server can read; the connection is dropped."""


async def read_request(stream: trio.SocketStream) -> tuple[str, str, bytes] | None:
    """``(method, target, body)`` of the next request, or ``None`` if the peer sent nothing."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > _MAX_HEADER_BYTES:
            raise BadRequest("headers too large")
        chunk = await stream.receive_some()
        if not chunk:
            return None
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest("bad request line")
    method, target, _version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest("bad header line")
        headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(stream, bytearray(rest))
    else:
        length = int(headers.get("content-length", "0"))
        if length > _MAX_BODY_BYTES:
            raise BadRequest("body too large")
        body_buffer = bytearray(rest)
        while len(body_buffer) < length:
            chunk = await stream.receive_some()
            if not chunk:
                raise BadRequest("body cut short")
            body_buffer += chunk
        body = bytes(body_buffer[:length])
    return method, target, body


async def _read_chunked(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    body = bytearray()

    async def fill(predicate_len: int | None = None, marker: bytes | None = None) -> None:
        while (marker is not None and marker not in buffer) or (
            predicate_len is not None and len(buffer) < predicate_len
        ):
            chunk = await stream.receive_some()
            if not chunk:
                raise BadRequest("chunked body cut short")
            buffer.extend(chunk)
            if len(buffer) > _MAX_BODY_BYTES:
                raise BadRequest("body too large")

    while True:
        await fill(marker=b"\r\n")
        size_line, _, remainder = bytes(buffer).partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip(), 16)
        buffer[:] = remainder
        if size == 0:
            await fill(marker=b"\r\n")
            return bytes(body)
        await fill(predicate_len=size + 2)
        body += buffer[:size]
        del buffer[: size + 2]


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    529: "Overloaded",
}


async def send_json(
    stream: trio.SocketStream,
    status: int,
    payload: Any,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer with ``payload`` as JSON and HTTP ``status`` (and extra ``headers``)."""
    data = json.dumps(payload).encode()
    reason = _REASONS.get(status, "Error")
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nrequest-id: req_scripted\r\n{extra}"
        "Connection: close\r\n\r\n"
    )
    await stream.send_all(head.encode() + data)


async def send_sse(
    stream: trio.SocketStream,
    frames: Iterable[tuple[str | None, Any]],
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer 200 with a server-sent event stream of ``(event name or None, data)`` frames."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        f"request-id: req_scripted\r\n{extra}Connection: close\r\n\r\n"
    )
    await stream.send_all(head.encode())
    for event, data in frames:
        frame = f"event: {event}\n" if event is not None else ""
        frame += f"data: {json.dumps(data)}\n\n"
        await stream.send_all(frame.encode())


@asynccontextmanager
async def serve_loopback(
    handler: Callable[[trio.SocketStream], Awaitable[None]],
) -> AsyncIterator[str]:
    """Serve ``handler`` on ``127.0.0.1:0`` for the block; yields ``http://127.0.0.1:PORT``."""

    async def serve_one(stream: trio.SocketStream) -> None:
        async with stream:
            await handler(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, serve_one, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            nursery.cancel_scope.cancel()
