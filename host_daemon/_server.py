"""The daemon's TCP server: authenticate, serve one operation per connection, shut down cleanly.

The connection's lifetime is the operation's lifetime: a run's process group lives inside the
connection handler's scope, so a client that closes the connection, a timeout, a shutdown or a
cancelled daemon all end in the same place: ``spawn_group`` leaving its context and killing the
whole group.

A run with a ``run_id`` is the exception: it is a child of the daemon's ``Detachments`` nursery
(``_detach``), and its connection only streams it; the connection's end detaches it, for the
detach grace. ``run_attach`` and ``run_cancel`` reach such a run from a fresh connection.

A worktree operation is handed to the ``WorktreeManager`` and answered by its one reply frame or
one error frame; it takes no run slot, and it runs to its end even if the client leaves (git is
never stopped half-way on a client's whim; each git command has its own timeout).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, Final, TypeVar

import attrs
import trio

from ._config import DaemonConfig
from ._connection import FramedStream, FrameSink, HandshakeFailed, server_handshake
from ._detach import ActiveRun, DetachableRun, Detachments, check_run_id
from ._errors import DaemonError, ErrorCode
from ._live import LiveSessions
from ._live_turn import run_live_turn
from ._plain_run import run_plain
from ._plan import RequestError, RunPlan, plan_run
from ._probe import AgentVersions
from ._protocol import (
    CLIENT_TO_DAEMON,
    PROTOCOL_VERSION,
    ErrorFrame,
    ProbeRequest,
    ProtocolViolation,
    message_tag,
)
from ._records import (
    ProbeInfo,
    RunAttach,
    RunCancel,
    RunCancelled,
    RunRequest,
    SessionClose,
    SessionClosed,
    WorktreeDiscard,
    WorktreeMerge,
    WorktreeOperation,
    WorktreeReply,
)
from ._sweep import DAEMON_MARKER_ENV, DaemonIdentity, sweep_leftovers
from ._tree import is_subreaper, reap_adopted_orphans
from ._version import __version__
from ._worktree_dispatch import worktree_reply
from ._worktrees import WorktreeManager

log = logging.getLogger("host_daemon")

#: After the grace period, how long cancelled runs get to report ``killed`` before the daemon
#: stops waiting for them (on top of the group's own SIGTERM→SIGKILL grace).
_FINAL_REPORT_S: Final = 2.0
#: How long an error frame may take to reach a client before the connection is dropped.
_LINGER_S: Final = 2.0
_LINGER_MAX_BYTES: Final = 4 * 1024 * 1024
#: How often a subreaper daemon reaps the orphans it adopted that no run claimed.
_REAP_INTERVAL_S: Final = 1.0
#: How long ``git --version`` may take in a probe (it answers in milliseconds); below the 5 s the
#: MCP server gives a probe, so that a hung git shows as "no git", not as a silent daemon.
_PROBE_GIT_TIMEOUT_S: Final = 3.0


def _fields(**fields: object) -> dict[str, Any]:
    return {"fields": fields}


_E = TypeVar("_E", bound=BaseException)


def _leaf(group: BaseExceptionGroup[_E]) -> _E:
    """The first exception of a group (nurseries wrap what their bodies raise)."""
    first = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


async def _send_error_and_close(conn: FramedStream, code: ErrorCode, message: str) -> None:
    """Send the error frame, then close politely so that the client gets to read it.

    Closing a socket with unread input makes the kernel send a reset, which can destroy the
    error frame before the client reads it; so shut down our side and drain the client's for
    a moment first. A client that does not read at all does not hold the handler for long.
    """
    with trio.move_on_after(_LINGER_S):
        await conn.send(ErrorFrame(code=code, message=message))
        await conn.stream.send_eof()
        drained = 0
        while drained < _LINGER_MAX_BYTES and (data := await conn.stream.receive_some(65536)):
            drained += len(data)


@attrs.define(eq=False)
class _Handshake:
    """A connection still proving the token: its deadline, and whether newer ones pushed it out."""

    scope: trio.CancelScope
    evicted: bool = False

    def evict(self) -> None:
        self.evicted = True
        self.scope.cancel()


class _Daemon:
    """State shared by the connection handlers of one ``serve_daemon`` call."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.environ: Mapping[str, str] = os.environ if config.environ is None else config.environ
        #: Marks every run, so that a later instance can sweep what this one leaves if killed.
        self.identity = DaemonIdentity.of_this_process(config.state_dir)
        #: The environment of every run: the daemon's, with this instance's marker.
        self.run_env = {**self.environ, DAEMON_MARKER_ENV: self.identity.marker}
        #: Binds detachable runs to the token of the connection that started them.
        self.token_hash = hashlib.sha256(config.token.encode()).hexdigest()
        self.runs: set[ActiveRun] = set()
        #: The detachable runs (``RunRequest.run_id``), run by ``serve_daemon``.
        self.detachments = Detachments(config)
        #: Every open connection (graceful shutdown waits for none), and the authenticated ones.
        self.connections = 0
        self.authenticated = 0
        #: Connections in their handshake, oldest first.
        self._handshakes: dict[int, _Handshake] = {}
        #: Handshakes pushed out since the budget last filled: a flood logs twice, not per client.
        self._evicted = 0
        self.idle = trio.Event()
        self.idle.set()
        self._ids = itertools.count(1)
        self.agents = AgentVersions(self.environ, live=config.live)
        #: The live sessions (agents kept alive between turns), run by ``serve_daemon``.
        self.live = LiveSessions(config, self.run_env)
        #: The worktrees (None: the daemon has no worktrees directory, and makes none).
        self.worktrees = (
            None
            if config.worktrees_dir is None
            else WorktreeManager(
                worktrees_dir=config.worktrees_dir,
                roots=config.roots,
                max_bytes=config.worktrees_max_bytes,
                git_timeout_s=config.git_timeout_s,
                environ=self.environ,
                kill_grace_s=config.kill_grace_s,
            )
        )
        #: ``git --version`` once git answered it (it does not change while the daemon runs).
        self._git_version: str | None = None

    async def handle(self, stream: trio.SocketStream) -> None:
        conn_id = next(self._ids)
        self.connections += 1
        self.idle = trio.Event() if self.connections == 1 else self.idle
        try:
            async with stream:
                await self._converse(conn_id, stream)
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            log.info("client went away", extra=_fields(conn=conn_id))
        except* Exception:
            # A bug must cost one connection, never the daemon (its runs' groups are gone).
            log.exception("internal error", extra=_fields(conn=conn_id))
        finally:
            self.connections -= 1
            if self.connections == 0:
                self.idle.set()

    def _begin_handshake(self, conn_id: int) -> _Handshake:
        """A place in the unauthenticated budget, with the handshake's deadline.

        Over the budget the oldest handshake is cancelled: silent clients are pushed out by
        newer ones instead of making every newcomer wait out their deadline.
        """
        if len(self._handshakes) >= self.config.max_unauthenticated:
            self._handshakes.pop(next(iter(self._handshakes))).evict()
            if not self._evicted:
                log.warning(
                    "too many unauthenticated connections, dropping the oldest",
                    extra=_fields(limit=self.config.max_unauthenticated),
                )
            self._evicted += 1
        deadline = trio.current_time() + self.config.handshake_timeout_s
        handshake = self._handshakes[conn_id] = _Handshake(trio.CancelScope(deadline=deadline))
        return handshake

    async def _converse(self, conn_id: int, stream: trio.SocketStream) -> None:
        conn = FramedStream(stream, CLIENT_TO_DAEMON, max_frame_bytes=self.config.max_request_bytes)
        try:
            handshake = self._begin_handshake(conn_id)
            try:
                with handshake.scope:
                    await server_handshake(conn, self.config.token)
            finally:
                self._handshakes.pop(conn_id, None)
                if self._evicted and not self._handshakes:
                    log.warning(
                        "unauthenticated connections dropped", extra=_fields(count=self._evicted)
                    )
                    self._evicted = 0
            if handshake.evicted:
                await self._drop_evicted(conn_id, conn)
                return
            if handshake.scope.cancelled_caught:
                log.warning("handshake timed out, dropping client", extra=_fields(conn=conn_id))
                return
            with self._authenticated_slot():
                with trio.move_on_at(handshake.scope.deadline) as waiting:
                    operation = await conn.receive()
                if waiting.cancelled_caught:
                    log.warning("no request in time, dropping client", extra=_fields(conn=conn_id))
                    return
                await self._operate(conn_id, conn, operation)
        except* HandshakeFailed as group:
            failed = _leaf(group)
            log.warning("handshake failed", extra=_fields(conn=conn_id, code=failed.code))
            if failed.code != "closed":
                await _send_error_and_close(conn, failed.code, failed.message)
        except* (ProtocolViolation, RequestError) as group:
            refused = _leaf(group)
            log.warning(
                "request refused",
                extra=_fields(conn=conn_id, code=refused.code, error=refused.message),
            )
            await _send_error_and_close(conn, refused.code, refused.message)

    @contextlib.contextmanager
    def _authenticated_slot(self) -> Iterator[None]:
        """One of ``max_connections`` for an authenticated client; ``busy`` when none is free."""
        if self.authenticated >= self.config.max_connections:
            raise RequestError(
                "busy",
                f"the daemon has {self.config.max_connections} authenticated connections open, "
                "its limit",
            )
        self.authenticated += 1
        try:
            yield
        finally:
            self.authenticated -= 1

    async def _drop_evicted(self, conn_id: int, conn: FramedStream) -> None:
        """Tell a handshake pushed out of the budget ``busy`` and close, without lingering (the
        frame fits the socket's buffer; a flood must not hold descriptors here)."""
        log.info("unauthenticated connection dropped", extra=_fields(conn=conn_id))
        message = (
            f"the daemon has {self.config.max_unauthenticated} unauthenticated connections "
            "open, its limit; this one waited longest"
        )
        with trio.move_on_after(_LINGER_S):
            await conn.send(ErrorFrame(code="busy", message=message))

    async def _operate(self, conn_id: int, conn: FramedStream, operation: object) -> None:
        if isinstance(operation, ProbeRequest):
            await conn.send(await self.probe(operation.cli_wait_s))
            log.info("probe served", extra=_fields(conn=conn_id))
        elif isinstance(operation, RunRequest):
            await self.run(conn_id, conn, operation)
        elif isinstance(operation, RunAttach):
            await self.detachments.attach(conn_id, conn, operation, self.token_hash)
        elif isinstance(operation, RunCancel):
            found = await self.detachments.cancel(operation.run_id, self.token_hash)
            log.info("run cancel", extra=_fields(conn=conn_id, found=found))
            await conn.send(RunCancelled(run_id=operation.run_id, found=found))
        elif isinstance(operation, SessionClose):
            closed = await self.live.close(operation.key)
            log.info("session close", extra=_fields(conn=conn_id, closed=closed))
            await conn.send(SessionClosed(closed=closed))
        elif isinstance(operation, WorktreeOperation):
            await self.worktree_operation(conn_id, conn, operation)
        elif operation is not None:
            raise ProtocolViolation(
                "unexpected_message",
                "expected a probe, run, run_attach, run_cancel or worktree request after the "
                "handshake",
            )

    async def worktree_operation(
        self, conn_id: int, conn: FramedStream, operation: WorktreeOperation
    ) -> None:
        """One worktree operation: its reply frame, or an error frame with the refusal's code.

        A refusal (``WorktreeRefused`` or any ``DaemonError``) keeps its code and message; any
        other exception is a bug or an unforeseen failure of git, and becomes ``git_failed``
        with what went wrong: it costs this operation, never the daemon.
        """
        tag = message_tag(operation)
        started = trio.current_time()
        try:
            reply = await self._worktree_reply(operation)
        except Exception as exc:  # every failure is answered, see the docstring
            failure = _leaf(exc) if isinstance(exc, ExceptionGroup) else exc
            if isinstance(failure, DaemonError):
                code, message = failure.code, failure.message
                log.warning(
                    "worktree operation refused",
                    extra=_fields(conn=conn_id, operation=tag, code=code, error=message),
                )
            else:
                log.exception(
                    "worktree operation failed", extra=_fields(conn=conn_id, operation=tag)
                )
                code = "git_failed"
                message = f"{tag} failed in the daemon: {type(failure).__name__}: {failure}"
            await _send_error_and_close(conn, code, message)
            return
        log.info(
            "worktree operation done",
            extra=_fields(
                conn=conn_id,
                operation=tag,
                key=getattr(operation, "key", None),
                seconds=round(trio.current_time() - started, 3),
            ),
        )
        await conn.send(reply)  # done even if the client left: then only the answer is lost

    async def _worktree_reply(self, operation: WorktreeOperation) -> WorktreeReply:
        if isinstance(operation, WorktreeMerge | WorktreeDiscard):
            await self.live.close(operation.key)  # no agent may sit in a removed directory
        return await worktree_reply(self.worktrees, operation)

    async def _git(self) -> str | None:
        """``git --version`` for the probe, remembered once known; None when git is missing."""
        if self._git_version is None and self.worktrees is not None:
            with trio.move_on_after(_PROBE_GIT_TIMEOUT_S):
                try:
                    self._git_version = await self.worktrees.git_version()
                except Exception:  # a broken git is "no git" to a probe, and logged
                    log.exception("git --version failed")
        return self._git_version

    async def probe(self, cli_wait_s: float | None = None) -> ProbeInfo:
        """What the daemon is, which agent CLIs it found (with their versions), its limits;
        a CLI not yet known gets ``cli_wait_s`` to answer (see :class:`ProbeRequest`)."""
        return ProbeInfo(
            daemon_version=__version__,
            protocol_version=PROTOCOL_VERSION,
            agents=await self.agents.describe_all(cli_wait_s),
            roots=list(self.config.roots),
            max_concurrent_runs=self.config.max_runs,
            active_runs=len(self.runs),
            max_frame_bytes=self.config.max_request_bytes,
            git=await self._git(),
            live_sessions=len(self.live),
            max_live_sessions=self.config.max_live_sessions,
            allow_rules=list(self.config.allow_rules),
            deny_rules=list(self.config.deny_rules),
            detach_grace_s=self.config.detach_grace_s,
            detached_runs=self.detachments.detached_count,
        )

    async def run(self, conn_id: int, conn: FramedStream, request: RunRequest) -> None:
        """Spawn the agent, stream its events back, then one ``RunFinished``; a request with a
        ``run_id`` becomes a detachable run of ``self.detachments``, streamed on ``conn``."""
        run_directory_of = None if self.worktrees is None else self.worktrees.run_directory
        if request.run_id is not None:
            check_run_id(request.run_id)
        plan = plan_run(request, self.config, self.environ, run_directory_of)
        with contextlib.ExitStack() as owned:
            owned.enter_context(plan.directory)
            if request.live:
                live, note = await self.agents.live_support(request.agent)
                if not live:
                    raise RequestError(
                        "live_unsupported", f"{request.agent} cannot run live turns here: {note}"
                    )
            if len(self.runs) >= self.config.max_runs:
                raise RequestError(
                    "busy", f"the daemon is running {len(self.runs)} runs, its limit"
                )
            active = ActiveRun(scope=trio.CancelScope())
            self.runs.add(active)
            owned.callback(self.runs.discard, active)
            if request.run_id is None:
                await self._body(conn_id, conn, plan, active, watch=conn)
                return
            run = await self.detachments.prepare(
                request.run_id, self.token_hash, active, live=request.live
            )
            owned.pop_all()  # the detachable run owns the directory and its place from here
        body = functools.partial(self._detached_body, conn_id, plan, active)
        await self.detachments.launch(conn_id, conn, run, body)

    async def _detached_body(
        self, conn_id: int, plan: RunPlan, active: ActiveRun, run: DetachableRun
    ) -> None:
        try:
            with plan.directory:
                await self._body(conn_id, run, plan, active, watch=None, detachable=run)
        finally:
            self.runs.discard(active)

    async def _body(
        self,
        conn_id: int,
        sink: FrameSink,
        plan: RunPlan,
        active: ActiveRun,
        *,
        watch: FramedStream | None,
        detachable: DetachableRun | None = None,
    ) -> None:
        if plan.request.live:
            assert watch is not None or detachable is not None  # noqa: S101 -- one or other
            await run_live_turn(
                self.live, sink, plan, active, conn_id=conn_id, watch=watch, detachable=detachable
            )
        else:
            await run_plain(
                sink,
                plan,
                active,
                config=self.config,
                env=self.run_env,
                conn_id=conn_id,
                watch=watch,
            )

    async def reap_adopted_orphans_forever(self) -> None:
        """Reap, every second, dead adopted processes that belong to no run (subreaper only)."""
        while True:
            for pid in reap_adopted_orphans():
                log.info("reaped an adopted orphan", extra=_fields(pid=pid))
            await trio.sleep(_REAP_INTERVAL_S)

    async def quiet(self) -> None:
        """Wait until no connection is open and no run is in flight, attached or detached."""
        await self.idle.wait()
        await self.detachments.idle.wait()

    def kill_runs(self) -> None:
        """Cancel every run in flight and every live session; each run reports ``killed``."""
        for active in self.runs:
            active.reason = "killed"
            active.scope.cancel()
        self.live.cancel_all()


