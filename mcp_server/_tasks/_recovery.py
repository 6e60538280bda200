"""Reading a state directory back at startup: records, their event logs, and quarantine.

Plain blocking code, run in a worker thread by :meth:`._store.TaskStore.load` (which then
interrupts the tasks that were running). Only what changed behind the index
(:meth:`._index.IndexDb.stale`) and the tasks the server keeps in memory are read; a task at
rest whose record and log are as the index last saw them is not opened. What cannot be read
is moved into ``quarantine/`` with a warning naming it, never deleted: a record that does not
parse (with its log), a log line that does not parse or breaks the sequence (the good prefix
stays), a log without a record, the torn bytes of a last line a crash cut short.
"""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Iterator

import attrs

from ._convert import describe_error
from ._files import (
    LOG_SUFFIX,
    RECORD_SUFFIX,
    Log,
    copy_range,
    decode_record,
    fsync_dir,
    scan_log,
)
from ._index import FileStat, IndexDb, row_of
from ._model import Task, utcnow
from ._taskmap import resident

log = logging.getLogger("mcp_server.tasks")

ROWS_PER_BATCH = 1000
"""Index rows written per transaction while reading records back (memory stays small)."""


@attrs.define
class Recovery:
    """One read of ``tasks_dir``: the logs it found and the files it quarantined."""

    tasks_dir: pathlib.Path
    quarantine_dir: pathlib.Path
    logs: dict[str, Log] = attrs.field(factory=dict)
    quarantined: list[pathlib.Path] = attrs.field(factory=list)
    kept_on_disk: int = 0
    """Tasks at rest read (their index rows made) but not kept."""
    recounted: set[str] = attrs.field(factory=set)
    """Tasks whose record's event count is not what their log holds (the record is stale)."""

    def quarantine(self, path: pathlib.Path, why: str) -> pathlib.Path:
        """Move ``path`` into the quarantine directory (never deleted), with a warning."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        target = self.quarantine_dir / f"{path.name}.{stamp}"
        os.replace(path, target)
        fsync_dir(self.quarantine_dir)
        fsync_dir(path.parent)
        log.warning("quarantined %s: %s (moved to %s)", path, why, target)
        self.quarantined.append(target)
        return target

    def run(self, index: IndexDb) -> dict[str, Task]:
        """Read back what changed behind ``index`` (and what the server keeps in memory), bring
        the index up to date; returns the tasks the store must hold or rewrite (not at rest, or
        their record's event count is not their log's), their logs in :attr:`logs`."""
        loaded: dict[str, Task] = {}
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        stale = index.stale(self._entries())
        if index.rebuilt is not None and stale.records:
            log.warning(
                "rebuilding the task index from %d task records: %s",
                len(stale.records),
                index.rebuilt,
            )
        index.drop(stale.gone)
        rows = []
        for task_id in stale.records:
            path = self.tasks_dir / (task_id + RECORD_SUFFIX)
            try:
                task = decode_record(path.read_bytes(), task_id)
            except Exception as exc:
                self.quarantine(path, f"unreadable task record: {describe_error(exc)}")
                log_path = self.tasks_dir / (task_id + LOG_SUFFIX)
                if log_path.exists():
                    self.quarantine(log_path, "event log of an unreadable task record")
                index.drop([task_id])
                continue
            events = self._load_log(task_id)
            count = events.last_seq
            rows.append(row_of(task, *self.stats(task_id), count))
            if count != task.event_count:
                self.recounted.add(task_id)
                task = attrs.evolve(task, event_count=count)
            elif not resident(task):
                self.kept_on_disk += 1  # at rest, and its record says all: read when asked for
            if resident(task) or task_id in self.recounted:
                loaded[task_id], self.logs[task_id] = task, events
            if len(rows) >= ROWS_PER_BATCH:
                index.put(rows)
                rows.clear()
        index.put(rows)
        for task_id in stale.orphan_logs:
            self.quarantine(
                self.tasks_dir / (task_id + LOG_SUFFIX), "event log without a task record"
            )
        return loaded

    def stats(self, task_id: str) -> tuple[FileStat, FileStat | None]:
        """The task's record and log as they are now."""
        record = FileStat.of(os.stat(self.tasks_dir / (task_id + RECORD_SUFFIX)))
        try:
            events = FileStat.of(os.stat(self.tasks_dir / (task_id + LOG_SUFFIX)))
        except FileNotFoundError:
            events = None
        return record, events

    def _entries(self) -> Iterator[tuple[str, bool, int, int, int]]:
        """``(task id, is_log, inode, mtime_ns, size)`` of each task file; leftovers of an
        unfinished write are removed on the way."""
        with os.scandir(self.tasks_dir) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(".tmp"):
                    log.warning(
                        "removing %s: an unfinished write (the old record stands)", entry.path
                    )
                    os.unlink(entry.path)
                    continue
                if name.endswith(LOG_SUFFIX):
                    task_id, is_log = name.removesuffix(LOG_SUFFIX), True
                elif name.endswith(RECORD_SUFFIX):
                    task_id, is_log = name.removesuffix(RECORD_SUFFIX), False
                else:
                    continue
                stat = entry.stat(follow_symlinks=False)
                yield task_id, is_log, entry.inode(), stat.st_mtime_ns, stat.st_size

    def _load_log(self, task_id: str) -> Log:
        """The task's log scanned; a torn last line or a corrupt tail moved aside."""
        path = self.tasks_dir / (task_id + LOG_SUFFIX)
        state = Log(path=path)
        if not path.exists():
            return state
        scan = scan_log(state)
        state.size = scan.good_end
        if scan.problem is None:
            return state
        if scan.problem == "torn":
            torn = path.with_name(path.name + ".torn")
            copy_range(path, scan.good_end, scan.total, torn)
            cut = scan.total - scan.good_end
            self.quarantine(torn, f"torn last line of {path.name} ({cut} bytes)")
        else:
            kept = path.with_name(path.name + ".tmp-kept")
            copy_range(path, 0, scan.good_end, kept)
            why = f"corrupt event log at {scan.problem}; events 1..{state.written} kept"
            self.quarantine(path, why)
            os.replace(kept, path)
        with path.open("r+b") as handle:
            handle.truncate(scan.good_end)
            os.fsync(handle.fileno())
        fsync_dir(path.parent)
        return state
