"""Writing one ``EventStream`` out: a plain JSON answer when allowed, else SSE until it ends.

How a stream is written is a frozen ``WriteMode`` (JSON allowed, priming, a final event when
draining, extra headers); the ``SseWriter`` holds what is the same for every stream.
"""

from __future__ import annotations

from typing import Final

import attrs

from ._asgi import JSON_HEADERS, Send, chunk, end_body, respond
from ._streams import EventStream

SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


@attrs.frozen
class WriteMode:
    """How one stream is written."""

    json_ok: bool
    """A lone final message may go as a plain JSON answer (unless ``sse_responses``)."""
    session_id: str | None = None
    """A legacy session's stream: events carry ids, and the answer names the session."""
    priming: bool = True
    """Start with an event a client can resume from (legacy sessions only)."""
    final: bytes | None = None
    """Sent as the last event when the stream ends by draining."""
    drain_ends: bool = False
    """The stream never ends by itself (GET and listen streams): draining ends it."""
    extra: tuple[tuple[bytes, bytes], ...] = ()
    """More response headers."""


JSON_ANSWER: Final = WriteMode(json_ok=True)
SSE_ANSWER: Final = WriteMode(json_ok=False)


@attrs.define(eq=False)
class SseWriter:
    """Writes streams as JSON or SSE; ``draining`` ends the streams that never end by themselves."""

    sse_responses: bool
    retry_ms: int
    draining: bool = False

    async def write(
        self,
        send: Send,
        stream: EventStream,
        after: int,
        mode: WriteMode,
        generation: int | None = None,
    ) -> None:
        """Send ``stream`` past event ``after`` as JSON (one final message, when allowed) or as
        SSE until it ends, detaches from ``generation`` or drains.

        A request's stream runs to its result. A writer that fell behind the bounded buffer ends
        so the client resumes.
        """
        headers = list(mode.extra)
        if mode.session_id is not None:
            headers.append((b"mcp-session-id", mode.session_id.encode()))
        if generation is None:
            generation = stream.detached
        if mode.json_ok and not self.sse_responses:
            while stream.seq <= after and not stream.closed and stream.detached == generation:
                await stream.wait()
            only = stream.only_message()
            if only is not None:
                await respond(send, stream.status, only, JSON_HEADERS + headers)
                return
        ids = mode.session_id is not None
        if stream.closed and stream.detached == generation:
            # Everything is known already: one SSE body with a length, no chunked streaming.
            events, gap = stream.after(after)
            if not gap:
                frames = [self._priming(stream, after)] if mode.priming and ids else []
                frames += [_frame(stream.key, seq, data, ids) for seq, data in events]
                if events:
                    stream.delivered = max(stream.delivered, events[-1][0])
                await respond(send, 200, b"".join(frames), SSE_HEADERS + headers)
                return
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
        await self._events(send, stream, after, mode, generation)
        await end_body(send)

    def _priming(self, stream: EventStream, seq: int) -> bytes:
        """An event with an id and a retry delay and no data: where a client resumes from."""
        return f"id: {stream.key}:{seq}\nretry: {self.retry_ms}\ndata: \n\n".encode()

    async def _events(
        self, send: Send, stream: EventStream, after: int, mode: WriteMode, generation: int
    ) -> None:
        """The SSE events of ``stream`` after ``after``, until it ends, detaches or drains."""
        ids = mode.session_id is not None
        if mode.priming and ids:
            await chunk(send, self._priming(stream, after))
        last = after
        while True:
            events, gap = stream.after(last)
            if gap:
                break
            for seq, data in events:
                await chunk(send, _frame(stream.key, seq, data, ids))
                last = seq
                stream.delivered = max(stream.delivered, seq)
            if (stream.closed and last >= stream.seq) or stream.detached != generation:
                break
            if mode.drain_ends and self.draining:
                if mode.final is not None:
                    await chunk(send, b"event: message\ndata: " + mode.final + b"\n\n")
                elif ids:
                    await chunk(send, self._priming(stream, last))
                break
            if stream.seq == last:
                await stream.wait()


def _frame(key: str, seq: int, data: bytes, ids: bool) -> bytes:
    prefix = f"id: {key}:{seq}\n".encode() if ids else b""
    return prefix + b"event: message\ndata: " + data + b"\n\n"
