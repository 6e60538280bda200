"""Process groups that really die: spawn a run, stream its output with backpressure, end it whole.

A run is spawned in its own session (so its process group id is the leader's pid) with stdin on
``/dev/null`` and two pipes for its output. Leaving :func:`spawn_group` for any reason terminates
every process of the run (SIGTERM, a grace period, then SIGKILL) and reaps it, shielded.

Finding "every process of the run" takes four nets, because children may leave the group:

- the process group (what ``killpg`` reaches);
- descendants of those by parent-pid chains, while the ancestors live;
- processes that carry the run's marker in their environment (``CODING_AGENT_RUN_ID``): it is
  inherited across ``setsid()`` and double forks, so an escaped tree is found even after it was
  reparented to init;
- pids seen earlier by any net, verified by their start time (``/proc/PID/stat`` field 22):
  this catches an escaped process that cleared its environment and was then reparented to the
  daemon (a child subreaper, :func:`become_subreaper`), provided a scan saw it while its parent
  lived (scans run every second, and at every step of a termination). One that clears its
  environment, escapes and loses its parent within that second is beyond these nets: systemd's
  ``KillMode=control-group`` still ends it with the daemon.

Signals go through pidfds opened after the start time was checked, so a reused pid is never hit.
The leader is watched through a pidfd and not reaped until the end, so its pid (the group id)
cannot be reused while the run lives.

The leader is forked from the trio thread itself, not with ``trio.lowlevel.open_process``: trio
forks from a worker thread, and ``PR_SET_PDEATHSIG`` fires when the *thread* that forked exits,
which trio's thread cache does after 10 s idle (measured: the child got SIGTERM 10.0 s after
spawn). A ``preexec_fn`` sets the signal, calling ``prctl`` through a ctypes function resolved
beforehand, then checks ``getppid()`` in case the daemon died before the ``prctl``: a syscall
and a foreign call, no lock that another thread could hold across the fork. The price is a
plain fork instead of vfork, about 5-10 ms per spawn here, during which the event loop waits;
util-linux ``setpriv --pdeathsig`` as an exec wrapper spawns in about 2 ms but was rejected: an
exec failure of the agent (a missing interpreter, say) then shows up as an exit code instead of
an ``OSError`` from the spawn, ``execvp`` runs non-executable formats through ``/bin/sh``, and
the ``getppid()`` check is lost.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import secrets
import signal
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Literal

import attrs
import trio

from ._proc import ProcStat, descendants, environ_has, read_stat, snapshot

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "OUTPUT_BUFFER_BYTES",
    "RUN_MARKER_ENV",
    "ExitStatus",
    "GroupProcess",
    "OutputLine",
    "become_subreaper",
    "is_subreaper",
    "output_limit_marker",
    "reap_adopted_orphans",
    "signal_verified",
    "spawn_group",
]

logger = logging.getLogger(__name__)

RUN_MARKER_ENV = "CODING_AGENT_RUN_ID"
DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
OUTPUT_BUFFER_BYTES = 1024 * 1024
"""Bytes of complete lines held for a slow reader before the pumps stop reading the pipes."""

_READ_CHUNK = 64 * 1024
_LINE_OVERHEAD = 64  # what an OutputLine costs beyond its data, for the buffer's accounting
_TRACK_INTERVAL = 1.0
_KILL_WAIT = 5.0  # how long SIGKILLed processes get to vanish (uninterruptible sleep) after grace
_REAP_WAIT = 5.0

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int

#: Pids of run leaders forked by ``spawn_group`` and not yet reaped by it: their exit status
#: belongs to their run, so :func:`reap_adopted_orphans` leaves them alone.
_leaders: set[int] = set()


@attrs.frozen
class OutputLine:
    """One line of a run's output, without its newline; ``truncated`` if it was cut."""

    stream: Literal["stdout", "stderr"]
    data: bytes
    truncated: bool = False


@attrs.frozen
class ExitStatus:
    """How the leader ended: an exit code, or the signal that killed it."""

    exit_code: int | None
    signal: int | None


def output_limit_marker(limit: int) -> bytes:
    """The line produced once a run's output exceeds ``limit`` bytes."""
    return f"[coding-agent: output exceeded {limit} bytes; the rest was discarded]".encode()


