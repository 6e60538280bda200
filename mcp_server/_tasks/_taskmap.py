"""The task records a :class:`._store.TaskStore` holds in memory: the resident ones (not at
rest: the scheduler, the queue and the runner use them) and a few at rest, the most recently
used; any other is read from its file when asked for.
"""

from __future__ import annotations

import collections
import logging
import pathlib
from collections.abc import Callable, Iterable

from ._convert import describe_error
from ._files import RECORD_SUFFIX, decode_record
from ._index import RESIDENT_STATUSES
from ._model import Task

log = logging.getLogger("mcp_server.tasks")

CACHED_TASKS = 256
"""Tasks at rest kept in memory after use (a report, a follow-up, a page of logs)."""


def resident(task: Task) -> bool:
    """True for a task the server keeps in memory: pending, queued, limited or running."""
    return task.status in RESIDENT_STATUSES


def read_record(tasks_dir: pathlib.Path, task_id: str) -> Task | None:
    """The task's record from its file (``None``: no such task, or unreadable: logged)."""
    if "/" in task_id or task_id in ("", ".", ".."):
        return None
    path = tasks_dir / (task_id + RECORD_SUFFIX)
    try:
        data = path.read_bytes()
    except OSError:  # none (or a name no task can have: too long, a directory)
        return None
    try:
        return decode_record(data, task_id)
    except Exception as exc:
        log.warning("cannot read %s: %s", path, describe_error(exc))
        return None


def read_records(tasks_dir: pathlib.Path, task_ids: Iterable[str]) -> list[Task]:
    """The records of ``task_ids`` that exist (a worker thread reads a page at once)."""
    return [task for task in (read_record(tasks_dir, tid) for tid in task_ids) if task]


class TaskMap:
    """Task records by id: resident ones always, others cached (LRU) or read on a miss.

    A miss in :meth:`get` reads one record (a few kB) in the caller's thread: the trio entry
    points that take an id from a client read it ahead in a worker thread
    (:meth:`._store.TaskStore.fetch`), so this is the rare path.
    """

    def __init__(
        self,
        tasks_dir: pathlib.Path,
        pinned: Callable[[Task], bool],
        evicted: Callable[[str], None],
        capacity: int = CACHED_TASKS,
    ) -> None:
        self.tasks_dir = tasks_dir
        self.resident: dict[str, Task] = {}
        """The tasks not at rest, each as last published."""
        self._cached: collections.OrderedDict[str, Task] = collections.OrderedDict()
        self._pinned = pinned
        self._evicted = evicted
        self.capacity = capacity

    def peek(self, task_id: str) -> Task | None:
        """The task if it is in memory (no file read)."""
        task = self.resident.get(task_id)
        if task is None:
            task = self._cached.get(task_id)
            if task is not None:
                self._cached.move_to_end(task_id)
        return task

    def get(self, task_id: str, default: Task | None = None) -> Task | None:
        task = self.peek(task_id)
        if task is None:
            task = read_record(self.tasks_dir, task_id)
            if task is not None:
                self.remember(task)
        return task if task is not None else default

    def __getitem__(self, task_id: str) -> Task:
        task = self.get(task_id)
        if task is None:
            raise KeyError(task_id)
        return task

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and self.get(task_id) is not None

    def cached(self) -> int:
        """How many tasks at rest are in memory."""
        return len(self._cached)

    def remember(self, task: Task) -> None:
        """Hold the task's latest record: resident, or the most recent of those cached."""
        if resident(task):
            self._cached.pop(task.id, None)
            self.resident[task.id] = task
            return
        self.resident.pop(task.id, None)
        self._cached[task.id] = task
        self._cached.move_to_end(task.id)
        if len(self._cached) > self.capacity:
            for old in list(self._cached.values())[: len(self._cached) - self.capacity]:
                if not self._pinned(old):
                    del self._cached[old.id]
                    self._evicted(old.id)

    def forget(self, task_id: str) -> None:
        self.resident.pop(task_id, None)
        self._cached.pop(task_id, None)
