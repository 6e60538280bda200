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

Recovery (:meth:`TaskStore.load`): a record that does not parse, a log line that does not parse,
a log whose sequence breaks, or a log without a record is moved into ``quarantine/`` with a
warning naming it. A torn last log line (the write a crash cut short) is cut back to the last
whole line, the torn bytes kept in quarantine. A task found ``pending`` or ``in_progress`` becomes
``interrupted``.
"""

from __future__ import annotations

import array
import datetime
import logging
import math
import os
import pathlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import cattrs
import orjson
import trio
from cattrs.preconf.json import make_converter

from ._model import Clock, Task, TaskEvent, count_events, interrupt, next_event, utcnow

log = logging.getLogger("mcp_server.tasks")

FSYNC_INTERVAL_S = 0.2
MAX_PENDING_EVENTS = 500
"""A task with this many events not yet written makes its producer wait (backpressure)."""
RECORD_SUFFIX = ".json"
LOG_SUFFIX = ".events.ndjson"


def _strict(kind: type) -> Callable[[Any, type], Any]:
    def structure(value: Any, _: type) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def _structure_float(value: Any, _: type) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise TypeError(f"expected number, got {type(value).__name__}")
    return float(value)


def register_strict_scalars(converter: cattrs.Converter) -> None:
    """Scalars exactly as typed: ``"false"`` is no bool, ``3.7`` no int, ``5`` no str.

    Shared by the tool-argument and the state-file converters (one converter per boundary).
    """
    for kind in (str, int, bool):
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook(float, _structure_float)


def _structure_datetime(value: Any, _: type) -> datetime.datetime:
    if type(value) is not str:
        raise TypeError(f"expected datetime string, got {type(value).__name__}")
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got {value!r}")
    return parsed


def make_store_converter() -> cattrs.Converter:
    """The one converter of the state-file boundary: strict, no extra keys."""
    converter = make_converter(forbid_extra_keys=True)
    register_strict_scalars(converter)
    converter.register_structure_hook(datetime.datetime, _structure_datetime)
    converter.register_unstructure_hook(datetime.datetime, lambda d: d.isoformat())
    return converter


CONVERTER = make_store_converter()


def describe_error(exc: BaseException) -> str:
    """One line per problem, like ``expected int, got str @ $.event_count``."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, path="$"))
    return str(exc) or type(exc).__name__


def encode_task(task: Task) -> bytes:
    return orjson.dumps(CONVERTER.unstructure(task), option=orjson.OPT_INDENT_2)


def decode_task(data: bytes) -> Task:
    return CONVERTER.structure(orjson.loads(data), Task)


def encode_event(event: TaskEvent) -> bytes:
    return orjson.dumps(CONVERTER.unstructure(event)) + b"\n"


def decode_event(line: bytes) -> TaskEvent:
    return CONVERTER.structure(orjson.loads(line), TaskEvent)


def _decode_record(data: bytes, task_id: str) -> Task:
    task = decode_task(data)
    if task.id != task_id:
        raise ValueError(f"the record names task {task.id}")
    return task


def _decode_line(line: bytes, expected_seq: int) -> TaskEvent:
    event = decode_event(line)
    if event.seq != expected_seq:
        raise ValueError(f"expected seq {expected_seq}, got {event.seq}")
    return event


@attrs.define
class _Log:
    """A task's log as the store tracks it: what is on disk and what waits to be written.

    Only trio code mutates it (worker threads get copies and return what they did), so a reader
    always sees a consistent prefix on disk followed by the events still pending.
    """

    path: pathlib.Path
    written: int = 0  # the last seq on disk
    # offsets[i] = where event seq i+1 starts; an array: 8 bytes per event, not an int object
    offsets: array.array[int] = attrs.field(factory=lambda: array.array("q"))
    size: int = 0
    pending: list[TaskEvent] = attrs.field(factory=list)  # includes a batch being written
    unsynced: bool = False
    last_fsync: float = 0.0

    @property
    def last_seq(self) -> int:
        return self.pending[-1].seq if self.pending else self.written


@attrs.frozen
class _Written:
    """What a worker thread appended to one log."""

    offsets: list[int]
    size: int
    fsynced: bool


