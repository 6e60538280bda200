"""Durable task state under ``STATE_PATH``: one JSON record per task and one NDJSON event log.

Layout::

    STATE_PATH/tasks/<id>.json            the task record, replaced atomically on every transition
    STATE_PATH/tasks/<id>.events.ndjson   the task's events, one per line, seq 1, 2, 3, …
    STATE_PATH/quarantine/                whatever recovery could not read, moved aside, never lost

Durability policy:

- A record is written to a temp file, fsync'd, renamed over the old one, and the directory is
  fsync'd: a reader (or a crash) sees the old record or the new one, never half of one.
- Output events are appended with ``write(2)`` by one flusher as soon as it can take them (in
  batches under load), so a killed server process loses none (they are in the page cache).
  Each log is fsync'd at most every ``FSYNC_INTERVAL_S`` while output flows, when output pauses,
  and always before a transition record is written: an acknowledged transition never refers to
  events that a power loss could take back.
- Blocking file I/O runs in ``trio.to_thread``; one lock orders all writes.

Visibility (what readers of :attr:`TaskStore.tasks`, :meth:`TaskStore.read_events` and
:meth:`TaskStore.last_seq` see, hence every tool result, resource and notification):

- A transition (:meth:`TaskStore.create`, :meth:`TaskStore.commit`) is computed from the
  published record under the task's own lock, written (its events appended and fsync'd, then the
  record replaced and fsync'd) and only then published. Until then readers see the old record.
- An event is visible once ``write(2)`` put it in the log file (the page cache: it survives a
  killed process, and an fsync follows within ``FSYNC_INTERVAL_S``); queued events are not.

Bounded memory: an event is capped when queued (its ``raw`` line at ``MAX_RAW_CHARS``, its data's
strings at a preview, see :func:`._files.cap_event`), a read takes at most ``READ_BUDGET_BYTES``
of a log (and at least one event), and recovery scans a log line by line.

A refusing disk (full, over quota, read-only, failing): every ``OSError`` of a state write is a
:class:`StateWriteError` naming the condition and the file, and sets :attr:`TaskStore.fault`
until writes succeed again. A refused create or transition raises it (nothing of it is written
or published); a log the flusher cannot append to loses its queued output and the runner is told
(:class:`OutputLost`) to end that run; a run's end is never lost: refused, it is published in
memory and written by :meth:`TaskStore.retry` (every ``RETRY_INTERVAL_S``) once the disk takes it.

Recovery (:meth:`TaskStore.load`, reading with :class:`._recovery.Recovery`): a record that does
not parse, a log line that does not parse, a log whose sequence breaks, or a log without a record
is moved into ``quarantine/`` with a warning naming it. A torn last log line (the write a crash
cut short) is cut back to the last whole line, the torn bytes kept in quarantine. A task found
``pending``, or running a run without a ``run_id`` (a record from before runs were detachable),
becomes ``interrupted`` (its pending permission requests are dropped: the daemon ended the
session with the connection). A detachable run (``run_id``) stays in flight: the daemon kept it,
and the runner re-attaches to it (:mod:`._reattach`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pathlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import trio

from ._files import (
    LOG_SUFFIX,
    RECORD_SUFFIX,
    Log,
    StateWriteError,
    Written,
    append_sync,
    cap_event,
    decode_event,
    decode_task,
    encode_event,
    encode_task,
    fsync_dir,
    read_range,
    writing,
)
from ._listener import Listener
from ._model import Clock, Task, TaskEvent, count_events, interrupt, next_event
from ._recovery import Recovery

__all__ = [
    "FSYNC_INTERVAL_S",
    "LOG_SUFFIX",
    "MAX_PENDING_EVENTS",
    "READ_BUDGET_BYTES",
    "RECORD_SUFFIX",
    "OutputLost",
    "StateWriteError",
    "StoreEvent",
    "TaskStore",
    "UnknownTask",
    "Visible",
    "decode_event",
    "decode_task",
    "encode_event",
    "encode_task",
]

log = logging.getLogger("mcp_server.tasks")

FSYNC_INTERVAL_S = 0.2
MAX_PENDING_EVENTS = 500
"""A task with this many events not yet written makes its producer wait (backpressure)."""
READ_BUDGET_BYTES = 1 << 20
"""One read of a log takes at most this many bytes of it (and at least one event)."""
RETRY_INTERVAL_S = 1.0
"""While the state disk refuses writes, records kept in memory are retried this often."""


class UnknownTask(LookupError):
    """No task with this id is in the store (it was never created, or was deleted)."""


@attrs.frozen
class Visible:
    """More of the task is visible to readers: events written, or a new record published."""

    task_id: str


@attrs.frozen
class OutputLost:
    """The disk refused the task's queued output (it is dropped); the run should end."""

    task_id: str
    reason: str


