"""The state files of tasks: their codec, the event log's appends and scans, and disk errors.

Plain blocking code, run in worker threads by :mod:`._store` (which owns the policy). Memory is
bounded by design: an event is capped when it is queued (:func:`cap_event`), a line is written
at most ``MAX_EVENT_BYTES`` long, and a log is scanned line by line, never read whole.
"""

from __future__ import annotations

import array
import contextlib
import errno
import json
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import attrs
import orjson
from cattrs.gen import make_dict_unstructure_fn, override

from ._convert import describe_error, make_strict_converter
from ._errors import TaskError
from ._model import Task, TaskEvent

MAX_RAW_CHARS = 64 * 1024
"""An event keeps this much of the agent's line (the transcript); the rest is cut, with a marker."""
MAX_DATA_CHARS = 8_000
"""A string in an event's data keeps this much: a preview, since the line itself is in ``raw``."""
MAX_EVENT_BYTES = 256 * 1024
"""No log line is longer: an event the other caps leave longer is stored with a preview of data."""
COPY_CHUNK = 1 << 20
ORJSON_MAX_BYTES = 64 * 1024
RECORD_SUFFIX = ".json"
"""A task's record is ``tasks/<id>.json``."""
LOG_SUFFIX = ".events.ndjson"
"""A task's event log is ``tasks/<id>.events.ndjson``."""


STATE_CONVERTER = make_strict_converter()
"""The state-file boundary's converter (tool arguments have their own, made alike)."""
STATE_CONVERTER.register_unstructure_hook(
    TaskEvent,
    # Most events come from no daemon frame: their lines stay as they were without the field.
    make_dict_unstructure_fn(TaskEvent, STATE_CONVERTER, daemon_seq=override(omit_if_default=True)),
)


def encode_task(task: Task) -> bytes:
    return orjson.dumps(STATE_CONVERTER.unstructure(task), option=orjson.OPT_INDENT_2)


def decode_task(data: bytes) -> Task:
    return STATE_CONVERTER.structure(orjson.loads(data), Task)


def encode_event(event: TaskEvent) -> bytes:
    return orjson.dumps(STATE_CONVERTER.unstructure(event)) + b"\n"


def decode_event(line: bytes) -> TaskEvent:
    return STATE_CONVERTER.structure(_loads(line), TaskEvent)


def _loads(data: bytes) -> Any:
    """Parse JSON; a long line with the stdlib, whose peak is ~3x the line (orjson's ~14x)."""
    return orjson.loads(data) if len(data) <= ORJSON_MAX_BYTES else json.loads(data)


def decode_record(data: bytes, task_id: str) -> Task:
    task = decode_task(data)
    if task.id != task_id:
        raise ValueError(f"the record names task {task.id}")
    return task


def _decode_line(line: bytes, expected_seq: int) -> TaskEvent:
    event = decode_event(line)
    if event.seq != expected_seq:
        raise ValueError(f"expected seq {expected_seq}, got {event.seq}")
    return event


def cap_event(event: TaskEvent) -> TaskEvent:
    """The event as it is stored: ``raw`` cut at ``MAX_RAW_CHARS``, data strings at
    ``MAX_DATA_CHARS``, each with a marker saying how much was cut.

    An agent's line is stored once, in ``raw``; the normalized data keeps only a preview of its
    long strings (every reader shows at most that much of them anyway).
    """
    raw = event.raw
    if raw is not None and len(raw) > MAX_RAW_CHARS:
        raw = _cut(raw, MAX_RAW_CHARS, "")
    data = event.data
    if data is not None:
        data = _cut_strings(data)
    if raw is event.raw and data is event.data:
        return event
    return attrs.evolve(event, raw=raw, data=data)


def _cut(text: str, limit: int, where: str) -> str:
    return text[:limit] + f"… [cut: {len(text) - limit} more characters of {len(text)}{where}]"


def _cut_strings(value: Any) -> Any:
    """``value`` with every long string cut (the same object when nothing is)."""
    if isinstance(value, str):
        if len(value) <= MAX_DATA_CHARS:
            return value
        return _cut(value, MAX_DATA_CHARS, "; the line is in raw")
    if isinstance(value, dict):
        items = {key: _cut_strings(item) for key, item in value.items()}
        same = all(items[key] is item for key, item in value.items())
        return value if same else items
    if isinstance(value, list):
        cut = [_cut_strings(item) for item in value]
        return value if all(a is b for a, b in zip(cut, value, strict=True)) else cut
    return value