async def serve_daemon(
    config: DaemonConfig,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled (runs are killed at once) or until ``shutdown`` is set (graceful).

    Graceful: stop accepting, let connections in flight finish within ``config.grace_s``, then
    cancel the runs still going (each client gets a ``killed`` ``RunFinished``) and return.
    ``task_status.started`` receives the bound ``(host, port)`` pairs (port 0 is allowed).
    """
    daemon = _Daemon(config)
    listeners: list[trio.SocketListener] = []
    try:
        for host, port in config.listen:
            listeners.extend(await trio.open_tcp_listeners(port, host=host))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    bound = [listener.socket.getsockname()[:2] for listener in listeners]
    addresses = [(str(host), int(port)) for host, port in bound]
    async with trio.open_nursery() as handlers:
        await handlers.start(daemon.live.run)
        await handlers.start(daemon.detachments.run)
        if is_subreaper():
            handlers.start_soon(daemon.reap_adopted_orphans_forever)
        if config.state_dir is not None:
            handlers.start_soon(sweep_leftovers, daemon.identity, config.kill_grace_s)
        async with trio.open_nursery() as acceptors:
            for listener in listeners:
                acceptors.start_soon(
                    functools.partial(
                        trio.serve_listeners, daemon.handle, [listener], handler_nursery=handlers
                    )
                )
            for host, port in addresses:
                log.info("listening", extra=_fields(host=host, port=port))
            task_status.started(addresses)
            if shutdown is None:
                await trio.sleep_forever()
            await shutdown.wait()
            acceptors.cancel_scope.cancel()
        for listener in listeners:
            await listener.aclose()
        log.info(
            "shutting down",
            extra=_fields(runs=len(daemon.runs), grace_s=config.grace_s),
        )
        with trio.move_on_after(config.grace_s):
            await daemon.quiet()
        if daemon.connections or daemon.runs:
            log.warning("grace period over, killing runs", extra=_fields(runs=len(daemon.runs)))
            daemon.kill_runs()
            with trio.move_on_after(config.kill_grace_s + _FINAL_REPORT_S):
                await daemon.quiet()
        await daemon.live.close_all()
        handlers.cancel_scope.cancel()
    log.info("stopped")
