"""Detachable runs: runs that belong to the daemon, streamed by whichever connection is attached.

A run request with a ``run_id`` does not run in its connection's handler: ``Detachments`` (one
per daemon, its nursery owned by ``serve_daemon``) starts it as a ``DetachableRun`` and the
connection only streams it (an ``Attachment``). Every numbered frame the run sends is numbered,
appended to the run's spool (``_spool``), then forwarded to the attached stream if there is one.

The end of the stream (EOF, a reset, a failed send) *detaches* the run: it goes on, spooling,
for ``detach_grace_s``; nobody attaching within it ends the run (``killed``, with a
``RunFinished`` that says so, spooled). ``RunAttach`` replays the spooled frames after the
client's number under the run's send lock, so nothing is lost or doubled, and takes over from a
stream attached before (closed, the run goes on). ``RunCancel`` ends the run, on its stream or by
id. A finished run's spool is kept until a client got its ``RunFinished``, or for the grace.

A run is bound to the token that started it (its SHA-256): attach and cancel from another token
get the very answer an unknown id gets. A run the daemon no longer has leaves a tombstone for
the grace, so that ``unknown_run`` can say why (the daemon restarted, the spool expired).
"""

from __future__ import annotations

import datetime
import hmac
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
import trio

from ._config import DaemonConfig
from ._connection import FramedStream
from ._errors import DaemonError
from ._parsers import Reason
from ._plan import RequestError
from ._process import ExitStatus
from ._protocol import LIVE_CONTROL, Message, ProtocolViolation, decode_frame, encode_frame
from ._records import RunAttach, RunAttached, RunCancel, RunFinished, RunStarted
from ._spool import Spool, number_frames, spool_run_ids

__all__ = [
    "ActiveRun",
    "Attachment",
    "DetachableRun",
    "Detachments",
    "check_run_id",
]

log = logging.getLogger("host_daemon")

RUN_ID: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")
_STARTED_PREFIX: Final = b'{"type":"run_started"'
_FINISHED_PREFIX: Final = b'{"type":"run_finished"'
#: After a cancel by id, how long the answer waits for the run's end beyond the kill grace.
_CANCEL_REPORT_S: Final = 2.0


def _fields(**fields: object) -> dict[str, Any]:
    return {"fields": fields}


def check_run_id(run_id: str) -> None:
    """Refuse a ``run_id`` that is not 8 to 64 of ``A-Z a-z 0-9 _ -``."""
    if not RUN_ID.fullmatch(run_id):
        raise RequestError(
            "invalid_request",
            f"expected 8 to 64 characters of A-Z, a-z, 0-9, _ and -, got {run_id[:80]!r} "
            "@ $.run_id",
        )


@attrs.define(eq=False)
class ActiveRun:
    """A run in flight: how to cancel it, why it was, and what is known of its end."""

    scope: trio.CancelScope
    reason: Reason = "exited"
    #: The leader's status, set once it exited and the output ended; a cancel that comes later
    #: (while stragglers are killed, say) does not make a finished agent ``killed``.
    status: ExitStatus | None = None
    output_capped: bool = False
    client_gone: bool = False
    #: Why the daemon ended the run, for its ``RunFinished.error`` (the detach grace ran out).
    end_message: str | None = None

    def cancel(self, reason: Reason, message: str | None = None) -> None:
        """End the run with ``reason`` (and ``message`` as its error)."""
        self.reason = reason
        if message is not None:
            self.end_message = message
        self.scope.cancel()


@attrs.define(eq=False)
class Attachment:
    """One connection streaming a detachable run; ``ended`` once it no longer does."""

    conn: FramedStream
    conn_id: int
    ended: trio.Event = attrs.field(factory=trio.Event)

    async def close(self) -> None:
        """Taken over: end the stream (its handler returns; the run is not touched)."""
        self.ended.set()
        await self.conn.stream.aclose()


#: A live turn's handler of the client's control frames (``_live_turn.handle_control``).
Control = Callable[[Message], Awaitable[bool]]
#: What runs the agent: the plain run or the live turn, sending through the run.
RunBody = Callable[["DetachableRun"], Awaitable[None]]