def become_subreaper(enable: bool = True) -> None:
    """Make this process the reaper of its orphaned descendants (``PR_SET_CHILD_SUBREAPER``).

    Then processes that escaped a run with ``setsid()`` and lost their parent are reparented to
    the daemon instead of init, where the runner finds, kills and reaps them; those no run
    finds are reaped by :func:`reap_adopted_orphans` (``serve_daemon`` calls it every second).
    A subreaper must fork only through :func:`spawn_group`, whose leaders that function spares.
    Call it once, at daemon start; it lasts for the life of the process (``enable=False``
    undoes it, for tests).
    """
    if _prctl(_PR_SET_CHILD_SUBREAPER, int(enable), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def is_subreaper() -> bool:
    """Whether this process is a child subreaper (see :func:`become_subreaper`)."""
    flag = ctypes.c_int(0)
    if _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.addressof(flag), 0, 0, 0) != 0:
        return False
    return bool(flag.value)


def reap_adopted_orphans() -> list[int]:
    """Reap the dead children of this process that no run leader is; returns their pids.

    A subreaper adopts every orphan below it, including processes that escaped a run unseen
    (a ``setsid()`` with a cleared environment whose parent died before a scan) and those of
    a short run such as ``agent_version``. Without this they would stay zombies for the
    daemon's lifetime. Leaders of live runs are spared: ``spawn_group`` reaps them itself.
    """
    me = os.getpid()
    reaped = []
    for stat in snapshot().values():
        if stat.ppid != me or stat.alive or stat.pid in _leaders:
            continue
        with suppress(ChildProcessError):
            if os.waitid(os.P_PID, stat.pid, os.WEXITED | os.WNOHANG) is not None:
                reaped.append(stat.pid)
    return reaped


def _child_setup(parent_pid: int) -> Callable[[], None]:
    term = int(signal.SIGTERM)

    def setup() -> None:
        _prctl(_PR_SET_PDEATHSIG, term, 0, 0, 0)
        # The parent may have died before prctl took effect: then no signal would ever come.
        if os.getppid() != parent_pid:
            os._exit(128 + term)

    return setup


class _ByteBudget:
    """Bytes of output waiting for the reader; producers park while it is spent."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._lot = trio.lowlevel.ParkingLot()

    async def acquire(self, amount: int) -> None:
        # A single line larger than the budget still passes once the buffer is empty.
        while self._used > 0 and self._used + amount > self._limit:
            await self._lot.park()
        self._used += amount

    def release(self, amount: int) -> None:
        self._used -= amount
        if self._lot:
            self._lot.unpark_all()


class _LineSplitter:
    """Split a byte stream into lines, cutting each at ``max_line`` bytes as it arrives."""

    def __init__(self, max_line: int) -> None:
        self._max_line = max_line
        self._line = bytearray()
        self._cut = False  # the current line was cut: discard up to its newline

    def feed(self, chunk: bytes) -> list[tuple[bytes, bool]]:
        """The lines completed (or cut) by ``chunk``, as ``(data, truncated)``."""
        lines: list[tuple[bytes, bool]] = []
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            if 0 <= newline - start <= self._max_line and not self._line and not self._cut:
                lines.append((chunk[start:newline], False))  # the common case: a whole line
                start = newline + 1
                continue
            end = len(chunk) if newline < 0 else newline
            if not self._cut:
                room = self._max_line - len(self._line)
                self._line += chunk[start : start + min(room, end - start)]
                if end - start > room:
                    self._cut = True
                    lines.append((bytes(self._line), True))
                    self._line.clear()
            if newline < 0:
                return lines
            if self._cut:
                self._cut = False
            else:
                lines.append((bytes(self._line), False))
                self._line.clear()
            start = newline + 1

    def flush(self) -> bytes:
        """The unfinished line so far (empty if none), and start afresh."""
        rest = bytes(self._line)
        self._line.clear()
        return rest


def _cost(line: OutputLine) -> int:
    return len(line.data) + _LINE_OVERHEAD


def signal_verified(stat: ProcStat, sig: int) -> None:
    """Send ``sig`` to the process ``stat`` describes, and never to a pid's new owner."""
    try:
        pidfd = os.pidfd_open(stat.pid)
    except OSError:
        return
    try:
        current = read_stat(stat.pid)
        if current is not None and current.start_time == stat.start_time:
            signal.pidfd_send_signal(pidfd, sig)
    except OSError:
        pass
    finally:
        os.close(pidfd)