def _append_sync(
    path: pathlib.Path, size: int, batch: list[TaskEvent], fsync: bool, unsynced: bool
) -> _Written:
    offsets: list[int] = []
    if not batch and not (fsync and unsynced):
        return _Written(offsets, size, fsynced=False)
    with path.open("ab") as handle:
        if batch:
            chunks = []
            for event in batch:
                line = encode_event(event)
                offsets.append(size)
                size += len(line)
                chunks.append(line)
            handle.write(b"".join(chunks))
            handle.flush()
        if fsync:
            os.fsync(handle.fileno())
    return _Written(offsets, size, fsynced=fsync)


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class UnknownTask(LookupError):
    """No task with this id is in the store (it was never created, or was deleted)."""


Events = Callable[[Task], Iterable[Mapping[str, Any]]]
"""The events a transition logs, given the new record (``kind``, ``summary``, ``data``…)."""


def _no_events(task: Task) -> Iterable[Mapping[str, Any]]:
    return ()


class TaskStore:
    """The durable tasks, written through to ``root`` (see the module docstring)."""

    def __init__(self, root: pathlib.Path, *, clock: Clock | None = None) -> None:
        self.root = root
        self.clock = clock or Clock()
        """The time of every record and event (the runner uses it too)."""
        self._created = 0
        """The last creation sequence number given out (tasks list in this order)."""
        self.tasks_dir = root / "tasks"
        self.quarantine_dir = root / "quarantine"
        self.tasks: dict[str, Task] = {}
        """The published records: each one durable (written and fsync'd) before it is here."""
        self._logs: dict[str, _Log] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._io_lock = trio.Lock()
        self.on_written: Callable[[str], None] | None = None
        """Called with a task's id once more of it is visible (events written, a record)."""
        self._wakeup = trio.Event()
        self._drained = trio.Event()
        self.quarantined: list[pathlib.Path] = []

    # -- loading and recovery -------------------------------------------------------------

    async def load(self) -> list[Task]:
        """Read every task back, quarantining what cannot be read; returns the tasks loaded."""
        async with self._io_lock:
            loaded = await trio.to_thread.run_sync(self._load_sync)
        for task_id, task in loaded.items():
            if task.status in ("pending", "in_progress"):
                log.warning(
                    "task %s was %s when the server stopped: now interrupted", task_id, task.status
                )
                async with self._lock(task_id):
                    await self._write(
                        self._logs[task_id], interrupt(task, self.clock.wall()), _no_events
                    )
            else:
                self.tasks[task_id] = task
        self._created = max((task.seq for task in loaded.values()), default=0)
        return list(self.tasks.values())

    def _quarantine(self, path: pathlib.Path, why: str) -> pathlib.Path:
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        target = self.quarantine_dir / f"{path.name}.{stamp}"
        os.replace(path, target)
        _fsync_dir(self.quarantine_dir)
        _fsync_dir(path.parent)
        log.warning("quarantined %s: %s (moved to %s)", path, why, target)
        self.quarantined.append(target)
        return target

    def _load_sync(self) -> dict[str, Task]:
        loaded: dict[str, Task] = {}
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        for leftover in sorted(self.tasks_dir.glob("*.tmp")):
            log.warning("removing %s: an unfinished write (the old record stands)", leftover)
            leftover.unlink()
        for path in sorted(self.tasks_dir.glob("*" + RECORD_SUFFIX)):
            task_id = path.name.removesuffix(RECORD_SUFFIX)
            try:
                task = _decode_record(path.read_bytes(), task_id)
            except Exception as exc:
                self._quarantine(path, f"unreadable task record: {describe_error(exc)}")
                log_path = self.tasks_dir / (task_id + LOG_SUFFIX)
                if log_path.exists():
                    self._quarantine(log_path, "event log of an unreadable task record")
                continue
            self._logs[task_id] = self._load_log(task_id)
            count = self._logs[task_id].last_seq
            loaded[task_id] = (
                task if count == task.event_count else attrs.evolve(task, event_count=count)
            )
        for path in sorted(self.tasks_dir.glob("*" + LOG_SUFFIX)):
            if path.name.removesuffix(LOG_SUFFIX) not in loaded:
                self._quarantine(path, "event log without a task record")
        return loaded

    def _load_log(self, task_id: str) -> _Log:
        path = self.tasks_dir / (task_id + LOG_SUFFIX)
        state = _Log(path=path)
        if not path.exists():
            return state
        data = path.read_bytes()
        offset = 0
        good_end = 0
        problem: str | None = None
        while offset < len(data):
            newline = data.find(b"\n", offset)
            if newline < 0:
                problem = "torn"
                break
            try:
                event = _decode_line(data[offset:newline], state.written + 1)
            except Exception as exc:
                problem = f"line {state.written + 1}: {describe_error(exc)}"
                break
            state.offsets.append(offset)
            state.written = event.seq
            offset = newline + 1
            good_end = offset
        if problem is None:
            state.size = len(data)
            return state
        if problem == "torn":
            torn = path.with_name(path.name + ".torn")
            torn.write_bytes(data[good_end:])
            self._quarantine(torn, f"torn last line of {path.name} ({len(data) - good_end} bytes)")
        else:
            kept = path.with_name(path.name + ".tmp-kept")
            kept.write_bytes(data[:good_end])
            why = f"corrupt event log at {problem}; events 1..{state.written} kept"
            self._quarantine(path, why)
            os.replace(kept, path)
        with path.open("r+b") as handle:
            handle.truncate(good_end)
            os.fsync(handle.fileno())
        _fsync_dir(path.parent)
        state.size = good_end
        return state

    # -- records --------------------------------------------------------------------------

    def _lock(self, task_id: str) -> trio.Lock:
        return self._locks.setdefault(task_id, trio.Lock())

    async def create(self, task: Task, events: Events = _no_events) -> Task:
        """Write a new task (and its first events) through, then publish it; returns it.

        The task gets the next creation sequence number (a failed create leaves a gap).
        """
        if task.id in self._logs:
            raise ValueError(f"task {task.id} exists")
        self._created += 1
        task = attrs.evolve(task, seq=self._created)
        state = _Log(path=self.tasks_dir / (task.id + LOG_SUFFIX))
        self._logs[task.id] = state
        try:
            async with self._lock(task.id):
                return await self._write(state, task, events)
        finally:
            if task.id not in self.tasks and self._logs.get(task.id) is state:
                del self._logs[task.id]
                self._locks.pop(task.id, None)

    async def commit(
        self, task_id: str, change: Callable[[Task], Task], events: Events = _no_events
    ) -> Task:
        """Apply a transition durably: compute it from the published record under the task's
        lock, write it (and its events) through, then publish it; returns the new record.

        Raises :class:`UnknownTask`, or what ``change`` raises (nothing is written then).
        """
        async with self._lock(task_id):
            current = self.tasks.get(task_id)
            state = self._logs.get(task_id)
            if current is None or state is None:
                raise UnknownTask(task_id)
            return await self._write(state, change(current), events)

    async def save(self, task_id: str) -> None:
        """Write the task's queued events through (fsync'd) with its record, event count updated."""
        try:
            await self.commit(task_id, lambda task: task)
        except UnknownTask:
            return

    async def _write(self, state: _Log, task: Task, events: Events) -> Task:
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
            except BaseException:
                # The transition is not recorded: neither are its events, unless output queued
                # after them already follows them (the log's seqs must stay contiguous).
                if own and state.pending[-len(own) :] == own:
                    del state.pending[-len(own) :]
                raise
            self._written(state, batch, written)
            if self._logs.get(task.id) is state:
                self.tasks[task.id] = task
            self._drained.set()
            self._drained = trio.Event()
        if self.on_written is not None and self._logs.get(task.id) is state:
            self.on_written(task.id)
        return task

    def _save_sync(
        self, task_id: str, log_path: pathlib.Path, size: int, batch: list[TaskEvent], data: bytes
    ) -> _Written:
        written = _append_sync(log_path, size, batch, fsync=True, unsynced=True)
        path = self.tasks_dir / (task_id + RECORD_SUFFIX)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            _fsync_dir(self.tasks_dir)
        except OSError:
            # Unrecorded, the batch is still queued: take it back out of the log so the next
            # write does not repeat its seqs.
            if batch:
                os.truncate(log_path, size)
            raise
        return written

    @staticmethod
    def _written(state: _Log, batch: list[TaskEvent], written: _Written) -> None:
        if batch:
            del state.pending[: len(batch)]
            state.offsets.extend(written.offsets)
            state.size = written.size
            state.written = batch[-1].seq
            state.unsynced = True
        if written.fsynced:
            state.unsynced = False
            state.last_fsync = time.monotonic()

    async def delete(self, task_id: str) -> None:
        """Forget a task at once (before any checkpoint), then remove its files."""
        self.tasks.pop(task_id, None)
        self._logs.pop(task_id, None)
        self._locks.pop(task_id, None)
        async with self._io_lock:
            await trio.to_thread.run_sync(self._delete_sync, task_id)

    def _delete_sync(self, task_id: str) -> None:
        for suffix in (RECORD_SUFFIX, LOG_SUFFIX):
            (self.tasks_dir / (task_id + suffix)).unlink(missing_ok=True)
        _fsync_dir(self.tasks_dir)

    # -- events ---------------------------------------------------------------------------

    def append_event(self, task_id: str, **fields: Any) -> TaskEvent:
        """Give the next event of a task its seq and queue it for the flusher."""
        state = self._logs[task_id]
        event = next_event(state.last_seq, now=self.clock.wall(), **fields)
        state.pending.append(event)
        self._wakeup.set()
        return event

    def last_seq(self, task_id: str) -> int:
        """The seq of the task's latest visible (written) event."""
        return self._logs[task_id].written

    async def flush(self, *, force_fsync: bool = False) -> None:
        """Write every queued event; fsync per the policy (or now, with ``force_fsync``)."""
        async with self._io_lock:
            now = time.monotonic()
            work = []
            for task_id, state in self._logs.items():
                if state.pending or (state.unsynced and force_fsync):
                    fsync = force_fsync or now - state.last_fsync >= FSYNC_INTERVAL_S
                    work.append((task_id, state, list(state.pending), fsync))
            if not work:
                return
            results = await trio.to_thread.run_sync(self._flush_sync, work)
            for (_, state, batch, _), written in zip(work, results, strict=True):
                self._written(state, batch, written)
            self._drained.set()
            self._drained = trio.Event()
        if self.on_written is not None:
            for task_id, state, batch, _ in work:
                if batch and self._logs.get(task_id) is state:
                    self.on_written(task_id)

    async def backpressure(self, task_id: str) -> None:
        """Wait while the task has ``MAX_PENDING_EVENTS`` events queued.

        Memory stays bounded: a fast agent is slowed down instead (through the daemon's
        backpressure, down to its pipe).
        """
        state = self._logs.get(task_id)
        while state is not None and len(state.pending) >= MAX_PENDING_EVENTS:
            await self._drained.wait()

    @staticmethod
    def _flush_sync(work: list[tuple[str, _Log, list[TaskEvent], bool]]) -> list[_Written]:
        return [
            _append_sync(state.path, state.size, batch, fsync, state.unsynced)
            for _, state, batch, fsync in work
        ]

    async def run_flusher(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Write queued events as they come; fsync when output pauses. Flushes once more at exit.

        Idle (nothing queued, nothing unsynced) it sleeps until the next event is queued.
        """
        task_status.started()
        try:
            while True:
                if any(state.unsynced for state in self._logs.values()):
                    with trio.move_on_after(FSYNC_INTERVAL_S):
                        await self._wakeup.wait()
                else:
                    await self._wakeup.wait()
                if self._wakeup.is_set():
                    self._wakeup = trio.Event()
                    await self.flush()
                else:
                    await self.flush(force_fsync=True)
        finally:
            with trio.CancelScope(shield=True):
                await self.flush(force_fsync=True)

    async def read_events(self, task_id: str, after: int, limit: int) -> list[TaskEvent]:
        """Visible events with ``seq > after``, at most ``limit`` (queued ones are not yet)."""
        state = self._logs[task_id]
        out: list[TaskEvent] = []
        if after < state.written:
            stop_index = min(after + limit, state.written)
            start = state.offsets[after]
            stop = state.offsets[stop_index] if stop_index < state.written else state.size
            path = state.path
            data = await trio.to_thread.run_sync(self._read_range, path, start, stop)
            out = [decode_event(line) for line in data.splitlines()]
        return out

    @staticmethod
    def _read_range(path: pathlib.Path, start: int, stop: int) -> bytes:
        with path.open("rb") as handle:
            handle.seek(start)
            return handle.read(stop - start)
