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
from typing import Any, BinaryIO

import attrs
import orjson
from cattrs.gen import make_dict_unstructure_fn, override

from ._convert import describe_error, make_strict_converter
from ._errors import TaskError
from ._index import FileStat
from ._model import Task, TaskEvent

MAX_RAW_CHARS = 64 * 1024
"""An event keeps this much of the agent's line (the transcript); the rest is cut, with a marker."""
MAX_DATA_CHARS = 8_000
"""A string in an event's data keeps this much: a preview, since the line itself is in ``raw``."""
MAX_EVENT_BYTES = 256 * 1024
"""No log line is longer: an event the other caps leave longer is stored with a preview of data."""
COPY_CHUNK = 1 << 20
SCAN_CHUNK = 64 * 1024
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


MARK_STRIDE = 1024
"""A log remembers where every ``MARK_STRIDE``-th event starts (a sparse offset index)."""


@attrs.define
class Log:
    """A task's log as the store tracks it: what is on disk and what waits to be written.

    Only trio code mutates it (worker threads get copies and return what they did), so a reader
    always sees a consistent prefix on disk followed by the events still pending. Where events
    start is known sparsely (:attr:`marks`): 8 bytes per ``MARK_STRIDE`` events, so a log of a
    million events costs ~8 kB of memory, not 8 MB.
    """

    path: pathlib.Path
    written: int = 0  # the last seq on disk
    # marks[k] = where event seq k * MARK_STRIDE + 1 starts (as far as known)
    marks: array.array[int] = attrs.field(factory=lambda: array.array("q"))
    size: int = 0
    pending: list[TaskEvent] = attrs.field(factory=list)  # includes a batch being written
    unsynced: bool = False
    last_fsync: float = 0.0
    scanned: int = 0
    """Bytes read to find where pages start (not the pages themselves): a measure for tests."""

    @property
    def last_seq(self) -> int:
        return self.pending[-1].seq if self.pending else self.written

    def note(self, seq: int, offset: int) -> None:
        """Event ``seq`` starts at ``offset``: kept if it is the next mark."""
        if (seq - 1) == len(self.marks) * MARK_STRIDE:
            self.marks.append(offset)

    def route(self, seq: int) -> Route:
        """How to find where the written event ``seq`` starts: forward from the nearest mark
        before it, or backward from the end, whichever passes fewer lines."""
        mark = min((seq - 1) // MARK_STRIDE, len(self.marks) - 1)
        start, forward = (
            (0, seq - 1) if mark < 0 else (self.marks[mark], seq - 1 - mark * MARK_STRIDE)
        )
        first = 1 if mark < 0 else mark * MARK_STRIDE + 1
        backward = self.written - seq + 1
        if backward < forward:
            return Route(start=self.size, first=seq, forward=0, backward=backward)
        return Route(start=start, first=first, forward=forward, backward=0)


@attrs.frozen
class Route:
    """Where a read of a log starts looking (see :meth:`Log.route`)."""

    start: int
    first: int  # the seq of the event at ``start`` when reading forward
    forward: int  # whole lines to pass from ``start``
    backward: int  # or: events to step back from the end ``start``


@attrs.frozen
class Page:
    """A read of a log: its lines, the marks passed on the way, the bytes read to find it."""

    data: bytes
    marks: list[tuple[int, int]]
    scanned: int


def read_page(path: pathlib.Path, end: int, route: Route, count: int, max_bytes: int) -> Page:
    """At most ``count`` whole lines from the event ``route`` leads to, at most ``max_bytes`` of
    them unless the first alone is longer; nothing at or past ``end`` (the written end)."""
    with path.open("rb") as handle:
        if route.backward:
            start, scanned = _step_back(handle, end, route.backward)
            marks: list[tuple[int, int]] = []
        else:
            start, scanned, marks = _step_forward(handle, route, end)
        handle.seek(start)
        lines: list[bytes] = []
        size = 0
        while len(lines) < count and start + size < end:
            line = handle.readline(end - start - size)
            if not line.endswith(b"\n") or (lines and size + len(line) > max_bytes):
                break
            lines.append(line)
            size += len(line)
    return Page(data=b"".join(lines), marks=marks, scanned=scanned)


def _step_forward(
    handle: BinaryIO, route: Route, end: int
) -> tuple[int, int, list[tuple[int, int]]]:
    """Pass ``route.forward`` lines from ``route.start``; the marks passed on the way."""
    handle.seek(route.start)
    offset, seq, marks = route.start, route.first, []
    for _ in range(route.forward):
        if (seq - 1) % MARK_STRIDE == 0:
            marks.append((seq, offset))
        offset += len(handle.readline(end - offset))
        seq += 1
    if (seq - 1) % MARK_STRIDE == 0:
        marks.append((seq, offset))
    return offset, offset - route.start, marks


def _step_back(handle: BinaryIO, end: int, events: int) -> tuple[int, int]:
    """Where the ``events``-th line from ``end`` starts (``end`` ends a whole line)."""
    newlines = events + 1  # the last line's own newline, then one before each line passed
    position = end
    while position > 0:
        chunk_start = max(0, position - SCAN_CHUNK)
        handle.seek(chunk_start)
        chunk = handle.read(position - chunk_start)
        index = len(chunk)
        while newlines:
            index = chunk.rfind(b"\n", 0, index)
            if index < 0:
                break
            newlines -= 1
        if not newlines:
            return chunk_start + index + 1, end - chunk_start
        position = chunk_start
    return 0, end


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
    """Read ``state.path`` line by line into ``state`` (marks, written); memory is one line."""
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
            state.note(event.seq, good_end)
            state.written = event.seq
            good_end += len(line)
        total = handle.seek(0, os.SEEK_END)
    return Scan(good_end=good_end, total=total, problem=problem)


# -- the store's blocking steps (worker threads) -------------------------------------------


def save_sync(
    tasks_dir: pathlib.Path,
    task_id: str,
    log_end: tuple[pathlib.Path, int],
    batch: list[TaskEvent],
    data: bytes,
) -> tuple[Written, tuple[FileStat, FileStat | None]]:
    """Append ``batch`` (fsync'd) to the log at ``log_end`` (its path and known size), then
    replace the task's record with ``data`` (fsync'd, then its directory); returns what was
    appended and how record and log look now (for the index)."""
    log_path, size = log_end
    written = append_sync(log_path, size, batch, fsync=True, unsynced=True)
    path = tasks_dir / (task_id + RECORD_SUFFIX)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with writing(tmp), tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with writing(path):
            os.replace(tmp, path)
            fsync_dir(tasks_dir)
    except StateWriteError:
        # Unrecorded, the batch is still queued: take it back out of the log so the next
        # write does not repeat its seqs.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
            if batch:
                os.truncate(log_path, size)
        raise
    try:
        events: FileStat | None = FileStat.of(os.stat(log_path))
    except FileNotFoundError:
        events = None
    return written, (FileStat.of(os.stat(path)), events)


def discard_sync(tasks_dir: pathlib.Path, task_id: str) -> None:
    """Remove what a refused create may have left (an empty log); best effort."""
    for suffix in (LOG_SUFFIX, RECORD_SUFFIX + ".tmp"):
        with contextlib.suppress(OSError):
            (tasks_dir / (task_id + suffix)).unlink(missing_ok=True)


def delete_sync(tasks_dir: pathlib.Path, task_id: str) -> None:
    for suffix in (RECORD_SUFFIX, LOG_SUFFIX):
        path = tasks_dir / (task_id + suffix)
        with writing(path):
            path.unlink(missing_ok=True)
    with writing(tasks_dir):
        fsync_dir(tasks_dir)


def probe_sync(root: pathlib.Path) -> None:
    """Write and fsync 4 kB in ``root`` (raises :class:`StateWriteError` if refused)."""
    probe = root / ".write-probe"
    try:
        with writing(probe), probe.open("wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def flush_sync(work: list[tuple[Log, list[TaskEvent], bool]]) -> list[Written | StateWriteError]:
    """Append each log's batch (fsync'd if asked); a refused one is its error, not raised."""
    results: list[Written | StateWriteError] = []
    for state, batch, fsync in work:
        try:
            results.append(append_sync(state.path, state.size, batch, fsync, state.unsynced))
        except StateWriteError as error:
            results.append(error)
    return results


def open_log(
    path: pathlib.Path, event_count: int, known: tuple[int, int | None, int | None] | None
) -> Log:
    """A log the store did not track: as its index row ``known`` (event count, mtime, size)
    says if the file still has that size and the record that count, else scanned."""
    state = Log(path=path)
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return state
    if known is not None and known[2] == size and known[0] == event_count:
        state.written, state.size = event_count, size
        return state
    state.size = scan_log(state).good_end
    return state
