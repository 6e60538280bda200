"""Process groups that really die: spawn a run, stream its output with backpressure, end it whole.

A run is spawned in its own session (so its process group id is the leader's pid) with stdin on
``/dev/null`` (or a pipe the daemon writes to: a live session) and two pipes for its output.
Leaving :func:`spawn_group` for any reason terminates every process of the run (SIGTERM, a grace
period, then SIGKILL) and reaps it, shielded.

Finding every process of the run and ending them is :mod:`._tree`'s part; cutting the output
into lines within a byte budget is :mod:`._output`'s.

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

import errno
import logging
import os
import secrets
import signal
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Literal

import attrs
import trio

from ._output import (
    DEFAULT_MAX_LINE_BYTES,
    LINE_OVERHEAD,
    OUTPUT_BUFFER_BYTES,
    ByteBudget,
    LineSplitter,
    OutputLine,
    output_limit_marker,
)
from ._proc import read_stat
from ._tree import PR_SET_PDEATHSIG, RUN_LEADERS, RunTree, prctl

__all__ = [
    "RUN_MARKER_ENV",
    "ExitStatus",
    "GroupProcess",
    "StdinClosed",
    "spawn_group",
]

logger = logging.getLogger(__name__)

RUN_MARKER_ENV = "CODING_AGENT_RUN_ID"

_READ_CHUNK = 64 * 1024
_REAP_WAIT = 5.0


@attrs.frozen
class ExitStatus:
    """How the leader ended: an exit code, or the signal that killed it."""

    exit_code: int | None
    signal: int | None


class StdinClosed(Exception):
    """The group's stdin cannot take more: closed by us, or the agent closed its end (exited)."""


def _child_setup(parent_pid: int) -> Callable[[], None]:
    term = int(signal.SIGTERM)

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, term, 0, 0, 0)
        # The parent may have died before prctl took effect: then no signal would ever come.
        if os.getppid() != parent_pid:
            os._exit(128 + term)

    return setup


def _cost(line: OutputLine) -> int:
    return len(line.data) + LINE_OVERHEAD


class GroupProcess:
    """A running process group: its output lines (async iteration), its exit, its end."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        pidfd: int,
        tree: RunTree,
        *,
        max_output_bytes: int | None,
        max_line_bytes: int,
        receive: trio.MemoryReceiveChannel[list[OutputLine]],
        stdin: trio.lowlevel.FdStream | None = None,
    ) -> None:
        self._popen = popen
        self._stdin = stdin
        self._stdin_lock = trio.Lock()
        self._pidfd = pidfd
        self._tree = tree
        self._max_line_bytes = max_line_bytes
        self._max_output_bytes = max_output_bytes
        self._output_left = max_output_bytes
        self._receive = receive
        self._pending: deque[OutputLine] = deque()
        self._budget = ByteBudget(OUTPUT_BUFFER_BYTES)
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
        size = sum([len(line.data) for line in pending]) + LINE_OVERHEAD * len(pending)
        if size <= max_bytes:  # the common case: take everything
            batch = list(pending)
            pending.clear()
        else:
            batch = [pending.popleft()]
            size = len(batch[0].data) + LINE_OVERHEAD
            while pending and size + (cost := len(pending[0].data) + LINE_OVERHEAD) <= max_bytes:
                batch.append(pending.popleft())
                size += cost
        self._budget.release(size)
        return batch

    async def write_stdin(self, data: bytes) -> None:
        """Write ``data`` to the group's stdin, waiting while the pipe is full (backpressure).

        Raises ``StdinClosed`` when the group has no stdin pipe, it was closed, or the agent
        closed its end (it exited); writes are serialized, so lines never interleave.
        """
        if self._stdin is None:
            raise StdinClosed("this process group has no stdin pipe (spawned without stdin)")
        async with self._stdin_lock:
            try:
                await self._stdin.send_all(data)
            except trio.ClosedResourceError:
                raise StdinClosed("the agent's stdin was closed by the daemon") from None
            except trio.BrokenResourceError as exc:
                raise StdinClosed(f"the agent closed its stdin (it exited?): {exc}") from None

    async def close_stdin(self) -> None:
        """Close the group's stdin (the agent reads end of file); idempotent."""
        if self._stdin is not None:
            with trio.CancelScope(shield=True):
                await self._stdin.aclose()

    async def wait(self) -> ExitStatus:
        """Wait for the leader to exit and say how (the group may still be ending)."""
        await self._exited.wait()
        assert self._status is not None  # noqa: S101 -- set before the event
        return self._status

    async def terminate(self) -> None:
        """End every process of the run (SIGTERM, grace, SIGKILL); return when none runs."""
        await self._tree.terminate()

    # -- output ------------------------------------------------------------------------------

    async def _pump(
        self,
        stream: trio.lowlevel.FdStream,
        name: Literal["stdout", "stderr"],
        send: trio.MemorySendChannel[list[OutputLine]],
    ) -> None:
        async with send:
            splitter = LineSplitter(self._max_line_bytes)
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
        cost = sum([len(line.data) for line in batch]) + LINE_OVERHEAD * len(batch)
        await self._budget.acquire(cost)
        try:
            send.send_nowait(batch)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._budget.release(cost)

    # -- the leader and the tree -------------------------------------------------------------

    async def _supervise(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._tree.track_forever)
            await trio.lowlevel.wait_readable(self._pidfd)
            self._record_status()
            nursery.cancel_scope.cancel()
        # The leader is gone: stragglers would otherwise hold the pipes open forever.
        await self._tree.terminate()

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

    async def _finish(self, streams: Sequence[trio.lowlevel.FdStream]) -> None:
        """Shielded end: the tree once more, then close everything and reap the leader last."""
        await self._tree.terminate()
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
        RUN_LEADERS.discard(self.pid)
        self._tree.reap_orphans()