StoreEvent = Visible | OutputLost
"""What a store tells its :class:`Listener` (the runner that owns it)."""


Events = Callable[[Task], Iterable[Mapping[str, Any]]]
"""The events a transition logs, given the new record (``kind``, ``summary``, ``data``…)."""


def _no_events(task: Task) -> Iterable[Mapping[str, Any]]:
    return ()


class TaskStore:
    """The durable tasks, written through to ``root`` (see the module docstring)."""

    def __init__(
        self,
        root: pathlib.Path,
        listener: Listener[StoreEvent] | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.root = root
        self._listener = listener
        """Told when more of a task is visible, and when a task's output was lost."""
        self.clock = clock or Clock()
        """The time of every record and event (the runner uses it too)."""
        self._created = 0
        """The last creation sequence number given out (tasks list in this order)."""
        self.tasks_dir = root / "tasks"
        self.quarantine_dir = root / "quarantine"
        self.tasks: dict[str, Task] = {}
        """The published records: each one durable (written and fsync'd) before it is here."""
        self._logs: dict[str, Log] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._io_lock = trio.Lock()
        self._wakeup = trio.Event()
        self._drained = trio.Event()
        self.quarantined: list[pathlib.Path] = []
        self.fault: StateWriteError | None = None
        """Why the state disk refused the last write, until writes succeed again."""
        self._unsaved: set[str] = set()
        """Tasks whose published record waits in memory for the disk (retried)."""
        self._last_retry = 0.0

    # -- loading and recovery -------------------------------------------------------------

    async def load(self) -> list[Task]:
        """Read every task back, quarantining what cannot be read; returns the tasks loaded."""
        recovery = Recovery(self.tasks_dir, self.quarantine_dir)
        async with self._io_lock:
            loaded = await trio.to_thread.run_sync(recovery.run)
        self._logs.update(recovery.logs)
        self.quarantined.extend(recovery.quarantined)
        for task_id, task in loaded.items():
            if task.status == "pending" or (task.running and not task.reattachable):
                log.warning(
                    "task %s was %s when the server stopped: now interrupted", task_id, task.status
                )
                async with self._lock(task_id):
                    await self._write(
                        self._logs[task_id],
                        interrupt(task, self.clock.wall()),
                        _no_events,
                        defer=True,
                    )
            else:
                self.tasks[task_id] = task
        self._created = max((task.seq for task in loaded.values()), default=0)
        return list(self.tasks.values())

    # -- records --------------------------------------------------------------------------

    def _lock(self, task_id: str) -> trio.Lock:
        return self._locks.setdefault(task_id, trio.Lock())

    async def create(self, task: Task, events: Events = _no_events) -> Task:
        """Write a new task (and its first events) through, then publish it; returns it.

        The task gets the next creation sequence number (a failed create leaves a gap). Raises
        :class:`StateWriteError` when the state disk refuses it (nothing of it stays behind).
        """
        if task.id in self._logs:
            raise ValueError(f"task {task.id} exists")
        self._created += 1
        task = attrs.evolve(task, seq=self._created)
        state = Log(path=self.tasks_dir / (task.id + LOG_SUFFIX))
        self._logs[task.id] = state
        try:
            async with self._lock(task.id):
                return await self._write(state, task, events)
        except StateWriteError:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._discard_sync, task.id)
            raise
        finally:
            if task.id not in self.tasks and self._logs.get(task.id) is state:
                del self._logs[task.id]
                self._locks.pop(task.id, None)

    def _discard_sync(self, task_id: str) -> None:
        """Remove what a refused create may have left (an empty log); best effort."""
        for suffix in (LOG_SUFFIX, RECORD_SUFFIX + ".tmp"):
            with contextlib.suppress(OSError):
                (self.tasks_dir / (task_id + suffix)).unlink(missing_ok=True)

    async def commit(
        self,
        task_id: str,
        change: Callable[[Task], Task],
        events: Events = _no_events,
        *,
        defer: bool = False,
    ) -> Task:
        """Apply a transition durably: compute it from the published record under the task's
        lock, write it (and its events) through, then publish it; returns the new record.

        Raises :class:`UnknownTask`, what ``change`` raises (nothing is written then), or
        :class:`StateWriteError` when the disk refuses it. With ``defer`` (a run's end, which
        must not be lost) a refused transition is published anyway, kept in memory with its
        events, and written as soon as the disk takes it (see :meth:`retry`).
        """
        async with self._lock(task_id):
            current = self.tasks.get(task_id)
            state = self._logs.get(task_id)
            if current is None or state is None:
                raise UnknownTask(task_id)
            return await self._write(state, change(current), events, defer=defer)

    async def save(self, task_id: str) -> None:
        """Write the task's queued events through (fsync'd) with its record, event count updated."""
        try:
            await self.commit(task_id, lambda task: task)
        except UnknownTask:
            return

    async def _write(self, state: Log, task: Task, events: Events, *, defer: bool = False) -> Task:
        """Write ``task`` and its events (after those queued) through; publish it if still ours."""
        async with self._io_lock:
            own = [
                next_event(state.last_seq + n, now=self.clock.wall(), **f)
                for n, f in enumerate(events(task))
            ]
            state.pending.extend(own)
            task = count_events(task, state.last_seq)
            batch = list(state.pending)
            try:
                written = await trio.to_thread.run_sync(
                    self._save_sync, task.id, state.path, state.size, batch, encode_task(task)
                )
            except StateWriteError as error:
                self._refused(error)
                if not defer:
                    self._unqueue(state, own)
                    raise
                log.warning(
                    "task %s: %s; its %s record is kept in memory until the disk takes it",
                    task.id,
                    error,
                    task.status,
                )
                if self._logs.get(task.id) is state:
                    self.tasks[task.id] = task
                    self._unsaved.add(task.id)
            except BaseException:
                self._unqueue(state, own)
                raise
            else:
                self._written(state, batch, written)
                if self._logs.get(task.id) is state:
                    self.tasks[task.id] = task
                self._unsaved.discard(task.id)
                self._accepted()
            self._drained.set()
            self._drained = trio.Event()
        if self._listener is not None and self._logs.get(task.id) is state:
            self._listener(Visible(task.id))
        return task

    @staticmethod
    def _unqueue(state: Log, own: list[TaskEvent]) -> None:
        """The transition is not recorded: neither are its events, unless output queued after
        them already follows them (the log's seqs must stay contiguous)."""
        if own and state.pending[-len(own) :] == own:
            del state.pending[-len(own) :]

    def _save_sync(
        self, task_id: str, log_path: pathlib.Path, size: int, batch: list[TaskEvent], data: bytes
    ) -> Written:
        written = append_sync(log_path, size, batch, fsync=True, unsynced=True)
        path = self.tasks_dir / (task_id + RECORD_SUFFIX)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with writing(tmp), tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            with writing(path):
                os.replace(tmp, path)
                fsync_dir(self.tasks_dir)
        except StateWriteError:
            # Unrecorded, the batch is still queued: take it back out of the log so the next
            # write does not repeat its seqs.
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
                if batch:
                    os.truncate(log_path, size)
            raise
        return written

    @staticmethod
    def _written(state: Log, batch: list[TaskEvent], written: Written) -> None:
        if batch:
            del state.pending[: len(batch)]
            state.offsets.extend(written.offsets)
            state.size = written.size
            state.written = batch[-1].seq
            state.unsynced = True
        if written.fsynced:
            state.unsynced = False
            state.last_fsync = time.monotonic()

    # -- a refusing disk ------------------------------------------------------------------

    def _refused(self, error: StateWriteError) -> None:
        if self.fault is None:
            log.error("the state disk refuses writes: %s", error)
        self.fault = error
        self._wakeup.set()  # an idle flusher starts retrying

    def _accepted(self) -> None:
        """A write went through: the fault is over once no record waits in memory."""
        if self.fault is not None and not self._unsaved:
            log.warning("the state disk takes writes again (was: %s)", self.fault)
            self.fault = None

    async def retry(self, *, probe: bool = False) -> None:
        """Write the records kept in memory while the disk refused them; then, with none left
        waiting, probe the disk (if it refused before, or with ``probe``), so :attr:`fault`
        says whether it takes writes now."""
        self._last_retry = time.monotonic()
        for task_id in list(self._unsaved):
            try:
                await self.commit(task_id, lambda task: task)
            except UnknownTask:
                self._unsaved.discard(task_id)
            except StateWriteError:
                return
        if self._unsaved or not (probe or self.fault is not None):
            return
        async with self._io_lock:
            try:
                await trio.to_thread.run_sync(self._probe_sync)
            except StateWriteError as error:
                self._refused(error)
            else:
                self._accepted()

    def _probe_sync(self) -> None:
        probe = self.root / ".write-probe"
        try:
            with writing(probe), probe.open("wb") as handle:
                handle.write(b"\0" * 4096)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def unsaved(self) -> int:
        """How many published records wait in memory for the disk."""
        return len(self._unsaved)

    async def delete(self, task_id: str) -> None:
        """Forget a task at once (before any checkpoint), then remove its files."""
        self.tasks.pop(task_id, None)
        self._logs.pop(task_id, None)
        self._locks.pop(task_id, None)
        self._unsaved.discard(task_id)
        async with self._io_lock:
            await trio.to_thread.run_sync(self._delete_sync, task_id)

    def _delete_sync(self, task_id: str) -> None:
        for suffix in (RECORD_SUFFIX, LOG_SUFFIX):
            path = self.tasks_dir / (task_id + suffix)
            with writing(path):
                path.unlink(missing_ok=True)
        with writing(self.tasks_dir):
            fsync_dir(self.tasks_dir)

    # -- events ---------------------------------------------------------------------------

    def append_event(self, task_id: str, **fields: Any) -> TaskEvent:
        """Give the next event of a task its seq and queue it (capped) for the flusher."""
        state = self._logs[task_id]
        event = cap_event(next_event(state.last_seq, now=self.clock.wall(), **fields))
        state.pending.append(event)
        self._wakeup.set()
        return event

    def last_seq(self, task_id: str) -> int:
        """The seq of the task's latest visible (written) event."""
        return self._logs[task_id].written

    async def flush(self, *, force_fsync: bool = False) -> None:
        """Write every queued event; fsync per the policy (or now, with ``force_fsync``).

        A log the disk refuses loses its queued output (never shown to anyone, and the disk
        may stay full for long): an :class:`OutputLost` tells the runner, which ends the run.
        Tasks whose record waits in memory are left to :meth:`retry`.
        """
        failed: list[tuple[str, str]] = []
        async with self._io_lock:
            now = time.monotonic()
            work = []
            for task_id, state in self._logs.items():
                if task_id in self._unsaved:
                    continue
                if state.pending or (state.unsynced and force_fsync):
                    fsync = force_fsync or now - state.last_fsync >= FSYNC_INTERVAL_S
                    work.append((task_id, state, list(state.pending), fsync))
            if not work:
                return
            results = await trio.to_thread.run_sync(self._flush_sync, work)
            failed = self._flushed(work, results)
            self._drained.set()
            self._drained = trio.Event()
        if self._listener is None:
            return
        for task_id, reason in failed:
            if task_id in self._logs:
                self._listener(OutputLost(task_id, reason))
        for task_id, state, batch, _ in work:
            if batch and self._logs.get(task_id) is state and state.written >= batch[-1].seq:
                self._listener(Visible(task_id))

    def _flushed(
        self,
        work: list[tuple[str, Log, list[TaskEvent], bool]],
        results: list[Written | StateWriteError],
    ) -> list[tuple[str, str]]:
        """Account for a flush; returns the (task id, reason) of each log the disk refused."""
        failed: list[tuple[str, str]] = []
        for (task_id, state, batch, _), written in zip(work, results, strict=True):
            if isinstance(written, StateWriteError):
                self._refused(written)
                reason = f"{written} ({len(state.pending)} output events not stored)"
                log.error("task %s: %s", task_id, reason)
                state.pending.clear()
                failed.append((task_id, reason))
            else:
                self._written(state, batch, written)
        if not failed and any(batch for _, _, batch, _ in work):
            self._accepted()
        return failed

    async def backpressure(self, task_id: str) -> None:
        """Wait while the task has ``MAX_PENDING_EVENTS`` events queued.

        Memory stays bounded: a fast agent is slowed down instead (through the daemon's
        backpressure, down to its pipe).
        """
        state = self._logs.get(task_id)
        while state is not None and len(state.pending) >= MAX_PENDING_EVENTS:
            await self._drained.wait()

    @staticmethod
    def _flush_sync(
        work: list[tuple[str, Log, list[TaskEvent], bool]],
    ) -> list[Written | StateWriteError]:
        results: list[Written | StateWriteError] = []
        for _, state, batch, fsync in work:
            try:
                results.append(append_sync(state.path, state.size, batch, fsync, state.unsynced))
            except StateWriteError as error:
                results.append(error)
        return results

    async def run_flusher(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Write queued events as they come; fsync when output pauses. Flushes once more at exit.

        Idle (nothing queued, nothing unsynced) it sleeps until the next event is queued. While
        the disk refuses writes it retries every ``RETRY_INTERVAL_S`` (:meth:`retry`).
        """
        task_status.started()
        try:
            while True:
                if self.fault is not None:
                    timeout = RETRY_INTERVAL_S
                elif any(state.unsynced for state in self._logs.values()):
                    timeout = FSYNC_INTERVAL_S
                else:
                    timeout = math.inf
                with trio.move_on_after(timeout):
                    await self._wakeup.wait()
                if self._wakeup.is_set():
                    self._wakeup = trio.Event()
                    await self.flush()
                else:
                    await self.flush(force_fsync=True)
                if (
                    self.fault is not None
                    and time.monotonic() - self._last_retry >= RETRY_INTERVAL_S
                ):
                    await self.retry()
        finally:
            with trio.CancelScope(shield=True):
                await self.flush(force_fsync=True)

    async def read_events(
        self, task_id: str, after: int, limit: int, max_bytes: int = READ_BUDGET_BYTES
    ) -> list[TaskEvent]:
        """Visible events with ``seq > after``: at most ``limit``, and at most ``max_bytes`` of
        the log unless the first event alone is longer (queued events are not visible yet)."""
        state = self._logs[task_id]
        if after >= state.written:
            return []
        start = state.offsets[after]
        last = after + 1
        stop = min(after + limit, state.written)
        while last < stop and state.end_of(last + 1) - start <= max_bytes:
            last += 1
        data = await trio.to_thread.run_sync(read_range, state.path, start, state.end_of(last))
        return [decode_event(line) for line in data.splitlines()]