class DetachableRun:
    """One detachable run: its numbering, spool, attached stream and grace (module docstring)."""

    def __init__(
        self,
        owner: Detachments,
        run_id: str,
        token_hash: str,
        active: ActiveRun,
        *,
        live: bool,
        spool: Spool,
    ) -> None:
        self.owner = owner
        self.run_id = run_id
        self.token_hash = token_hash
        self.active = active
        self.live = live
        self._spool = spool
        self.started: RunStarted | None = None
        #: Set once ``started`` is known, or the run ended without starting.
        self.started_or_ended = trio.Event()
        #: Why the run never started (its request's error, for the connection that asked).
        self.refused: RequestError | None = None
        self.next_seq = 1
        self.attachment: Attachment | None = None
        #: The ``RunFinished`` is spooled (the last frame).
        self.finished_spooled = False
        #: The agent's part is over.
        self.ended = False
        self.done = trio.Event()
        #: A client got the ``RunFinished``: the spool may go.
        self.delivered = trio.Event()
        #: The live turn's handler of ``TurnInput``, ``PermissionDecision``, ``Interrupt``.
        self.control: Control | None = None
        self._lock = trio.Lock()
        self._detached_at: float | None = None
        self._grace_scope: trio.CancelScope | None = None

    @property
    def detached(self) -> bool:
        """In flight with no stream attached."""
        return self.attachment is None and not self.ended

    # -- the run's side -----------------------------------------------------------------------

    async def send_frames(self, frames: bytes | bytearray) -> None:
        """Number, spool, then forward the run's frames (``FrameSink``); never raises for a
        stream that is gone: that detaches the run."""
        async with self._lock:
            wire, spooled, self.next_seq = number_frames(frames, self.next_seq)
            if spooled:
                await trio.to_thread.run_sync(self._spool.append, spooled)
                if self.started is None:
                    self._note_started(spooled)
                if spooled[spooled.rfind(b"\n", 0, -1) + 1 :].startswith(_FINISHED_PREFIX):
                    self.finished_spooled = True
            attachment = self.attachment
            if attachment is None:
                return
            try:
                await attachment.conn.send_frames(wire)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.detach(attachment)
            except trio.Cancelled:
                self.detach(attachment)  # a frame may be cut short: the client re-attaches
                raise
            else:
                if self.finished_spooled:
                    self._deliver()

    def _note_started(self, spooled: bytes) -> None:
        first = spooled[: spooled.index(b"\n")]
        if first.startswith(_STARTED_PREFIX):  # else the run ended before it started
            started = decode_frame(first, frozenset({RunStarted}))
            assert isinstance(started, RunStarted)  # noqa: S101 -- checked by its tag
            self.started = started
            self.started_or_ended.set()

    def cancel(self, reason: Reason, message: str | None = None) -> None:
        """End the run (its ``RunFinished`` says ``reason``, and ``message`` if given)."""
        if not self.ended:
            self.active.cancel(reason, message)

    async def main(self, body: RunBody) -> None:
        """Run ``body`` to its end, then keep the spool until delivered or the grace passed."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_grace)
                try:
                    await body(self)
                finally:
                    nursery.cancel_scope.cancel()
        except RequestError as exc:
            if self.started is not None:
                await self._fail(exc)
            else:
                self.refused = exc
        except Exception as exc:  # a bug costs this run, never the daemon
            log.exception("detachable run failed", extra=_fields(run_id=self.run_id))
            if self.started is not None:
                await self._fail(exc)
            else:
                self.refused = RequestError("spawn_failed", f"the run failed to start: {exc}")
        finally:
            self.ended = True
            self.started_or_ended.set()
            self.done.set()
            self._spool.close()
            self.owner.run_ended(self)
        attachment, self.attachment = self.attachment, None
        if attachment is not None:
            attachment.ended.set()
        if self.refused is not None:
            await trio.to_thread.run_sync(self._spool.remove)
            self.owner.forget(self, why=None)
            return
        with trio.move_on_after(self.owner.finished_spool_s):
            await self.delivered.wait()
        self.owner.forget(self, why="the run finished and its spool expired")
        await trio.to_thread.run_sync(self._spool.remove)

    def _deliver(self) -> None:
        """A client got the ``RunFinished``: the run is done with (its spool goes)."""
        self.delivered.set()
        self.owner.forget(self, why="the run finished and its end was delivered")

    async def _fail(self, exc: Exception) -> None:
        """The body failed after the start: end the stream with a ``RunFinished`` that says so."""
        failed = RunFinished(
            outcome="error",
            exit_code=None,
            signal=None,
            session_id=None,
            final_text=None,
            cost_usd=None,
            num_turns=None,
            usage=None,
            error=f"the daemon failed the run: {type(exc).__name__}: {exc}",
        )
        with trio.CancelScope(shield=True):
            await self.send_frames(encode_frame(failed))

    # -- streams --------------------------------------------------------------------------------

    def detach(self, attachment: Attachment) -> None:
        """``attachment``'s stream is gone: the run goes on for the grace (0: it is cancelled)."""
        if self.attachment is not attachment:
            return
        self.attachment = None
        attachment.ended.set()
        if self.ended:
            return
        grace = self.owner.grace_s
        fields = _fields(run_id=self.run_id, conn=attachment.conn_id, grace_s=grace)
        log.info("run detached", extra=fields)
        if grace <= 0:
            self.cancel("cancelled")
            return
        self._detached_at = trio.current_time()
        self._set_grace_deadline()

    async def attach(self, attachment: Attachment, after_seq: int) -> None:
        """Answer ``RunAttached``, replay the frames after ``after_seq``, then stream on."""
        await self.started_or_ended.wait()
        if self.started is None:
            raise self.owner.unknown(self.run_id)
        if not 0 <= after_seq < self.next_seq:
            raise RequestError(
                "invalid_request",
                f"expected a number from 0 to {self.next_seq - 1} (the run's last frame), "
                f"got {after_seq} @ $.after_seq",
            )
        # The stream attached now goes first (a send to it may hold the lock), and one that
        # got attached while this one waited for the lock goes under it.
        await self._take_over(attachment)
        async with self._lock:
            await self._take_over(attachment)
            attached = RunAttached(
                run_id=self.run_id, next_seq=self.next_seq, live=self.live, started=self.started
            )
            try:
                await attachment.conn.send(attached)
                await self._replay(attachment.conn, after_seq)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                attachment.ended.set()
                return
            log.info(
                "run attached",
                extra=_fields(run_id=self.run_id, conn=attachment.conn_id, after_seq=after_seq),
            )
            if self.finished_spooled:  # the replay held the ``RunFinished``
                self._deliver()
                attachment.ended.set()
                return
            self.attachment = attachment
            self._detached_at = None
            self._set_grace_deadline()

    async def _take_over(self, attachment: Attachment) -> None:
        old, self.attachment = self.attachment, None
        if old is not None:
            log.info(
                "run taken over",
                extra=_fields(run_id=self.run_id, conn=attachment.conn_id, old_conn=old.conn_id),
            )
            await old.close()

    async def _replay(self, conn: FramedStream, after_seq: int) -> None:
        chunks = self._spool.chunks_after(after_seq)
        try:
            while (chunk := await trio.to_thread.run_sync(next, chunks, None)) is not None:
                await conn.send_frames(chunk)
        finally:
            chunks.close()

    # -- the grace ------------------------------------------------------------------------------

    def _set_grace_deadline(self) -> None:
        if self._grace_scope is not None:
            at = self._detached_at
            self._grace_scope.deadline = math.inf if at is None else at + self.owner.grace_s

    async def _watch_grace(self) -> None:
        while True:
            with trio.CancelScope() as scope:
                self._grace_scope = scope
                self._set_grace_deadline()
                await trio.sleep_forever()
            at = self._detached_at
            grace = self.owner.grace_s
            if self.attachment is None and at is not None and trio.current_time() >= at + grace:
                log.warning(
                    "detached run's grace ran out, ending it",
                    extra=_fields(run_id=self.run_id, grace_s=grace),
                )
                self.cancel("killed", f"detached for longer than the {grace:g} s grace")
                return