def _spawn(
    argv: list[str],
    cwd: str | int,
    env: dict[str, str],
    owner: tuple[int, int] | None = None,
    *,
    stdin: bool = False,
) -> tuple[subprocess.Popen[bytes], int, int, int | None]:
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    in_read, in_write = os.pipe2(os.O_CLOEXEC) if stdin else (None, None)
    try:
        popen = subprocess.Popen(
            argv,
            # The child changes directory before it closes descriptors, and the magic link
            # leads to the directory the descriptor holds, not to whatever has its name now.
            cwd=cwd if isinstance(cwd, str) else f"/proc/self/fd/{cwd}",
            env=env,
            stdin=subprocess.DEVNULL if in_read is None else in_read,
            stdout=out_write,
            stderr=err_write,
            start_new_session=True,
            close_fds=True,
            preexec_fn=_child_setup(os.getpid()),  # noqa: PLW1509 -- prctl only; see module doc
            user=None if owner is None else owner[0],
            group=None if owner is None else owner[1],
            extra_groups=None if owner is None else [],
        )
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        if in_write is not None:
            os.close(in_write)
        raise
    finally:
        os.close(out_write)
        os.close(err_write)
        if in_read is not None:
            os.close(in_read)
    RUN_LEADERS.add(popen.pid)
    return popen, out_read, err_read, in_write


def _check_arguments(
    argv: Sequence[str], max_output_bytes: int | None, max_line_bytes: int
) -> None:
    if isinstance(argv, str | bytes) or not argv:
        raise TypeError("argv must be a non-empty sequence of strings, never a shell string")
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be positive")
    if max_output_bytes is not None and max_output_bytes < 0:
        raise ValueError("max_output_bytes must not be negative")


@asynccontextmanager
async def spawn_group(
    argv: Sequence[str],
    *,
    cwd: str | int,
    env: Mapping[str, str] | None = None,
    kill_grace: float = 5.0,
    max_output_bytes: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    owner: tuple[int, int] | None = None,
    stdin: bool = False,
) -> AsyncIterator[GroupProcess]:
    """Run ``argv`` in a new session and process group; end the whole run when the block ends.

    ``cwd`` is a path, or a descriptor of a directory (``O_PATH`` will do) that the child starts
    in, whatever has its name by then. ``env`` defaults to the daemon's own environment; the
    run's marker variable is added either way. Output is read as lines (async-iterate the
    yielded :class:`GroupProcess`): a reader that stops pulling stops the pumps once
    :data:`OUTPUT_BUFFER_BYTES` are waiting, and then the child blocks on its pipe. Leaving the
    block (normally, by exception or by cancellation) terminates and reaps every process of the
    run before it returns. ``owner`` (uid, gid) runs the child as that user, with no
    supplementary groups (a root daemon running git as a repository's owner). ``stdin`` gives
    the group a stdin pipe (``GroupProcess.write_stdin``/``close_stdin``) instead of
    ``/dev/null``: a live agent reads its prompts and answers there.
    """
    _check_arguments(argv, max_output_bytes, max_line_bytes)
    run_id = secrets.token_hex(16)
    child_env = dict(os.environ if env is None else env)
    child_env[RUN_MARKER_ENV] = run_id
    popen, out_fd, err_fd, in_fd = _spawn(list(argv), cwd, child_env, owner, stdin=stdin)
    streams = [trio.lowlevel.FdStream(fd) for fd in (out_fd, err_fd, in_fd) if fd is not None]
    stdin_stream = None if in_fd is None else streams[2]
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError as exc:  # pragma: no cover -- kernels without pidfds are not supported
        popen.kill()
        popen.wait()
        RUN_LEADERS.discard(popen.pid)
        raise OSError(errno.ENOSYS, "pidfd_open is required (Linux 5.3+)") from exc
    leader = read_stat(popen.pid)
    start_time = leader.start_time if leader is not None else 0
    # Unbounded in items, bounded in bytes: the pumps wait on the byte budget before sending.
    send, receive = trio.open_memory_channel[list[OutputLine]](float("inf"))
    marker = f"{RUN_MARKER_ENV}={run_id}".encode()
    proc = GroupProcess(
        popen,
        pidfd,
        RunTree(popen.pid, start_time, marker, kill_grace=kill_grace),
        max_output_bytes=max_output_bytes,
        max_line_bytes=max_line_bytes,
        receive=receive,
        stdin=stdin_stream,
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
                    await proc.terminate()
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await proc._finish(streams)
    if body_error is not None:
        try:
            raise body_error
        finally:
            body_error = None  # no reference cycle through the traceback