class GroupProcess:
    """A running process group: its output lines (async iteration), its exit, its end."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        pidfd: int,
        start_time: int,
        marker: bytes,
        *,
        kill_grace: float,
        max_output_bytes: int | None,
        max_line_bytes: int,
        receive: trio.MemoryReceiveChannel[list[OutputLine]],
    ) -> None:
        self._popen = popen
        self._pidfd = pidfd
        self._start_time = start_time
        self._marker = marker
        self._kill_grace = kill_grace
        self._max_line_bytes = max_line_bytes
        self._max_output_bytes = max_output_bytes
        self._output_left = max_output_bytes
        self._receive = receive
        self._pending: deque[OutputLine] = deque()
        self._ended = False
        self._budget = _ByteBudget(OUTPUT_BUFFER_BYTES)
        self._seen: dict[int, int] = {popen.pid: start_time}
        self._unmarked: set[tuple[int, int]] = set()
        self._exited = trio.Event()
        self._status: ExitStatus | None = None
        self.output_capped = False
        """Whether the output limit was reached (the marker line was produced)."""

    @property
    def pid(self) -> int:
        """The leader's pid, which is also the process group id."""
        return self._popen.pid

    def __aiter__(self) -> GroupProcess:
        return self

    async def __anext__(self) -> OutputLine:
        # Lines arrive in batches (one per pipe read): serving a line already here costs no
        # trip through the scheduler, which multiplies throughput for short lines.
        if self._pending:
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            try:
                self._pending.extend(await self._receive.receive())
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise StopAsyncIteration from None
        line = self._pending.popleft()
        self._budget.release(_cost(line))
        return line

    async def next_batch(self, max_bytes: int) -> list[OutputLine]:
        """The lines waiting now, in order: at least one, then up to ``max_bytes`` of them.

        Waits only when no line is waiting; returns ``[]`` once the output has ended. Taking a
        batch frees its room in the buffer at once, so the pumps refill it while the caller
        forwards the batch; what the caller holds is bounded by ``max_bytes`` (or one line).
        """
        if self._pending:
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            try:
                self._pending.extend(await self._receive.receive())
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return []
        while True:  # every batch the pumps have sent already, without waiting
            try:
                self._pending.extend(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        pending = self._pending
        size = sum([len(line.data) for line in pending]) + _LINE_OVERHEAD * len(pending)
        if size <= max_bytes:  # the common case: take everything
            batch = list(pending)
            pending.clear()
        else:
            batch = [pending.popleft()]
            size = len(batch[0].data) + _LINE_OVERHEAD
            while pending and size + (cost := len(pending[0].data) + _LINE_OVERHEAD) <= max_bytes:
                batch.append(pending.popleft())
                size += cost
        self._budget.release(size)
        return batch

    async def wait(self) -> ExitStatus:
        """Wait for the leader to exit and say how (the group may still be ending)."""
        await self._exited.wait()
        assert self._status is not None  # noqa: S101 -- set before the event
        return self._status

    async def terminate(self) -> None:
        """End every process of the run (SIGTERM, grace, SIGKILL); return when none runs."""
        await self._terminate_tree()

    # -- output ------------------------------------------------------------------------------

    async def _pump(
        self,
        stream: trio.lowlevel.FdStream,
        name: Literal["stdout", "stderr"],
        send: trio.MemorySendChannel[list[OutputLine]],
    ) -> None:
        async with send:
            splitter = _LineSplitter(self._max_line_bytes)
            while True:
                chunk = await stream.receive_some(_READ_CHUNK)
                if not chunk:
                    break
                if self.output_capped:
                    continue  # keep draining so the child is not wedged on a full pipe
                over = False
                if self._output_left is not None:
                    if len(chunk) > self._output_left:
                        chunk = chunk[: self._output_left]
                        over = True
                    self._output_left -= len(chunk)
                batch = [OutputLine(name, data, cut) for data, cut in splitter.feed(chunk)]
                await self._emit(send, batch)
                if over and not self.output_capped:
                    self.output_capped = True
                    rest = splitter.flush()
                    if rest:
                        await self._emit(send, [OutputLine(name, rest, truncated=True)])
                    assert self._max_output_bytes is not None  # noqa: S101 -- over implies a limit
                    marker = output_limit_marker(self._max_output_bytes)
                    await self._emit(send, [OutputLine(name, marker, truncated=True)])
            rest = splitter.flush()
            if rest and not self.output_capped:
                await self._emit(send, [OutputLine(name, rest)])

    async def _emit(
        self, send: trio.MemorySendChannel[list[OutputLine]], batch: list[OutputLine]
    ) -> None:
        if not batch:
            return
        cost = sum([len(line.data) for line in batch]) + _LINE_OVERHEAD * len(batch)
        await self._budget.acquire(cost)
        try:
            send.send_nowait(batch)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._budget.release(cost)

    # -- the leader and the tree -------------------------------------------------------------

    async def _supervise(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._track)
            await trio.lowlevel.wait_readable(self._pidfd)
            self._record_status()
            nursery.cancel_scope.cancel()
        # The leader is gone: stragglers would otherwise hold the pipes open forever.
        await self._terminate_tree()

    async def _track(self) -> None:
        while True:
            await trio.sleep(_TRACK_INTERVAL)
            self._collect()
            self._reap_orphans()

    def _record_status(self) -> None:
        if self._status is not None:
            return
        if self._popen.returncode is not None:
            code = self._popen.returncode
            self._status = ExitStatus(code, None) if code >= 0 else ExitStatus(None, -code)
        else:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
            if info is None:
                return
            if info.si_code == os.CLD_EXITED:
                self._status = ExitStatus(info.si_status, None)
            else:
                self._status = ExitStatus(None, info.si_status)
        self._exited.set()

    def _collect(self) -> dict[int, ProcStat]:
        """Every process of the run that /proc shows now, zombies included."""
        stats = snapshot()
        me = os.getpid()
        roots = {self.pid}
        for stat in stats.values():
            if stat.pid == me:
                continue
            key = (stat.pid, stat.start_time)
            if stat.pgid == self.pid or self._seen.get(stat.pid) == stat.start_time:
                roots.add(stat.pid)
            elif stat.alive and stat.start_time >= self._start_time and key not in self._unmarked:
                marked = environ_has(stat.pid, self._marker)
                if marked:
                    roots.add(stat.pid)
                elif marked is not None:  # only a definite "no" is remembered
                    self._unmarked.add(key)
        members = {pid: stats[pid] for pid in roots if pid in stats}
        for stat in descendants(roots, stats):
            members[stat.pid] = stat
        members.pop(me, None)
        # A pid absent now never comes back with the same start time: forget it.
        self._seen = {pid: stat.start_time for pid, stat in members.items()}
        self._seen.setdefault(self.pid, self._start_time)
        self._unmarked = {k for k in self._unmarked if k[0] in stats}
        return members

    def _reap_orphans(self) -> None:
        """Reap run processes that were reparented to this (subreaper) process and died."""
        me = os.getpid()
        for pid, start_time in list(self._seen.items()):
            if pid == self.pid:
                continue  # the leader is reaped last, through its Popen
            stat = read_stat(pid)
            if stat is None or stat.start_time != start_time or stat.ppid != me or stat.alive:
                continue
            with suppress(ChildProcessError):
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)

    async def _terminate_tree(self) -> None:
        if self._ended:
            return  # everything, the leader included, was seen dead: nothing can come back
        grace_end = trio.current_time() + self._kill_grace
        termed: set[tuple[int, int]] = set()
        delay = 0.005
        while True:
            live = [stat for stat in self._collect().values() if stat.alive]
            self._reap_orphans()
            if not live:
                self._ended = True
                return
            now = trio.current_time()
            if now >= grace_end + _KILL_WAIT:
                logger.warning(
                    "run %d: %d process(es) survive SIGKILL (uninterruptible?): %s",
                    self.pid,
                    len(live),
                    sorted(stat.pid for stat in live),
                )
                return
            if now >= grace_end:
                # SIGKILL, again each round: it cannot be caught, and catches late forks.
                with suppress(OSError):
                    os.killpg(self.pid, signal.SIGKILL)
                for stat in live:
                    signal_verified(stat, signal.SIGKILL)
            else:
                # SIGTERM exactly once per process: a second one makes some CLIs skip their
                # cleanup, or re-enters a handler that is still cleaning up.
                fresh = [stat for stat in live if (stat.pid, stat.start_time) not in termed]
                if not termed:
                    with suppress(OSError):
                        os.killpg(self.pid, signal.SIGTERM)
                        os.killpg(self.pid, signal.SIGCONT)  # a stopped one must see its TERM
                    fresh = [stat for stat in fresh if stat.pgid != self.pid]
                    termed.update((s.pid, s.start_time) for s in live if s.pgid == self.pid)
                for stat in fresh:
                    signal_verified(stat, signal.SIGTERM)
                    signal_verified(stat, signal.SIGCONT)
                    termed.add((stat.pid, stat.start_time))
            await trio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _finish(self, streams: Sequence[trio.lowlevel.FdStream]) -> None:
        """Shielded end: the tree once more, then close everything and reap the leader last."""
        await self._terminate_tree()
        for stream in streams:
            await stream.aclose()
        self._receive.close()
        if self._popen.poll() is None:
            with trio.move_on_after(_REAP_WAIT):
                await trio.lowlevel.wait_readable(self._pidfd)
        self._record_status()
        if self._popen.poll() is None:
            logger.warning("run %d: the leader could not be reaped", self.pid)
        trio.lowlevel.notify_closing(self._pidfd)
        os.close(self._pidfd)
        _leaders.discard(self.pid)
        self._reap_orphans()


