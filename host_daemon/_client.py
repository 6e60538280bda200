"""The client library: ``probe`` the daemon, ``open_run`` and iterate the run's events, or ask
for one worktree operation (``create_worktree``, ``commit_worktree``, ...).

One TCP connection per operation. ``open_run`` is an async context manager: leaving it (early,
by an exception or by cancellation) closes the connection, and the daemon then kills the run's
whole process group. A live turn (``RunRequest.live``) also takes the client's answers on the same
connection (``RunStream.decide``, ``steer``, ``interrupt``); ``close_session`` ends a live
session. A worktree operation is one request and one reply; one the client stops
waiting for still finishes daemon-side (git is never left half-way).

A run with ``RunRequest.run_id`` is detachable: leaving ``open_run`` then only detaches it (the
daemon keeps it for its detach grace), ``attach_run`` streams it again from a frame number on,
and ``RunStream.cancel`` or ``cancel_run`` ends it.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import AsyncIterator
from typing import Final, TypeVar

import trio

from ._connection import FramedStream, HandshakeFailed, client_handshake
from ._errors import DaemonUnavailable, ProtocolError, RequestRejected, error_from_code
from ._protocol import (
    DAEMON_TO_CLIENT,
    DEFAULT_MAX_EVENT_FRAME_BYTES,
    ErrorFrame,
    Message,
    ProbeRequest,
    ProtocolViolation,
)
from ._records import (
    AgentEvent,
    CommitDone,
    CommitsDone,
    DiffDone,
    DiscardDone,
    InputAccepted,
    Interrupt,
    MergeDone,
    PermissionDecision,
    PermissionRequest,
    PermissionResolved,
    ProbeInfo,
    RunAttach,
    RunAttached,
    RunCancel,
    RunCancelled,
    RunEvent,
    RunFinished,
    RunRequest,
    RunStarted,
    SessionClose,
    SessionClosed,
    SweepDone,
    TurnInput,
    WorktreeCommit,
    WorktreeCommits,
    WorktreeCreate,
    WorktreeDiff,
    WorktreeDiscard,
    WorktreeInfo,
    WorktreeMerge,
    WorktreeSkipped,
    WorktreeSweep,
)

#: A worktree operation runs git, maybe several times, on a repository that may be large.
WORKTREE_TIMEOUT_S: Final = 120.0

_Reply = TypeVar("_Reply")


@contextlib.asynccontextmanager
async def _connect(
    host: str, port: int, token: str, *, timeout: float, max_frame_bytes: int
) -> AsyncIterator[FramedStream]:
    """An authenticated connection; connect and handshake must finish within ``timeout``."""
    with trio.move_on_after(timeout) as deadline:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            reason = errno.errorcode.get(exc.errno or 0, "") or str(exc)
            raise DaemonUnavailable(
                "unreachable", f"cannot connect to the daemon at {host}:{port}: {reason}"
            ) from None
    if deadline.cancelled_caught:
        raise DaemonUnavailable("timeout", f"connecting to {host}:{port} timed out")
    async with stream:
        conn = FramedStream(stream, DAEMON_TO_CLIENT, max_frame_bytes=max_frame_bytes)
        with trio.move_on_after(timeout) as deadline:
            try:
                await client_handshake(conn, token)
            except HandshakeFailed as exc:
                raise error_from_code(exc.code, exc.message) from None
            except ProtocolViolation as exc:
                raise ProtocolError(exc.code, exc.message) from None
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise DaemonUnavailable("connection_lost", f"handshake failed: {exc}") from None
        if deadline.cancelled_caught:
            raise DaemonUnavailable("timeout", f"the daemon at {host}:{port} did not answer")
        yield conn


def _lost(exc: Exception) -> DaemonUnavailable:
    return DaemonUnavailable("connection_lost", f"connection to the daemon lost: {exc}")


async def _receive(conn: FramedStream) -> Message:
    """The daemon's next message; error frames, EOF and bad frames become ``DaemonError``s."""
    try:
        message = await conn.receive()
    except ProtocolViolation as exc:
        raise ProtocolError(exc.code, exc.message) from None
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise DaemonUnavailable(
            "connection_lost", f"connection to the daemon lost: {exc}"
        ) from None
    if message is None:
        raise DaemonUnavailable("connection_lost", "the daemon closed the connection")
    if isinstance(message, ErrorFrame):
        raise error_from_code(message.code, message.message)
    return message


async def _send(conn: FramedStream, message: Message) -> None:
    try:
        await conn.send(message)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise DaemonUnavailable(
            "connection_lost", f"connection to the daemon lost: {exc}"
        ) from None


