"""One request being answered, and the ``Peer`` its handler talks through."""

from __future__ import annotations

import attrs
import trio

from .._core import INVALID_REQUEST, JSON, McpError, notification_message
from ._asgi import Send, dumps
from ._sessions import HttpSession
from ._sse import JSON_ANSWER, SSE_ANSWER, SseWriter, WriteMode
from ._streams import EventStream


@attrs.define(eq=False)
class StreamPeer:
    """Peer for one request (or a session's GET stream): messages go to an ``EventStream``.

    ``exchange`` is set for a POST being answered: the first message before the result turns
    the answer into an SSE stream.
    """

    session: HttpSession | None
    stream: EventStream
    exchange: Exchange | None = None

    async def notify(self, method: str, params: JSON) -> None:
        if self.exchange is not None:
            self.exchange.stream_now()
        self.stream.push(dumps(notification_message(method, params)))

    async def request(self, method: str, params: JSON) -> JSON:
        if self.session is None:
            raise McpError(INVALID_REQUEST, f"{method} needs a legacy session")
        if self.exchange is not None:
            self.exchange.stream_now()
        return await self.session.ask(self.stream, method, params)

    def close_stream(self) -> None:
        if self.exchange is not None:
            self.exchange.stream_now()
        self.stream.detach()


@attrs.define(eq=False)
class Exchange:
    """One POSTed request being answered: JSON by default, SSE once something precedes the result.

    The handler runs in the POST's own task; the SSE writer is started only when needed, in the
    request's nursery.
    """

    writer: SseWriter
    send: Send
    stream: EventStream
    session: HttpSession | None
    nursery: trio.Nursery
    writer_started: bool = False

    def stream_now(self) -> None:
        """Start the SSE writer (once)."""
        if not self.writer_started:
            self.writer_started = True
            self.nursery.start_soon(self._write_sse, self.stream.detached)

    async def _write_sse(self, generation: int) -> None:
        await self.writer.write(self.send, self.stream, 0, self._mode(SSE_ANSWER), generation)

    async def finish(self) -> None:
        """After the result was pushed: answer with JSON unless a stream already carries it."""
        if not self.writer_started:
            self.writer_started = True
            await self.writer.write(self.send, self.stream, 0, self._mode(JSON_ANSWER))

    def _mode(self, mode: WriteMode) -> WriteMode:
        if self.session is None:
            return mode
        return attrs.evolve(mode, session_id=self.session.state.session_id)
