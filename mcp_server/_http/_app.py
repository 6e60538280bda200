"""The ``/mcp`` endpoint as a raw ASGI handler in front of a Quart-trio app.

``/mcp`` is the hot path and needs to decide late between a JSON and an SSE answer while the
handler runs in a nursery the request owns, so it speaks ASGI directly; everything else
(``/healthz``, RFC 9728 metadata, lifespan) goes to the Quart-trio app.

Legacy (handshake-era) requests run in their session's nursery: a client disconnect is not a
cancel there, and their events stay buffered for ``Last-Event-ID`` resumption;
``notifications/cancelled`` or ending the session cancels them. 2026-07-28 requests run in the
POST's own nursery, and a closed response stream cancels them.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import attrs
import orjson
import trio

from .._core import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    JSON,
    MODERN_VERSIONS,
    SUPPORTED_VERSIONS,
    Call,
    CancelRequest,
    Core,
    DeliverResponse,
    ErrorResponse,
    Incoming,
    InvalidRequest,
    ListenFilter,
    McpError,
    McpTaskRecord,
    OpenListen,
    OpenSession,
    Outcome,
    ParseError,
    Refuse,
    RegistryEvent,
    Reply,
    RequestId,
    Response,
    SessionState,
    UnsupportedVersion,
    clip,
    error_message,
    notification_message,
    parse,
    session_notification,
    session_wants,
)
from ._authority import HostFence
from ._settings import HttpSettings
from ._streams import EventStream

logger = logging.getLogger("mcp_server.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
_MAX_STREAMS_PER_SESSION: Final = 64
_MAX_SEQ_DIGITS: Final = 18
_MAX_URI_CHARS: Final = 2048
_MAX_TASK_ID_CHARS: Final = 256
WATCH_DELAY_S: Final = 0.02
_LIST_NOTIFICATIONS: Final = {
    "tools": "notifications/tools/list_changed",
    "resources": "notifications/resources/list_changed",
    "prompts": "notifications/prompts/list_changed",
}
_LISTEN_FLAGS: Final = {
    "tools": "toolsListChanged",
    "resources": "resourcesListChanged",
    "prompts": "promptsListChanged",
}


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


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


@attrs.define(eq=False)
class _Stream:
    """Peer for one request (or a session's GET stream): messages go to an ``EventStream``.

    ``exchange`` is set for a POST being answered: the first message before the result turns
    the answer into an SSE stream.
    """

    session: HttpSession | None
    stream: EventStream
    exchange: _Exchange | None = None

    async def notify(self, method: str, params: JSON) -> None:
        if self.exchange is not None:
            self.exchange.stream_now()
        self.stream.push(_dumps(notification_message(method, params)))

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
class _Exchange:
    """One POSTed request being answered: JSON by default, SSE once something precedes the result.

    The handler runs in the POST's own task; the SSE writer is started only when needed, in the
    request's nursery.
    """

    app: McpApp
    send: Send
    stream: EventStream
    session: HttpSession | None
    nursery: trio.Nursery
    writer_started: bool = False

    def stream_now(self) -> None:
        """Start the SSE writer (once)."""
        if not self.writer_started:
            self.writer_started = True
            self.nursery.start_soon(self._writer, self.stream.detached)

    async def _writer(self, generation: int) -> None:
        await self.app._write(
            self.send, self.stream, 0, self.session, json_ok=False, generation=generation
        )

    async def finish(self) -> None:
        """After the result was pushed: answer with JSON unless a stream already carries it."""
        if not self.writer_started:
            self.writer_started = True
            await self.app._write(self.send, self.stream, 0, self.session, json_ok=True)


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
    _next: int = 0

    @property
    def standalone(self) -> EventStream:
        """The GET stream's buffer (created on first use)."""
        stream = self.streams.get("g")
        if stream is None:
            stream = self.streams["g"] = EventStream("g", self.limit)
        return stream

    def new_stream(self) -> EventStream:
        """A buffer for one request's SSE stream; the oldest finished ones are forgotten."""
        self._next += 1
        key = f"r{self._next}"
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
            stream.push(_dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
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
class _Listen:
    """An open 2026-07-28 ``subscriptions/listen`` stream: the core's filter and its buffer."""

    filter: ListenFilter
    stream: EventStream


class McpApp:
    """The ASGI application: ``/mcp`` here, everything else to ``fallback`` (Quart-trio)."""

    def __init__(self, core: Core, settings: HttpSettings, fallback: Any) -> None:
        self.core = core
        self.settings = settings
        self.fallback = fallback
        self.sessions: dict[str, HttpSession] = {}
        self.listens: set[_Listen] = set()
        self.draining = False
        self._unwatched: dict[int, tuple[trio.Nursery, Receive, trio.CancelScope]] = {}
        self._unwatched_added = trio.Event()
        self._token = settings.auth_token.encode() if settings.auth_token else None
        self._fence = HostFence.from_settings(settings)
        core.registry.add_listener(self._on_registry_event)
        core.task_listeners.append(self._on_task_change)

    # -- lifetime -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Expire idle sessions and start disconnect watchers, until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._expire_idle)
            nursery.start_soon(self._start_watchers)
            task_status.started()

    async def _expire_idle(self) -> None:
        period = max(0.05, min(30.0, self.settings.session_idle_timeout_s / 4))
        while True:
            await trio.sleep(period)
            self._expire(time.monotonic())

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
                nursery.start_soon(_watch_disconnect, receive, scope)

    def drain(self) -> None:
        """Start draining: GET and listen streams send a final event and end, requests in flight
        run to their result, new sessions are refused."""
        self.draining = True
        for session in self.sessions.values():
            for stream in session.streams.values():
                stream.wake()
        for listen in self.listens:
            listen.stream.wake()

    def _expire(self, now: float) -> None:
        timeout = self.settings.session_idle_timeout_s
        for session_id, session in list(self.sessions.items()):
            if (
                session.connections == 0
                and not session.in_flight
                and now - session.last_seen > timeout
            ):
                self._end(session_id)

    def _end(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            for scope in session.in_flight.values():
                scope.cancel()
            self.core.tasks.drop_owner(session_id)
            for stream in session.streams.values():
                stream.closed = True
                stream.wake()

    # -- notification fan-out -------------------------------------------------------------------

    def _on_registry_event(self, event: RegistryEvent) -> None:
        data = _dumps(session_notification(event))
        for session in self.sessions.values():
            if session_wants(session.state, event):
                session.standalone.push(data)
        for listen in self.listens:
            message = listen.filter.on_registry(event)
            if message is not None:
                listen.stream.push(_dumps(message))

    def _on_task_change(self, record: McpTaskRecord) -> None:
        for listen in self.listens:
            message = listen.filter.on_task(record)
            if message is not None:
                listen.stream.push(_dumps(message))

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
            self._check_security(scope, headers)
            if method == "POST":
                # Past the checks, read the body before any other answer: answering before it
                # is consumed leaves HTTP/1.1 keep-alive connections unusable for the next one.
                body = await self._read_body_in_time(receive, headers)
                await self._post(scope, receive, send, headers, pairs, body=body)
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
                body = _dumps(error_message(exc.rid, exc.error.to_json()))
                extra += _JSON_HEADERS
            await _respond(send, exc.status, body, extra)

    # -- security -------------------------------------------------------------------------------

    def _check_security(self, scope: Scope, headers: dict[bytes, bytes]) -> None:
        host_header = headers.get(b"host", b"").decode("latin-1")
        host = self._fence.allowed_host(host_header)
        if host is None:
            raise HttpError(421, McpError(INVALID_REQUEST, self._fence.refusal(host_header)))
        origin = headers.get(b"origin")
        if origin is not None and not self._fence.allows_origin(origin.decode("latin-1")):
            raise HttpError(
                403,
                McpError(
                    INVALID_REQUEST,
                    "Origin not allowed: expected http(s)://HOST[:PORT] naming this server, "
                    f"got {clip(origin.decode('latin-1'))!r}",
                ),
            )
        if self._token is not None:
            auth = headers.get(b"authorization", b"")
            scheme, _, token = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._token):
                base = self._fence.base_url(scope.get("scheme", "http"), host)
                metadata = f"{base}/.well-known/oauth-protected-resource/mcp"
                challenge = f'Bearer resource_metadata="{metadata}"'
                if auth:
                    challenge += ', error="invalid_token"'
                raise HttpError(
                    401,
                    McpError(INVALID_REQUEST, "Unauthorized"),
                    [(b"www-authenticate", challenge.encode())],
                )

    # -- POST -----------------------------------------------------------------------------------

    async def _post(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        pairs: list[tuple[str, str]],
        *,
        body: bytes,
    ) -> None:
        accept = headers.get(b"accept", b"")
        if not (b"application/json" in accept or b"*/*" in accept) or not (
            b"text/event-stream" in accept or b"*/*" in accept
        ):
            raise HttpError(
                406,
                McpError(
                    INVALID_REQUEST, "Accept must list application/json and text/event-stream"
                ),
            )
        content_type = headers.get(b"content-type", b"")
        if not content_type.split(b";")[0].strip().lower() == b"application/json":
            raise HttpError(415, McpError(INVALID_REQUEST, "Content-Type must be application/json"))
        try:
            message = parse(body)
        except ParseError as exc:
            raise HttpError(400, exc) from None
        except InvalidRequest as exc:
            raise HttpError(400, exc, rid=exc.request_id) from None
        version = headers.get(b"mcp-protocol-version")
        session_id = headers.get(b"mcp-session-id")
        sid = session_id.decode("latin-1") if session_id is not None else None
        session = self.sessions.get(sid) if sid is not None else None
        if session is not None:
            session.last_seen = time.monotonic()
        incoming = Incoming(
            protocol_version=version.decode("latin-1").strip() if version is not None else None,
            mcp_headers=pairs,
            session_id=sid,
            session=session.state if session is not None else None,
            draining=self.draining,
        )
        outcome = self.core.receive(message, incoming)
        await self._carry_out(outcome, receive, send, session)

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
                await self._initialize(send, outcome)
            case OpenListen():
                await self._listen(receive, send, outcome)
            case CancelRequest(rid=rid) if session is not None:
                scope = session.in_flight.get(rid)
                if scope is not None:
                    scope.cancel()
                await _respond(send, 202, b"", [])
            case DeliverResponse(message=message) if session is not None:
                session.answer(message)
                await _respond(send, 202, b"", [])
            case _:
                await _respond(send, 202, b"", [])

    async def _read_body_in_time(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        """The body, within ``body_timeout_s`` of the headers, else ``408`` and a closed connection.

        Hypercorn has no read timeout once the headers are in: a body that stops coming would
        hold its connection forever.
        """
        with trio.move_on_after(self.settings.body_timeout_s):
            return await self._read_body(receive, headers)
        timeout = self.settings.body_timeout_s
        raise HttpError(
            408,
            McpError(INVALID_REQUEST, f"Request body not received within {timeout:g} s"),
            [(b"connection", b"close")],
        )

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        limit = self.settings.max_body_bytes
        length = headers.get(b"content-length")
        too_large = HttpError(
            413,
            McpError(INVALID_REQUEST, "Request body too large"),
            [(b"connection", b"close")],
        )
        if length is not None and length.isdigit() and int(length) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                raise HttpError(400)
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            # Wait for the closing event even when all declared bytes are here: until Hypercorn
            # has parsed the request's end, answering would make it close the connection.
            if not event.get("more_body", False):
                return b"".join(chunks)

    # -- legacy leg -----------------------------------------------------------------------------

    def _session(self, headers: dict[bytes, bytes], rid: RequestId | None = None) -> HttpSession:
        session_id = headers.get(b"mcp-session-id")
        if session_id is None:
            raise HttpError(
                400, McpError(INVALID_REQUEST, "Missing Mcp-Session-Id header"), rid=rid
            )
        session = self.sessions.get(session_id.decode("latin-1"))
        if session is None:
            raise HttpError(404, McpError(INVALID_REQUEST, "Session not found"), rid=rid)
        session.last_seen = time.monotonic()
        return session

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
                exchange = _Exchange(self, send, stream, session, nursery)
                if receive is not None:
                    self._unwatched[id(scope)] = (nursery, receive, scope)
                    self._unwatched_added.set()
                try:
                    with scope:
                        reply = await call.run(_Stream(session, stream, exchange))
                finally:
                    self._unwatched.pop(id(scope), None)
                if reply is None:
                    # Cancelled: no response is sent; end the stream so its writer returns.
                    stream.closed = True
                    stream.wake()
                else:
                    stream.status = reply.status
                    stream.push(_dumps(reply.message), final=True)
                await exchange.finish()
        finally:
            if session is not None:
                session.in_flight.pop(call.rid, None)

    async def _initialize(self, send: Send, opened: OpenSession) -> None:
        if len(self.sessions) >= self.settings.max_sessions:
            self._evict_one()
        state = opened.state
        session = HttpSession(state, self.settings.max_queued_events)
        state.peer = _Stream(session, session.standalone)
        self.sessions[state.session_id] = session
        body = _dumps(opened.reply)
        extra = [(b"mcp-session-id", state.session_id.encode())]
        if self.settings.sse_responses:
            stream = EventStream("init", 1)
            stream.push(body, final=True)
            await self._write(send, stream, 0, None, json_ok=False, extra=extra)
        else:
            await _respond(send, 200, body, _JSON_HEADERS + extra)

    def _evict_one(self) -> None:
        idle = [(s.last_seen, sid) for sid, s in self.sessions.items() if s.connections == 0]
        if not idle:
            raise HttpError(503, McpError(INTERNAL_ERROR, "Too many sessions"))
        self._end(min(idle)[1])

    # -- GET and DELETE -------------------------------------------------------------------------

    async def _get(self, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        if _header_version(headers) in MODERN_VERSIONS:
            raise HttpError(405, headers=[(b"allow", b"POST")])
        if b"text/event-stream" not in headers.get(b"accept", b""):
            raise HttpError(406, McpError(INVALID_REQUEST, "Accept must list text/event-stream"))
        session = self._session(headers)
        last = headers.get(b"last-event-id")
        stream = session.standalone
        after = stream.delivered
        if last is not None:
            stream, after = _resume_point(session, last.decode("latin-1"))
        # One connection per stream, so each message goes out on exactly one: the newest wins.
        stream.detach()
        session.connections += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_disconnect, receive, nursery.cancel_scope)
                await self._write(
                    send,
                    stream,
                    after,
                    session,
                    json_ok=False,
                    priming=last is None,
                    drain_ends=stream is session.standalone,
                )
                nursery.cancel_scope.cancel()
        finally:
            session.connections -= 1
            session.last_seen = time.monotonic()

    async def _delete(self, send: Send, headers: dict[bytes, bytes]) -> None:
        if _header_version(headers) in MODERN_VERSIONS:
            raise HttpError(405, headers=[(b"allow", b"POST")])
        session = self._session(headers)
        self._end(session.state.session_id)
        await _respond(send, 204, b"", [])

    # -- modern leg -----------------------------------------------------------------------------

    async def _listen(self, receive: Receive, send: Send, opened: OpenListen) -> None:
        if len(self.listens) >= self.settings.max_listens:
            limit = self.settings.max_listens
            raise HttpError(
                429,
                McpError(
                    INVALID_REQUEST,
                    f"Too many open subscriptions/listen streams: at most {limit} at a time; "
                    "close one and retry",
                ),
                [(b"retry-after", b"1")],
                rid=opened.listen.rid,
            )
        stream = EventStream("l", self.settings.max_queued_events)
        stream.push(_dumps(opened.ack))
        listen = _Listen(opened.listen, stream)
        self.listens.add(listen)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_disconnect, receive, nursery.cancel_scope)
                await self._write(
                    send,
                    stream,
                    0,
                    None,
                    json_ok=False,
                    priming=False,
                    final=_dumps(opened.final),
                    drain_ends=True,
                )
                nursery.cancel_scope.cancel()
        finally:
            self.listens.discard(listen)

    # -- the writer -----------------------------------------------------------------------------

    async def _write(
        self,
        send: Send,
        stream: EventStream,
        after: int,
        session: HttpSession | None,
        *,
        json_ok: bool,
        priming: bool = True,
        extra: list[tuple[bytes, bytes]] | None = None,
        final: bytes | None = None,
        generation: int | None = None,
        drain_ends: bool = False,
    ) -> None:
        """Send ``stream`` as JSON (one final message, when allowed) or as SSE until it ends.

        With ``drain_ends`` (GET and listen streams, which never end by themselves) draining
        ends the stream with ``final`` (or a last ``retry`` event the client can resume from); a
        request's stream runs to its result. A writer that fell behind the bounded buffer ends
        so the client resumes.
        """
        headers = list(extra or [])
        if session is not None:
            headers.append((b"mcp-session-id", session.state.session_id.encode()))
        json_ok = json_ok and not self.settings.sse_responses
        if generation is None:
            generation = stream.detached
        if json_ok:
            while stream.seq <= after and not stream.closed and stream.detached == generation:
                await stream.wait()
            only = stream.only_message()
            if only is not None:
                await _respond(send, stream.status, only, _JSON_HEADERS + headers)
                return
        ids = session is not None
        if stream.closed and stream.detached == generation:
            # Everything is known already: one SSE body with a length, no chunked streaming.
            events, gap = stream.after(after)
            if not gap:
                frames = [self._priming(stream, after)] if priming and ids else []
                frames += [_frame(stream.key, seq, data, ids) for seq, data in events]
                if events:
                    stream.delivered = max(stream.delivered, events[-1][0])
                await _respond(send, 200, b"".join(frames), _SSE_HEADERS + headers)
                return
        await send(
            {"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS + headers}
        )
        await self._events(
            send,
            stream,
            after,
            ids=ids,
            priming=priming,
            final=final,
            generation=generation,
            drain_ends=drain_ends,
        )
        await _end_body(send)

    def _priming(self, stream: EventStream, seq: int) -> bytes:
        """An event with an id and a retry delay and no data: where a client resumes from."""
        return f"id: {stream.key}:{seq}\nretry: {self.settings.sse_retry_ms}\ndata: \n\n".encode()

    async def _events(
        self,
        send: Send,
        stream: EventStream,
        after: int,
        *,
        ids: bool,
        priming: bool,
        final: bytes | None,
        generation: int,
        drain_ends: bool,
    ) -> None:
        """The SSE events of ``stream`` after ``after``, until it ends, detaches or drains."""
        if priming and ids:
            await _chunk(send, self._priming(stream, after))
        last = after
        while True:
            events, gap = stream.after(last)
            if gap:
                break
            for seq, data in events:
                await _chunk(send, _frame(stream.key, seq, data, ids))
                last = seq
                stream.delivered = max(stream.delivered, seq)
            if (stream.closed and last >= stream.seq) or stream.detached != generation:
                break
            if drain_ends and self.draining:
                if final is not None:
                    await _chunk(send, b"event: message\ndata: " + final + b"\n\n")
                elif ids:
                    await _chunk(send, self._priming(stream, last))
                break
            if stream.seq == last:
                await stream.wait()


def _header_version(headers: dict[bytes, bytes], rid: RequestId | None = None) -> str | None:
    """The ``MCP-Protocol-Version`` header; 400 naming the served versions when it names none.

    Checked before routing by era: an unknown version is neither era's, so it must not be
    handled as a 2026-07-28 request (whose answer to a legacy method would be a 404).
    """
    raw = headers.get(b"mcp-protocol-version")
    if raw is None:
        return None
    version = raw.decode("latin-1").strip()
    if version not in SUPPORTED_VERSIONS:
        raise HttpError(400, UnsupportedVersion(version, list(SUPPORTED_VERSIONS)), rid=rid)
    return version


def _resume_point(session: HttpSession, last_event_id: str) -> tuple[EventStream, int]:
    """The stream and sequence number a ``Last-Event-ID`` names; 400 unless it names an event
    this session's streams really sent (or the priming point ``KEY:0``).

    An id past a stream's last event was never sent, so there is nothing to resume after it:
    waiting for the stream to reach it would silently skip the events in between.
    """
    key, _, seq = last_event_id.rpartition(":")
    stream = session.streams.get(key)
    shown = clip(last_event_id)
    if stream is None:
        raise HttpError(
            400,
            McpError(
                INVALID_REQUEST,
                f"Unknown Last-Event-ID: expected an event id of this session, got {shown!r}",
            ),
        )
    if not (seq.isascii() and seq.isdigit() and len(seq) <= _MAX_SEQ_DIGITS):
        raise HttpError(
            400,
            McpError(
                INVALID_REQUEST,
                f"Malformed Last-Event-ID: expected STREAM:SEQ with SEQ in ASCII digits, "
                f"got {shown!r}",
            ),
        )
    after = int(seq)
    if after > stream.seq:
        raise HttpError(
            400,
            McpError(
                INVALID_REQUEST,
                f"Unknown Last-Event-ID: {shown!r} was never sent; stream {key!r} has sent "
                f"{stream.seq} event(s) so far",
            ),
        )
    return stream, after


def _frame(key: str, seq: int, data: bytes, ids: bool) -> bytes:
    prefix = f"id: {key}:{seq}\n".encode() if ids else b""
    return prefix + b"event: message\ndata: " + data + b"\n\n"


def _method_not_allowed() -> None:
    raise HttpError(405, headers=[(b"allow", b"GET, POST, DELETE")])


async def _watch_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` when the client goes away.

    Hypercorn also delivers ``http.disconnect`` right after the response's last byte, so this
    returns by itself once the answer is sent (cancelling a finished scope does nothing).
    """
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            scope.cancel()
            return


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """A complete answer; ``content-length`` spares chunked framing and a terminator write."""
    if status != 204:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _end_body(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})
