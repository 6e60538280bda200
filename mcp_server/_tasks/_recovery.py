"""Reading a state directory back at startup: records, their event logs, and quarantine.

Plain blocking code, run in a worker thread by :meth:`._store.TaskStore.load` (which then
interrupts the tasks that were running). What cannot be read is moved into ``quarantine/``
with a warning naming it, never deleted: a record that does not parse (with its log), a log
line that does not parse or breaks the sequence (the good prefix stays), a log without a
record, the torn bytes of a last line a crash cut short.
"""

from __future__ import annotations

import logging
import os
import pathlib

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
from ._model import Task, utcnow

log = logging.getLogger("mcp_server.tasks")


@attrs.define
class Recovery:
    """One read of ``tasks_dir``: the logs it found and the files it quarantined."""

    tasks_dir: pathlib.Path
    quarantine_dir: pathlib.Path
    logs: dict[str, Log] = attrs.field(factory=dict)
    quarantined: list[pathlib.Path] = attrs.field(factory=list)

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

    def run(self) -> dict[str, Task]:
        """Read every record and log back; returns the tasks, their logs in :attr:`logs`."""
        loaded: dict[str, Task] = {}
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        for leftover in sorted(self.tasks_dir.glob("*.tmp")):
            log.warning("removing %s: an unfinished write (the old record stands)", leftover)
            leftover.unlink()
        for path in sorted(self.tasks_dir.glob("*" + RECORD_SUFFIX)):
            task_id = path.name.removesuffix(RECORD_SUFFIX)
            try:
                task = decode_record(path.read_bytes(), task_id)
            except Exception as exc:
                self.quarantine(path, f"unreadable task record: {describe_error(exc)}")
                log_path = self.tasks_dir / (task_id + LOG_SUFFIX)
                if log_path.exists():
                    self.quarantine(log_path, "event log of an unreadable task record")
                continue
            self.logs[task_id] = self._load_log(task_id)
            count = self.logs[task_id].last_seq
            loaded[task_id] = (
                task if count == task.event_count else attrs.evolve(task, event_count=count)
            )
        for path in sorted(self.tasks_dir.glob("*" + LOG_SUFFIX)):
            if path.name.removesuffix(LOG_SUFFIX) not in loaded:
                self.quarantine(path, "event log without a task record")
        return loaded

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