async def serve_attachment(run: DetachableRun, attachment: Attachment) -> None:
    """Stream ``run`` on ``attachment`` until the run ends, the stream ends or is taken over;
    meanwhile the client's frames go to the run (``run_cancel``, a live turn's controls)."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read_controls, run, attachment)
        await attachment.ended.wait()
        nursery.cancel_scope.cancel()


async def _read_controls(run: DetachableRun, attachment: Attachment) -> None:
    try:
        while (message := await attachment.conn.receive()) is not None:
            if isinstance(message, RunCancel) and message.run_id == run.run_id:
                log.info("run cancel on its stream", extra=_fields(run_id=run.run_id))
                run.cancel("cancelled")
            elif type(message) in LIVE_CONTROL and run.control is not None:
                await run.control(message)
            else:
                log.warning(
                    "unexpected frame on a run's stream, ignored",
                    extra=_fields(run_id=run.run_id, frame=type(message).__name__),
                )
    except ProtocolViolation as exc:
        log.warning(
            "bad frame on a run's stream, detaching it",
            extra=_fields(run_id=run.run_id, code=exc.code, error=exc.message),
        )
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    run.detach(attachment)
    attachment.ended.set()


@attrs.frozen
class _Tombstone:
    why: str
    expires_at: float
    #: The binding of the run it stands for (None: unknown, a previous daemon's run).
    token_hash: str | None


class Detachments:
    """Every detachable run of the daemon, in one nursery (``run`` is ``serve_daemon``'s)."""

    def __init__(self, config: DaemonConfig) -> None:
        self.grace_s = config.detach_grace_s
        spool_s = config.finished_spool_s
        self.finished_spool_s = config.detach_grace_s if spool_s is None else spool_s
        self._kill_grace_s = config.kill_grace_s
        self._state_dir = config.state_dir
        self.runs: dict[str, DetachableRun] = {}
        self._tombstones: dict[str, _Tombstone] = {}
        self._nursery: trio.Nursery | None = None
        self._spool_dir: str | None = None
        self._in_flight = 0
        #: Set while no detachable run is in flight (graceful shutdown waits for it).
        self.idle = trio.Event()
        self.idle.set()

    @property
    def detached_count(self) -> int:
        """Runs in flight with no stream attached."""
        return sum(1 for run in self.runs.values() if run.detached)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the runs until cancelled (their groups are then killed); the spool directory is
        ``STATE_DIR/spool`` (a private temporary one without a state directory)."""
        temporary = None
        if self._state_dir is None:
            temporary = await trio.to_thread.run_sync(
                lambda: tempfile.mkdtemp(prefix="coding-agent-spool-")
            )
            self._spool_dir = temporary
        else:
            self._spool_dir = os.path.join(self._state_dir, "spool")
            expires_at = trio.current_time() + self.grace_s
            await trio.to_thread.run_sync(self._bury_previous, self._spool_dir, expires_at)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            if temporary is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(shutil.rmtree, temporary, True)

    def _bury_previous(self, spool_dir: str, expires_at: float) -> None:
        """A previous daemon's spools: their runs are gone (swept); tombstones say so."""
        os.makedirs(spool_dir, mode=0o700, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        why = f"the host daemon restarted at {now}; the run was ended"
        for run_id in spool_run_ids(spool_dir):
            self._tombstones[run_id] = _Tombstone(why, expires_at, None)
            os.unlink(os.path.join(spool_dir, run_id + ".ndjson"))
        if self._tombstones:
            log.info(
                "runs of a previous daemon instance ended",
                extra=_fields(runs=len(self._tombstones)),
            )

    def _prune(self) -> None:
        now = trio.current_time()
        for run_id in [key for key, stone in self._tombstones.items() if stone.expires_at <= now]:
            del self._tombstones[run_id]

    def unknown(self, run_id: str) -> RequestError:
        """The one answer for a run id the client cannot have (no oracle for other tokens)."""
        return RequestError("unknown_run", f"no run {run_id} is known to this daemon")

    def find(self, run_id: str, token_hash: str) -> DetachableRun:
        """Run ``run_id`` of this token, or ``unknown_run`` (saying why when known)."""
        check_run_id(run_id)
        run = self.runs.get(run_id)
        if run is not None and hmac.compare_digest(run.token_hash, token_hash):
            return run
        self._prune()
        stone = self._tombstones.get(run_id)
        if (
            run is None
            and stone is not None
            and (stone.token_hash is None or hmac.compare_digest(stone.token_hash, token_hash))
        ):
            raise RequestError("unknown_run", f"run {run_id}: {stone.why}")
        raise self.unknown(run_id)

    async def prepare(
        self, run_id: str, token_hash: str, active: ActiveRun, *, live: bool
    ) -> DetachableRun:
        """A new run ``run_id`` with its spool, registered (``run_exists`` if it is known)."""
        check_run_id(run_id)
        self._prune()
        if run_id in self.runs or run_id in self._tombstones:
            raise RequestError("run_exists", f"run {run_id} exists already on this daemon")
        if self._nursery is None or self._spool_dir is None:
            raise RequestError("busy", "the daemon is not running detachable runs now")
        spool_dir = self._spool_dir
        placeholder = _Tombstone("the run is starting", math.inf, token_hash)
        self._tombstones[run_id] = placeholder  # holds the id while the spool is made
        try:
            spool = await trio.to_thread.run_sync(Spool, spool_dir, run_id)
        except OSError as exc:
            raise RequestError(
                "spawn_failed", f"cannot create the run's spool in {spool_dir}: {exc.strerror}"
            ) from None
        finally:
            del self._tombstones[run_id]
        run = DetachableRun(self, run_id, token_hash, active, live=live, spool=spool)
        self.runs[run_id] = run
        self._in_flight += 1
        self.idle = trio.Event() if self._in_flight == 1 else self.idle
        return run

    async def launch(
        self, conn_id: int, conn: FramedStream, run: DetachableRun, body: RunBody
    ) -> None:
        """Start ``run`` (``body`` in the daemon's nursery) and stream it on ``conn`` until the
        run or the stream ends; a run that could not start raises its ``RequestError`` here."""
        assert self._nursery is not None  # noqa: S101 -- checked by ``prepare``
        attachment = Attachment(conn, conn_id)
        run.attachment = attachment
        self._nursery.start_soon(run.main, body)
        await serve_attachment(run, attachment)
        if run.refused is not None:
            raise run.refused

    async def attach(
        self, conn_id: int, conn: FramedStream, request: RunAttach, token_hash: str
    ) -> None:
        """Stream run ``request.run_id`` on ``conn`` from ``after_seq + 1`` (see the module)."""
        run = self.find(request.run_id, token_hash)
        attachment = Attachment(conn, conn_id)
        await run.attach(attachment, request.after_seq)
        await serve_attachment(run, attachment)

    async def cancel(self, run_id: str, token_hash: str) -> bool:
        """End run ``run_id`` (waiting, within the kill grace, for its group to be gone):
        whether it was known; a finished one still spooled is known and left as it is."""
        try:
            run = self.find(run_id, token_hash)
        except DaemonError:
            return False
        if not run.ended:
            log.info("run cancel by id", extra=_fields(run_id=run_id))
            run.cancel("cancelled")
            with trio.move_on_after(self._kill_grace_s + _CANCEL_REPORT_S):
                await run.done.wait()
        return True

    def run_ended(self, run: DetachableRun) -> None:
        """``run``'s agent part is over (it no longer counts as in flight)."""
        self._in_flight -= 1
        if self._in_flight == 0:
            self.idle.set()

    def forget(self, run: DetachableRun, *, why: str | None) -> None:
        """``run`` and its spool are gone; a tombstone says ``why`` for the grace."""
        if self.runs.get(run.run_id) is not run:
            return
        del self.runs[run.run_id]
        if why is not None:
            expires_at = trio.current_time() + self.grace_s
            self._tombstones[run.run_id] = _Tombstone(why, expires_at, run.token_hash)
            self._prune()