async def _call(
    host: str,
    port: int,
    token: str,
    request: Message,
    reply: type[_Reply] | tuple[type[_Reply], ...],
    *,
    timeout: float,
    what: str,
) -> _Reply:
    """Send one request, return its one reply (of type ``reply``), all within ``timeout``."""
    async with _connect(
        host, port, token, timeout=timeout, max_frame_bytes=DEFAULT_MAX_EVENT_FRAME_BYTES
    ) as conn:
        with trio.move_on_after(timeout) as deadline:
            await _send(conn, request)
            answer = await _receive(conn)
        if deadline.cancelled_caught:
            raise DaemonUnavailable(
                "timeout", f"the daemon did not answer the {what} within {timeout:g} s"
            )
        if not isinstance(answer, reply):
            raise ProtocolError(
                "unexpected_message",
                f"the daemon answered the {what} with {type(answer).__name__}",
            )
        return answer


async def probe(
    host: str, port: int, token: str, *, timeout: float = 10.0, cli_wait_s: float | None = None
) -> ProbeInfo:
    """Ask the daemon what it is, which agents it found and its limits; ``cli_wait_s``: how
    long a CLI not yet known may take to answer (see :class:`ProbeRequest`)."""
    request = ProbeRequest(cli_wait_s=cli_wait_s)
    return await _call(host, port, token, request, ProbeInfo, timeout=timeout, what="probe")


async def create_worktree(
    host: str,
    port: int,
    token: str,
    request: WorktreeCreate,
    *,
    timeout: float = WORKTREE_TIMEOUT_S,
) -> WorktreeInfo | WorktreeSkipped:
    """Make a task's worktree on a new branch (or learn why none was made, if not required)."""
    return await _call(
        host,
        port,
        token,
        request,
        (WorktreeInfo, WorktreeSkipped),
        timeout=timeout,
        what="worktree_create",
    )


async def commit_worktree(
    host: str,
    port: int,
    token: str,
    request: WorktreeCommit,
    *,
    timeout: float = WORKTREE_TIMEOUT_S,
) -> CommitDone:
    """Commit what changed in a task's worktree (``commit`` None when nothing did)."""
    return await _call(
        host, port, token, request, CommitDone, timeout=timeout, what="worktree_commit"
    )


async def diff_worktree(
    host: str,
    port: int,
    token: str,
    request: WorktreeDiff,
    *,
    timeout: float = WORKTREE_TIMEOUT_S,
) -> DiffDone:
    """The task's branch against its base: per-file figures and the unified diff."""
    return await _call(host, port, token, request, DiffDone, timeout=timeout, what="worktree_diff")


async def worktree_commits(
    host: str,
    port: int,
    token: str,
    request: WorktreeCommits,
    *,
    timeout: float = WORKTREE_TIMEOUT_S,
) -> CommitsDone:
    """The commits of the task's branch since its base, oldest first."""
    return await _call(
        host, port, token, request, CommitsDone, timeout=timeout, what="worktree_commits"
    )


async def merge_worktree(
    host: str,
    port: int,
    token: str,
    request: WorktreeMerge,
    *,
    timeout: float = WORKTREE_TIMEOUT_S,
) -> MergeDone:
    """Land the task's branch in its base branch, all or nothing."""
    return await _call(
        host, port, token, request, MergeDone, timeout=timeout, what="worktree_merge"
    )


async def discard_worktree(
    host: str,
    port: int,
    token: str,
    request: WorktreeDiscard,
    *,
    timeout: float = WORKTREE_TIMEOUT_S,
) -> DiscardDone:
    """Remove the task's worktree and (unless asked not to) its branch."""
    return await _call(
        host, port, token, request, DiscardDone, timeout=timeout, what="worktree_discard"
    )


async def sweep_worktrees(
    host: str,
    port: int,
    token: str,
    request: WorktreeSweep,
    *,
    timeout: float = WORKTREE_TIMEOUT_S,
) -> SweepDone:
    """Remove every worktree whose key is not in ``request.keep``."""
    return await _call(
        host, port, token, request, SweepDone, timeout=timeout, what="worktree_sweep"
    )


async def close_session(
    host: str, port: int, token: str, key: str, *, timeout: float = 30.0
) -> SessionClosed:
    """End the live session ``key`` and its process group (``closed``: whether one was open)."""
    return await _call(
        host,
        port,
        token,
        SessionClose(key=key),
        SessionClosed,
        timeout=timeout,
        what="session_close",
    )


#: What a run's stream carries between its ``RunStarted`` and its ``RunFinished``.
_RUN_FRAMES: Final = (AgentEvent, PermissionRequest, PermissionResolved, InputAccepted)