def _spawn(
    argv: list[str], cwd: str | int, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int, int]:
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    try:
        popen = subprocess.Popen(
            argv,
            # The child changes directory before it closes descriptors, and the magic link
            # leads to the directory the descriptor holds, not to whatever has its name now.
            cwd=cwd if isinstance(cwd, str) else f"/proc/self/fd/{cwd}",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out_write,
            stderr=err_write,
            start_new_session=True,
            close_fds=True,
            preexec_fn=_child_setup(os.getpid()),  # noqa: PLW1509 -- prctl only; see module doc
        )
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        os.close(out_write)
        os.close(err_write)
    _leaders.add(popen.pid)
    return popen, out_read, err_read


@asynccontextmanager
async def spawn_group(
    argv: Sequence[str],
    *,
    cwd: str | int,
    env: Mapping[str, str] | None = None,
    kill_grace: float = 5.0,
    max_output_bytes: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> AsyncIterator[GroupProcess]:
    """Run ``argv`` in a new session and process group; end the whole run when the block ends.

    ``cwd`` is a path, or a descriptor of a directory (``O_PATH`` will do) that the child starts
    in, whatever has its name by then. ``env`` defaults to the daemon's own environment; the
    run's marker variable is added either way. Output is read as lines (async-iterate the
    yielded :class:`GroupProcess`): a reader that stops pulling stops the pumps once
    :data:`OUTPUT_BUFFER_BYTES` are waiting, and then the child blocks on its pipe. Leaving the
    block (normally, by exception or by cancellation) terminates and reaps every process of the
    run before it returns.
    """
    if isinstance(argv, str | bytes) or not argv:
        raise TypeError("argv must be a non-empty sequence of strings, never a shell string")
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be positive")
    if max_output_bytes is not None and max_output_bytes < 0:
        raise ValueError("max_output_bytes must not be negative")
    run_id = secrets.token_hex(16)
    child_env = dict(os.environ if env is None else env)
    child_env[RUN_MARKER_ENV] = run_id
    popen, out_fd, err_fd = _spawn(list(argv), cwd, child_env)
    streams = [trio.lowlevel.FdStream(out_fd), trio.lowlevel.FdStream(err_fd)]
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError as exc:  # pragma: no cover -- kernels without pidfds are not supported
        popen.kill()
        popen.wait()
        _leaders.discard(popen.pid)
        raise OSError(errno.ENOSYS, "pidfd_open is required (Linux 5.3+)") from exc
    leader = read_stat(popen.pid)
    start_time = leader.start_time if leader is not None else 0
    # Unbounded in items, bounded in bytes: the pumps wait on the byte budget before sending.
    send, receive = trio.open_memory_channel[list[OutputLine]](float("inf"))
    proc = GroupProcess(
        popen,
        pidfd,
        start_time,
        f"{RUN_MARKER_ENV}={run_id}".encode(),
        kill_grace=kill_grace,
        max_output_bytes=max_output_bytes,
        max_line_bytes=max_line_bytes,
        receive=receive,
    )
    # The body's exception is re-raised as itself after the nursery, not wrapped in a group.
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            async with send:
                nursery.start_soon(proc._pump, streams[0], "stdout", send.clone())
                nursery.start_soon(proc._pump, streams[1], "stderr", send.clone())
            nursery.start_soon(proc._supervise)
            try:
                yield proc
            except BaseException as exc:
                body_error = exc
            finally:
                with trio.CancelScope(shield=True):
                    await proc._terminate_tree()
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await proc._finish(streams)
    if body_error is not None:
        try:
            raise body_error
        finally:
            body_error = None  # no reference cycle through the traceback
