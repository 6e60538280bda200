"""Legacy sessions: their protocol state, streams, in-flight requests and pending asks.

With a state directory, sessions outlive the process (:mod:`._session_store`): the ones read
back at start wait *dormant* (their record only) until a request names them, and are then
revived with the same id, version, capabilities, log level and subscriptions. Their streams
are new: a revived session's stream keys carry an epoch, so an event id from before the
restart is recognised as such (the GET stream resumes with what happened since; a request's
stream cut by the restart cannot be resumed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio

from .._core import (
    INTERNAL_ERROR,
    JSON,
    ErrorResponse,
    InternalError,
    InvalidRequest,
    McpError,
    RequestId,
    Response,
    SessionState,
    clip,
)
from ._asgi import HttpError, dumps
from ._session_files import SessionRecord, id_hash
from ._streams import EventStream

_MAX_STREAMS_PER_SESSION: Final = 64
_MAX_SEQ_DIGITS: Final = 18


@attrs.define(eq=False)
class HttpSession:
    """A legacy session: protocol state, streams, in-flight requests and pending asks."""

    state: SessionState
    limit: int
    streams: dict[str, EventStream] = attrs.field(factory=dict)
    in_flight: dict[RequestId, trio.CancelScope] = attrs.field(factory=dict)
    pending: dict[RequestId, tuple[trio.Event, list[Any]]] = attrs.field(factory=dict)
    last_seen: float = attrs.field(factory=time.monotonic)
    connections: int = 0
    epoch: str = ""
    """Prefix of stream keys: empty for a new session, ``<hex>.`` for one revived after a
    restart (so an event id of the previous process names no stream of this one)."""
    ended: bool = False
    id_hash: str = attrs.field(init=False)
    """The SHA-256 of the session id: the name its record is stored under."""
    _next: int = 0

    def __attrs_post_init__(self) -> None:
        self.id_hash = id_hash(self.state.session_id)

    @property
    def standalone(self) -> EventStream:
        """The GET stream's buffer (created on first use)."""
        key = f"{self.epoch}g"
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = EventStream(key, self.limit)
        return stream

    def new_stream(self) -> EventStream:
        """A buffer for one request's SSE stream; the oldest finished ones are forgotten."""
        self._next += 1
        key = f"{self.epoch}r{self._next}"
        if len(self.streams) >= _MAX_STREAMS_PER_SESSION:
            for old_key, old in list(self.streams.items()):
                if old.closed:
                    del self.streams[old_key]
                    break
        stream = self.streams[key] = EventStream(key, self.limit)
        return stream

    async def ask(self, stream: EventStream, method: str, params: JSON) -> JSON:
        """Send a server→client request on ``stream`` and wait for the client's answer."""
        self._next += 1
        rid = f"srv-{self._next}"
        done = trio.Event()
        box: list[Any] = []
        self.pending[rid] = (done, box)
        try:
            stream.push(dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
            await done.wait()
        finally:
            self.pending.pop(rid, None)
        answer = box[0]
        if isinstance(answer, ErrorResponse):
            error = answer.error
            code = error.get("code")
            raise McpError(
                code if type(code) is int else INTERNAL_ERROR,
                str(error.get("message", "client error")),
                error.get("data"),
            )
        result: JSON = answer.result
        return result

    def answer(self, message: Response | ErrorResponse) -> None:
        """Hand the client's response to the waiting ask, if any."""
        entry = self.pending.get(message.id) if message.id is not None else None
        if entry is not None:
            entry[1].append(message)
            entry[0].set()


@attrs.define(eq=False)
class SessionTable:
    """The open sessions, bounded in number and idle time.

    ``on_end`` hears the id of each session that ends, ``on_forget`` the id hash of each that
    ends or of each dormant one that expires or is evicted; ``revive`` turns a dormant record
    back into a session when a request names it.
    """

    max_sessions: int
    idle_timeout_s: float
    on_end: Callable[[str], None]
    on_forget: Callable[[str], None] = lambda _: None
    revive: Callable[[str, SessionRecord], HttpSession] | None = None
    sessions: dict[str, HttpSession] = attrs.field(factory=dict)
    dormant: dict[str, SessionRecord] = attrs.field(factory=dict)
    """Sessions read back from disk and not yet named by a request, by id hash."""

    def find(self, session_id: str | None) -> HttpSession | None:
        """The session ``session_id`` names (revived if dormant), marked as seen now."""
        if session_id is None:
            return None
        session = self.sessions.get(session_id)
        if session is None and self.dormant and self.revive is not None:
            record = self.dormant.pop(id_hash(session_id), None)
            if record is not None:
                session = self.sessions[session_id] = self.revive(session_id, record)
        if session is not None:
            session.last_seen = time.monotonic()
        return session

    def restore(self, records: list[SessionRecord], now_wall: float) -> None:
        """Keep ``records`` dormant: the newest ``max_sessions`` not idle too long; the others
        are forgotten."""
        newest = sorted(records, key=lambda r: r.last_seen, reverse=True)
        for record in newest:
            fresh = now_wall - record.last_seen <= self.idle_timeout_s
            if fresh and len(self.sessions) + len(self.dormant) < self.max_sessions:
                self.dormant[record.id_hash] = record
            else:
                self.on_forget(record.id_hash)

    def require(self, session_id: bytes | None) -> HttpSession:
        """The session an ``Mcp-Session-Id`` header names; ``400`` without one, ``404`` unknown."""
        if session_id is None:
            raise HttpError(400, InvalidRequest("Missing Mcp-Session-Id header"))
        session = self.find(session_id.decode("latin-1"))
        if session is None:
            raise HttpError(404, InvalidRequest("Session not found"))
        return session

    def add(self, session: HttpSession) -> None:
        """Keep a new session, ending the longest idle one when full (``503`` when none is)."""
        if len(self.sessions) + len(self.dormant) >= self.max_sessions:
            if self.dormant:
                oldest = min(self.dormant.values(), key=lambda r: r.last_seen)
                del self.dormant[oldest.id_hash]
                self.on_forget(oldest.id_hash)
            else:
                idle = [
                    (s.last_seen, sid) for sid, s in self.sessions.items() if s.connections == 0
                ]
                if not idle:
                    raise HttpError(503, InternalError("Too many sessions"))
                self.end(min(idle)[1])
        self.sessions[session.state.session_id] = session

    def expire(self, now: float, now_wall: float) -> None:
        """End the sessions idle for longer than the timeout (``now`` monotonic), and forget
        the dormant ones last seen longer ago than that (``now_wall``)."""
        for session_id, session in list(self.sessions.items()):
            if (
                session.connections == 0
                and not session.in_flight
                and now - session.last_seen > self.idle_timeout_s
            ):
                self.end(session_id)
        for record in list(self.dormant.values()):
            if now_wall - record.last_seen > self.idle_timeout_s:
                del self.dormant[record.id_hash]
                self.on_forget(record.id_hash)

    def end(self, session_id: str) -> None:
        """Cancel a session's requests and close its streams."""
        session = self.sessions.pop(session_id, None)
        if session is not None:
            session.ended = True
            for scope in session.in_flight.values():
                scope.cancel()
            self.on_end(session_id)
            self.on_forget(session.id_hash)
            for stream in session.streams.values():
                stream.closed = True
                stream.wake()


def resume_point(session: HttpSession, last_event_id: str) -> tuple[EventStream, int]:
    """The stream and sequence number a ``Last-Event-ID`` names; 400 unless it names an event
    this session's streams really sent (or the priming point ``KEY:0``).

    An id past a stream's last event was never sent, so there is nothing to resume after it:
    waiting for the stream to reach it would silently skip the events in between.
    """
    key, _, seq = last_event_id.rpartition(":")
    stream = session.streams.get(key)
    shown = clip(last_event_id)
    if stream is None and session.epoch and not key.startswith(session.epoch):
        # An id from before the restart that revived this session: its events are gone.
        if key.rpartition(".")[2] == "g":
            return session.standalone, session.standalone.delivered
        raise HttpError(
            400,
            InvalidRequest(
                f"Last-Event-ID {shown!r} names a stream cut by a server restart: its "
                "request was not answered and cannot be resumed; send it again",
            ),
        )
    if stream is None:
        raise HttpError(
            400,
            InvalidRequest(
                f"Unknown Last-Event-ID: expected an event id of this session, got {shown!r}",
            ),
        )
    if not (seq.isascii() and seq.isdigit() and len(seq) <= _MAX_SEQ_DIGITS):
        raise HttpError(
            400,
            InvalidRequest(
                f"Malformed Last-Event-ID: expected STREAM:SEQ with SEQ in ASCII digits, "
                f"got {shown!r}",
            ),
        )
    after = int(seq)
    if after > stream.seq:
        raise HttpError(
            400,
            InvalidRequest(
                f"Unknown Last-Event-ID: {shown!r} was never sent; stream {key!r} has sent "
                f"{stream.seq} event(s) so far",
            ),
        )
    return stream, after