def encode_bounded(event: TaskEvent) -> bytes:
    """The event's log line, at most ``MAX_EVENT_BYTES``: if the caps of :func:`cap_event` leave
    it longer (many long strings, escapes), its data becomes a preview of its JSON."""
    line = encode_event(event)
    if len(line) <= MAX_EVENT_BYTES:
        return line
    # JSON escapes a character into at most 6 bytes: these cuts fit MAX_EVENT_BYTES together.
    data = None if event.data is None else orjson.dumps(event.data).decode()
    preview = None if data is None else {"cut": _cut(data, MAX_DATA_CHARS, " (data as JSON)")}
    raw = event.raw if event.raw is None else _cut(event.raw, MAX_EVENT_BYTES // 8, "")
    summary = event.summary[:1000]
    return encode_event(attrs.evolve(event, data=preview, raw=raw, summary=summary))


# -- disk errors ----------------------------------------------------------------------------

_CONDITIONS = {
    errno.ENOSPC: "full",
    errno.EDQUOT: "over its quota",
    errno.EROFS: "read-only",
    errno.EIO: "failing (I/O error)",
}


class StateWriteError(TaskError):
    """The state directory refused a write: full, over quota, read-only or failing.

    Raised instead of the ``OSError`` so that no caller mistakes it for a network error; the
    message names the condition and the file, like ``state disk full: No space left on device
    at /state/tasks/ID.json``.
    """

    code = "state_unwritable"

    def __init__(self, error: OSError, path: os.PathLike[str] | str) -> None:
        condition = _CONDITIONS.get(error.errno or 0)
        what = f"state disk {condition}" if condition else "state write failed"
        super().__init__(f"{what}: {error.strerror or error} at {os.fspath(path)}")
        self.errno = error.errno
        self.path = os.fspath(path)


@contextlib.contextmanager
def writing(path: pathlib.Path) -> Iterator[None]:
    """Turn an ``OSError`` of writing ``path`` into :class:`StateWriteError`."""
    try:
        yield
    except OSError as exc:
        raise StateWriteError(exc, exc.filename or path) from exc


# -- the event log --------------------------------------------------------------------------


@attrs.define
class Log:
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

    def end_of(self, seq: int) -> int:
        """Where the written event ``seq`` ends in the file."""
        return self.offsets[seq] if seq < self.written else self.size


@attrs.frozen
class Written:
    """What a worker thread appended to one log."""

    offsets: list[int]
    size: int
    fsynced: bool


def append_sync(
    path: pathlib.Path, size: int, batch: list[TaskEvent], fsync: bool, unsynced: bool
) -> Written:
    """Append ``batch`` at ``size`` (the end the store knows); all of it or nothing.

    A failed write is cut back off (and so is anything a failed write left before), so the
    file always ends with the last whole event the store counted.
    """
    if not batch and not (fsync and unsynced):
        return Written([], size, fsynced=False)
    offsets: list[int] = []
    end = size
    chunks = []
    for event in batch:
        line = encode_bounded(event)
        offsets.append(end)
        end += len(line)
        chunks.append(line)
    with writing(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
            try:
                _write_all(fd, b"".join(chunks))
                if fsync:
                    os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
    return Written(offsets, end, fsynced=fsync)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_range(source: pathlib.Path, start: int, stop: int, target: pathlib.Path) -> None:
    """Copy bytes ``start..stop`` of ``source`` into a new ``target``, a chunk at a time."""
    with source.open("rb") as reading, target.open("wb") as out:
        reading.seek(start)
        left = stop - start
        while left > 0:
            chunk = reading.read(min(COPY_CHUNK, left))
            if not chunk:
                break
            out.write(chunk)
            left -= len(chunk)
        out.flush()
        os.fsync(out.fileno())


@attrs.frozen
class Scan:
    """What a scan of a log file found: its whole events, and what follows them."""

    good_end: int
    total: int
    problem: str | None  # None, "torn", or why a line is corrupt


def scan_log(state: Log) -> Scan:
    """Read ``state.path`` line by line into ``state`` (offsets, written); memory is one line."""
    good_end = 0
    problem: str | None = None
    with state.path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                problem = "torn"
                break
            try:
                event = _decode_line(line, state.written + 1)
            except Exception as exc:
                problem = f"line {state.written + 1}: {describe_error(exc)}"
                break
            state.offsets.append(good_end)
            state.written = event.seq
            good_end += len(line)
        total = handle.seek(0, os.SEEK_END)
    return Scan(good_end=good_end, total=total, problem=problem)


def read_range(path: pathlib.Path, start: int, stop: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(start)
        return handle.read(stop - start)