class RunStream:
    """A run's events: ``RunStarted``, ``AgentEvent``s, one ``RunFinished``, then the end.

    A live turn's stream also carries ``PermissionRequest``, ``PermissionResolved`` and
    ``InputAccepted`` frames; ``decide``, ``steer`` and ``interrupt`` answer on the same
    connection, and may be called while another task iterates. A stream from ``attach_run``
    starts with the spooled frames after the client's ``after_seq`` (``attached`` is the
    daemon's answer; ``started`` the run's first frame, yielded only if replayed).
    """

    def __init__(
        self,
        conn: FramedStream,
        started: RunStarted,
        *,
        run_id: str | None = None,
        attached: RunAttached | None = None,
    ) -> None:
        self._conn = conn
        self.started = started
        self.run_id = run_id
        self.attached = attached
        self._pending: RunStarted | None = started if attached is None else None
        self.finished: RunFinished | None = None
        self._send_lock = trio.Lock()

    async def _control(self, message: Message) -> None:
        async with self._send_lock:
            if self.finished is not None:
                raise DaemonUnavailable(
                    "connection_lost",
                    f"the run has finished ({self.finished.outcome}): "
                    f"no {type(message).__name__} can reach it",
                )
            await _send(self._conn, message)

    async def steer(self, text: str) -> None:
        """More instructions into the running live turn; the daemon answers ``InputAccepted``."""
        await self._control(TurnInput(text=text))

    async def decide(self, decision: PermissionDecision) -> None:
        """Answer a ``PermissionRequest``; a ``PermissionResolved`` follows in the stream."""
        await self._control(decision)

    async def interrupt(self) -> None:
        """Stop the running live turn; it finishes ``interrupted``, the session stays open."""
        await self._control(Interrupt())

    async def cancel(self) -> None:
        """End a detachable run: it finishes ``cancelled`` (its ``RunFinished`` follows)."""
        if self.run_id is None:
            raise RequestRejected(
                "invalid_request", "only a run with a run_id can be cancelled on its stream"
            )
        await self._control(RunCancel(run_id=self.run_id))

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> RunEvent:
        if self._pending is not None:
            event, self._pending = self._pending, None
            return event
        if self.finished is not None:
            raise StopAsyncIteration
        try:  # the frames of a batch are mostly here already: skip the awaits
            message = self._conn.receive_buffered()
        except ProtocolViolation as exc:
            raise ProtocolError(exc.code, exc.message) from None
        if message is None:
            message = await _receive(self._conn)
        elif isinstance(message, ErrorFrame):
            raise error_from_code(message.code, message.message)
        if isinstance(message, RunFinished):
            self.finished = message
            return message
        if isinstance(message, _RUN_FRAMES):
            return message
        if isinstance(message, RunStarted) and self.attached is not None and message.seq == 1:
            return message  # replayed: the client attached from the start
        raise ProtocolError("unexpected_message", f"unexpected {type(message).__name__} in a run")


@contextlib.asynccontextmanager
async def open_run(
    host: str,
    port: int,
    token: str,
    request: RunRequest,
    *,
    timeout: float = 10.0,
    max_frame_bytes: int = DEFAULT_MAX_EVENT_FRAME_BYTES,
) -> AsyncIterator[RunStream]:
    """Start ``request`` on the daemon; yields once the agent runs (a refusal raises here).

    ``timeout`` bounds connecting, the handshake and the daemon's answer to the request (the
    spawn), not the run itself: the request's own ``timeout_s`` does that, daemon-side.
    """
    async with _connect(
        host, port, token, timeout=timeout, max_frame_bytes=max_frame_bytes
    ) as conn:
        with trio.move_on_after(timeout) as deadline:
            await _send(conn, request)
            first = await _receive(conn)
        if deadline.cancelled_caught:
            raise DaemonUnavailable("timeout", "the daemon did not start the run in time")
        if not isinstance(first, RunStarted):
            raise ProtocolError("unexpected_message", "the daemon did not start the run")
        yield RunStream(conn, first, run_id=request.run_id)


@contextlib.asynccontextmanager
async def attach_run(
    host: str,
    port: int,
    token: str,
    run_id: str,
    after_seq: int,
    *,
    timeout: float = 10.0,
    max_frame_bytes: int = DEFAULT_MAX_EVENT_FRAME_BYTES,
) -> AsyncIterator[RunStream]:
    """Stream the detachable run ``run_id`` again: its frames numbered above ``after_seq``
    (spooled ones first), then the live ones, up to its ``RunFinished``.

    A stream attached before (another connection's) is closed by the daemon; the run is not
    cancelled. A run the daemon does not know (or no longer: the error's message says why when
    it can) raises ``RequestRejected`` with code ``unknown_run``. Leaving the context detaches
    the run again.
    """
    async with _connect(
        host, port, token, timeout=timeout, max_frame_bytes=max_frame_bytes
    ) as conn:
        with trio.move_on_after(timeout) as deadline:
            await _send(conn, RunAttach(run_id=run_id, after_seq=after_seq))
            first = await _receive(conn)
        if deadline.cancelled_caught:
            raise DaemonUnavailable("timeout", f"the daemon did not attach run {run_id} in time")
        if not isinstance(first, RunAttached):
            raise ProtocolError(
                "unexpected_message",
                f"the daemon answered run_attach with {type(first).__name__}",
            )
        yield RunStream(conn, first.started, run_id=run_id, attached=first)


async def cancel_run(
    host: str, port: int, token: str, run_id: str, *, timeout: float = 30.0
) -> RunCancelled:
    """End the detachable run ``run_id`` wherever its stream is (or with none); ``found``:
    whether the daemon knew it. Returns once the run's process group is gone."""
    return await _call(
        host,
        port,
        token,
        RunCancel(run_id=run_id),
        RunCancelled,
        timeout=timeout,
        what="run_cancel",
    )
