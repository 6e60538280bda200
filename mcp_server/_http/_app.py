"""The ``/mcp`` endpoint as a raw ASGI handler in front of a Quart-trio app.

``/mcp`` is the hot path and needs to decide late between a JSON and an SSE answer while the
handler runs in a nursery the request owns, so it speaks ASGI directly; everything else
(``/healthz``, RFC 9728 metadata, lifespan) goes to the Quart-trio app.

A POST's message goes to ``Core.receive`` once; the ``Outcome`` says what to do, and this module
only carries it out: bytes, statuses, streams and sessions. Legacy (handshake-era) calls belong
to their session: a client disconnect is not a cancel there, and their events stay buffered for
``Last-Event-ID`` resumption; ``notifications/cancelled`` or ending the session cancels them.
2026-07-28 calls run in the POST's own nursery, and a closed response stream cancels them.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Final, cast

import attrs
import trio

from .._core import (
    MODERN_VERSIONS,
    SUPPORTED_VERSIONS,
    Call,
    CancelRequest,
    Core,
    DeliverResponse,
    Incoming,
    InvalidRequest,
    OpenListen,
    OpenSession,
    Outcome,
    ParseError,
    Refuse,
    RegistryEvent,
    Reply,
    SessionState,
    UnsupportedVersion,
    error_message,
    parse,
    session_notification,
    session_wants,
)
from ._asgi import (
    JSON_HEADERS,
    HttpError,
    Receive,
    Scope,
    Send,
    dumps,
    respond,
    watch_disconnect,
)
from ._exchange import Exchange, StreamPeer
from ._listens import ListenStream, ListenStreams
from ._security import RequestGuard
from ._session_files import SessionRecord
from ._session_store import SessionStore
from ._sessions import HttpSession, SessionTable, resume_point
from ._settings import HttpSettings
from ._sse import SSE_ANSWER, SseWriter, WriteMode
from ._streams import EventStream

WATCH_DELAY_S: Final = 0.02

log = logging.getLogger("mcp_server.http")


class McpApp:
    """The ASGI application: ``/mcp`` here, everything else to ``fallback`` (Quart-trio)."""

    def __init__(
        self, core: Core, settings: HttpSettings, fallback: Any, listens: ListenStreams
    ) -> None:
        self.core = core
        self.settings = settings
        self.fallback = fallback
        idle = settings.session_idle_timeout_s
        self.store: SessionStore | None = None
        if settings.state_dir is not None:
            self.store = SessionStore(settings.state_dir, max(0.05, min(60.0, idle / 10)))
        self.sessions = SessionTable(
            settings.max_sessions,
            idle,
            core.tasks.drop_owner,
            on_forget=self.store.forget if self.store is not None else lambda _: None,
            revive=self._revive,
        )
        self.listens = listens
        self.writer = SseWriter(settings.sse_responses, settings.sse_retry_ms)
        self.guard = RequestGuard.from_settings(settings)
        self._unwatched: dict[int, tuple[trio.Nursery, Receive, trio.CancelScope]] = {}
        self._unwatched_added = trio.Event()
        core.registry.add_listener(self._on_registry_event)

    # -- lifetime -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read back the sessions of the previous run (with a state directory), then expire
        idle sessions, write sessions through and start disconnect watchers, until cancelled."""
        async with trio.open_nursery() as nursery:
            if self.store is not None:
                records = await self.store.load()
                self.sessions.restore(records, time.time())
                if records:
                    log.info(
                        "%d legacy session(s) kept from the previous run",
                        len(self.sessions.dormant),
                    )
                nursery.start_soon(self.store.run, self.sessions)
            nursery.start_soon(self._expire_idle)
            nursery.start_soon(self._start_watchers)
            task_status.started()

    async def flush(self) -> None:
        """At shutdown: write every session's latest state (with a state directory)."""
        if self.store is not None:
            await self.store.flush(self.sessions)

    def _revive(self, session_id: str, record: SessionRecord) -> HttpSession:
        """A session of the previous run, named again by a request: the same protocol state,
        new streams."""
        state = SessionState(
            session_id,
            record.version,
            record.client_capabilities,
            record.client_info,
            cast("Any", record.log_level),
            set(record.subscriptions),
            record.initialized,
        )
        session = HttpSession(state, self.settings.max_queued_events, epoch=_epoch())
        state.peer = StreamPeer(session, session.standalone)
        log.info("revived a legacy session of the previous run (protocol %s)", record.version)
        return session

    async def _persist(self, session: HttpSession) -> None:
        """Write the session's record if it changed, before the answer that acknowledges it."""
        if self.store is not None:
            await self.store.save(session)

    async def _expire_idle(self) -> None:
        period = max(0.05, min(30.0, self.settings.session_idle_timeout_s / 4))
        while True:
            await trio.sleep(period)
            self.sessions.expire(time.monotonic(), time.time())

    async def _start_watchers(self) -> None:
        """Give a disconnect watcher to each 2026-07-28 request still running after a moment.

        Most requests finish within milliseconds; watching each from its first instant would
        cost a task per request. A request still running at the next tick gets a watcher in its
        own nursery, so a closed stream cancels it at most ``WATCH_DELAY_S`` later.
        """
        while True:
            await self._unwatched_added.wait()
            await trio.sleep(WATCH_DELAY_S)
            pending, self._unwatched = self._unwatched, {}
            self._unwatched_added = trio.Event()
            for nursery, receive, scope in pending.values():
                nursery.start_soon(watch_disconnect, receive, scope)

    def drain(self) -> None:
        """Start draining: GET and listen streams send a final event and end, requests in flight
        run to their result, new sessions are refused."""
        self.writer.draining = True
        for session in self.sessions.sessions.values():
            for stream in session.streams.values():
                stream.wake()
        for listen in self.listens:
            listen.stream.wake()

    # -- notification fan-out -------------------------------------------------------------------

    def _on_registry_event(self, event: RegistryEvent) -> None:
        data = dumps(session_notification(event))
        for session in self.sessions.sessions.values():
            if session_wants(session.state, event):
                session.standalone.push(data)
        self.listens.on_registry(event)

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in ("/mcp", "/mcp/"):
            await self._mcp(scope, receive, send)
        else:
            await self.fallback(scope, receive, send)

    async def _mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[bytes, bytes] = {}
        pairs: list[tuple[str, str]] = []
        for name, value in scope["headers"]:
            headers[name] = value
            if name.startswith(b"mcp-"):
                pairs.append((name.decode("latin-1"), value.decode("latin-1")))
        method = scope["method"]
        try:
            # Refuse before reading a body: an unauthenticated client's body is never waited
            # for (answering before it is consumed makes Hypercorn close the connection).
            self.guard.check(scope, headers)
            if method == "POST":
                # Past the checks, read the body before any other answer: answering before it
                # is consumed leaves HTTP/1.1 keep-alive connections unusable for the next one.
                body = await self.guard.read_body(receive, headers)
                await self._post(receive, send, headers, pairs, body=body)
                return
            if method == "GET":
                await self._get(receive, send, headers)
            elif method == "DELETE":
                await self._delete(send, headers)
            else:
                _method_not_allowed()
        except HttpError as exc:
            body = b""
            extra = list(exc.headers)
            if exc.error is not None:
                body = dumps(error_message(exc.rid, exc.error.to_json()))
                extra += JSON_HEADERS
            await respond(send, exc.status, body, extra)

    # -- POST -----------------------------------------------------------------------------------

    async def _post(
        self,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        pairs: list[tuple[str, str]],
        *,
        body: bytes,
    ) -> None:
        self.guard.check_post(headers)
        try:
            message = parse(body)
        except ParseError as exc:
            raise HttpError(400, exc) from None
        except InvalidRequest as exc:
            raise HttpError(400, exc, rid=exc.request_id) from None
        version = headers.get(b"mcp-protocol-version")
        session_id = headers.get(b"mcp-session-id")
        sid = session_id.decode("latin-1") if session_id is not None else None
        session = self.sessions.find(sid)
        incoming = Incoming(
            protocol_version=version.decode("latin-1").strip() if version is not None else None,
            mcp_headers=pairs,
            session_id=sid,
            session=session.state if session is not None else None,
            draining=self.writer.draining,
        )
        await self._carry_out(self.core.receive(message, incoming), receive, send, session)

    async def _carry_out(
        self, outcome: Outcome, receive: Receive, send: Send, session: HttpSession | None
    ) -> None:
        """Do what the core decided: bytes, a status, a stream or a session."""
        match outcome:
            case Call(era="legacy") if session is not None:
                session.connections += 1
                try:
                    await self._exchange(send, outcome, session, session.new_stream())
                finally:
                    session.connections -= 1
                    session.last_seen = time.monotonic()
            case Call():
                stream = EventStream("m", self.settings.max_queued_events)
                await self._exchange(send, outcome, None, stream, receive=receive)
            case Refuse(error=error, status=status, rid=rid):
                raise HttpError(status, error, rid=rid)
            case OpenSession():
                await self._open_session(send, outcome)
            case OpenListen():
                await self._listen(receive, send, outcome)
            case CancelRequest(rid=rid) if session is not None:
                scope = session.in_flight.get(rid)
                if scope is not None:
                    scope.cancel()
                await respond(send, 202, b"", [])
            case DeliverResponse(message=message) if session is not None:
                session.answer(message)
                await respond(send, 202, b"", [])
            case _:
                if session is not None:
                    await self._persist(session)  # notifications/initialized
                await respond(send, 202, b"", [])

    async def _exchange(
        self,
        send: Send,
        call: Call,
        session: HttpSession | None,
        stream: EventStream,
        *,
        receive: Receive | None = None,
    ) -> None:
        """Run one call in this task and answer it; ``receive`` given: disconnect cancels."""
        scope = trio.CancelScope()
        if session is not None:
            session.in_flight[call.rid] = scope
        reply: Reply | None = None
        try:
            async with trio.open_nursery() as nursery:
                exchange = Exchange(self.writer, send, stream, session, nursery)
                if receive is not None:
                    self._unwatched[id(scope)] = (nursery, receive, scope)
                    self._unwatched_added.set()
                try:
                    with scope:
                        reply = await call.run(StreamPeer(session, stream, exchange))
                finally:
                    self._unwatched.pop(id(scope), None)
                if reply is None:
                    # Cancelled: no response is sent; end the stream so its writer returns.
                    stream.closed = True
                    stream.wake()
                else:
                    if session is not None:
                        await self._persist(session)
                    stream.status = reply.status
                    stream.push(dumps(reply.message), final=True)
                await exchange.finish()
        finally:
            if session is not None:
                session.in_flight.pop(call.rid, None)

    async def _open_session(self, send: Send, opened: OpenSession) -> None:
        state = opened.state
        session = HttpSession(state, self.settings.max_queued_events)
        self.sessions.add(session)
        state.peer = StreamPeer(session, session.standalone)
        await self._persist(session)
        body = dumps(opened.reply)
        extra = ((b"mcp-session-id", state.session_id.encode()),)
        if self.settings.sse_responses:
            stream = EventStream("init", 1)
            stream.push(body, final=True)
            await self.writer.write(send, stream, 0, attrs.evolve(SSE_ANSWER, extra=extra))
        else:
            await respond(send, 200, body, JSON_HEADERS + list(extra))

    async def _listen(self, receive: Receive, send: Send, opened: OpenListen) -> None:
        if len(self.listens) >= self.settings.max_listens:
            limit = self.settings.max_listens
            raise HttpError(
                429,
                InvalidRequest(
                    f"Too many open subscriptions/listen streams: at most {limit} at a time; "
                    "close one and retry",
                ),
                [(b"retry-after", b"1")],
                rid=opened.listen.rid,
            )
        stream = EventStream("l", self.settings.max_queued_events)
        stream.push(dumps(opened.ack))
        listen = ListenStream(opened.listen, stream)
        self.listens.add(listen)
        mode = WriteMode(json_ok=False, priming=False, final=dumps(opened.final), drain_ends=True)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_disconnect, receive, nursery.cancel_scope)
                await self.writer.write(send, stream, 0, mode)
                nursery.cancel_scope.cancel()
        finally:
            self.listens.discard(listen)

    # -- GET and DELETE -------------------------------------------------------------------------

    async def _get(self, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        if _header_version(headers) in MODERN_VERSIONS:
            raise HttpError(405, headers=[(b"allow", b"POST")])
        if b"text/event-stream" not in headers.get(b"accept", b""):
            raise HttpError(406, InvalidRequest("Accept must list text/event-stream"))
        session = self.sessions.require(headers.get(b"mcp-session-id"))
        last = headers.get(b"last-event-id")
        stream = session.standalone
        after = stream.delivered
        if last is not None:
            stream, after = resume_point(session, last.decode("latin-1"))
        mode = WriteMode(
            json_ok=False,
            session_id=session.state.session_id,
            priming=last is None,
            drain_ends=stream is session.standalone,
        )
        # One connection per stream, so each message goes out on exactly one: the newest wins.
        stream.detach()
        session.connections += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_disconnect, receive, nursery.cancel_scope)
                await self.writer.write(send, stream, after, mode)
                nursery.cancel_scope.cancel()
        finally:
            session.connections -= 1
            session.last_seen = time.monotonic()

    async def _delete(self, send: Send, headers: dict[bytes, bytes]) -> None:
        if _header_version(headers) in MODERN_VERSIONS:
            raise HttpError(405, headers=[(b"allow", b"POST")])
        session = self.sessions.require(headers.get(b"mcp-session-id"))
        self.sessions.end(session.state.session_id)
        if self.store is not None:
            await self.store.remove_now(session.id_hash)
        await respond(send, 204, b"", [])


def _epoch() -> str:
    """The stream-key prefix of a revived session."""
    return f"{secrets.token_hex(4)}."


def _header_version(headers: dict[bytes, bytes]) -> str | None:
    """The ``MCP-Protocol-Version`` header of a GET or DELETE; 400 naming the served versions
    when it names none (an unknown version is neither era's)."""
    raw = headers.get(b"mcp-protocol-version")
    if raw is None:
        return None
    version = raw.decode("latin-1").strip()
    if version not in SUPPORTED_VERSIONS:
        raise HttpError(400, UnsupportedVersion(version, list(SUPPORTED_VERSIONS)))
    return version


def _method_not_allowed() -> None:
    raise HttpError(405, headers=[(b"allow", b"GET, POST, DELETE")])
