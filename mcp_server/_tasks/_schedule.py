"""Which waiting task starts next, and why the others wait (sans-IO).

Tasks whose next run is recorded but not started (``queued``, ``limited``) wait in one queue:
priority (high, normal, low), then ``queued_at``, then creation ``seq``. A :class:`Gate` says
whether a task may start now; the scheduler asks its gates for the head of the queue and for
every next candidate, so a blocked task does not block others that may start (another
project's, another agent's). A task blocked by no gate starts; the others keep their place and
the first gate's reason (``queue_reason``).

The scheduler holds no state of its own but the gates: the runner (its trio adapter) calls
:meth:`Scheduler.plan` whenever something may have unblocked (a run finished, a hold expired, a
task was queued) and sleeps until then, or until the earliest :meth:`Gate.next_change`.
"""

from __future__ import annotations

import datetime
import pathlib
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol

import attrs

from ._model import Task


class Gate(Protocol):
    """One reason a waiting task may not start yet (capacity, project, hold, budget)."""

    def blocks(self, task: Task, now: datetime.datetime) -> str | None:
        """``None``: the task may start as far as this gate goes; else why not, as a sentence
        (shown as the task's ``queue_reason``)."""
        ...

    def next_change(self, now: datetime.datetime) -> datetime.datetime | None:
        """When a time-based block may lift (a hold's reset, a day rolling over); ``None`` when
        only an event (a run finishing, a configuration change) can lift it."""
        ...


@attrs.frozen
class Waiting:
    """A waiting task's place in the queue (1 = next) and why it waits."""

    task_id: str
    position: int
    reason: str
    blocked_by: str
    """Which gate: its class name without ``Gate``, lower case ("capacity", "project", …)."""


@attrs.frozen
class Plan:
    """One scheduling pass: the tasks to start now (in order), the rest with their places, and
    when to look again without being woken (``None``: only when woken)."""

    start: tuple[Task, ...]
    waiting: tuple[Waiting, ...]
    wake_at: datetime.datetime | None


def queue_order(tasks: Iterable[Task]) -> list[Task]:
    """The waiting tasks in the order they start: priority, ``queued_at``, ``seq``."""
    return sorted((t for t in tasks if t.waiting_to_start), key=lambda t: t.queue_order)


class Scheduler:
    """Plans which waiting tasks start; see the module docstring."""

    def __init__(self, gates: Sequence[Gate]) -> None:
        self.gates: list[Gate] = list(gates)

    def blocks(self, task: Task, now: datetime.datetime) -> str | None:
        """The first gate's reason the task may not start now, or ``None``."""
        block = self._first_block(task, now)
        return None if block is None else block[1]

    def _first_block(self, task: Task, now: datetime.datetime) -> tuple[str, str] | None:
        for gate in self.gates:
            reason = gate.blocks(task, now)
            if reason is not None:
                return gate_name(gate), reason
        return None

    def plan(
        self,
        tasks: Iterable[Task],
        now: datetime.datetime,
        reserve: Callable[[Task], None],
    ) -> Plan:
        """Walk the queue in order: each task no gate blocks is ``reserve``\\ d at once (so the
        gates see its slot taken when they judge the next one) and started; the others wait."""
        started: list[Task] = []
        waiting: list[Waiting] = []
        for task in queue_order(tasks):
            block = self._first_block(task, now)
            if block is None:
                reserve(task)
                started.append(task)
            else:
                waiting.append(Waiting(task.id, len(waiting) + 1, block[1], block[0]))
        return Plan(tuple(started), tuple(waiting), self.next_change(now))

    def next_change(self, now: datetime.datetime) -> datetime.datetime | None:
        """The earliest time a gate's block may lift by itself."""
        times = [t for gate in self.gates if (t := gate.next_change(now)) is not None]
        return min(times, default=None)


def gate_name(gate: Gate) -> str:
    """``capacity`` for a ``CapacityGate``: how views count the reasons tasks wait (a gate's
    ``kind`` attribute, else its class name without ``Gate``)."""
    kind = getattr(gate, "kind", None)
    if isinstance(kind, str):
        return kind
    return type(gate).__name__.removesuffix("Gate").lower() or "gate"


class CapacityGate:
    """At most the daemon's ``max_concurrent_runs`` runs at once (``None``: not known yet, no
    limit here; the daemon's own refusal then requeues the task).

    When the daemon refuses a start as ``busy`` although a slot looked free (another server uses
    it), :meth:`refused` caps the runs at those in flight until one of them ends or a retry
    (after 1, 2, 4 … 30 s) finds a slot.
    """

    RETRY_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)

    def __init__(
        self, running: Callable[[], int], max_runs: int | None = None, label: str = "the daemon"
    ) -> None:
        self._running = running
        self.max_runs = max_runs
        self.label = label
        """How reasons name the daemon ("the daemon of host laptop" beside other hosts)."""
        self._cap: int | None = None
        self._retry_at: datetime.datetime | None = None
        self._refusals = 0

    def refused(self, now: datetime.datetime) -> None:
        """The daemon answered ``busy``: start no more than now run until a retry time."""
        self._cap = self._running()
        delay = self.RETRY_S[min(self._refusals, len(self.RETRY_S) - 1)]
        self._refusals += 1
        self._retry_at = now + datetime.timedelta(seconds=delay)

    def freed(self) -> None:
        """One of our runs ended: a slot is free for sure (lift a cap set by a refusal)."""
        self._cap = None
        self._retry_at = None

    def started(self) -> None:
        """A run started: the daemon had a slot (the backoff starts over)."""
        self._refusals = 0

    def limit(self, now: datetime.datetime) -> int | None:
        """How many runs may be in flight now."""
        if self._cap is not None and self._retry_at is not None and now >= self._retry_at:
            self._cap, self._retry_at = None, None
        caps = [c for c in (self.max_runs, self._cap) if c is not None]
        return min(caps, default=None)

    def blocks(self, task: Task, now: datetime.datetime) -> str | None:
        limit = self.limit(now)
        running = self._running()
        if limit is None or running < limit:
            return None
        if self._cap is not None and (self.max_runs is None or self._cap < self.max_runs):
            return (
                f"{self.label} is busy ({running} runs of this server in flight; "
                "it refused one more, another client may be using it)"
            )
        return f"{self.label} runs at most {limit} at once ({running} in flight)"

    def next_change(self, now: datetime.datetime) -> datetime.datetime | None:
        return self._retry_at


def project_key(task: Task) -> str:
    """Where the task's runs write: its own worktree, or its project directory."""
    if task.has_open_worktree:
        return f"worktree:{task.id}"
    return str(pathlib.PurePosixPath(task.cwd))


def _overlap(a: str, b: str) -> bool:
    """Two keys name the same tree: equal, or one directory inside the other."""
    if a.startswith("worktree:") or b.startswith("worktree:"):
        return a == b
    pa, pb = pathlib.PurePosixPath(a), pathlib.PurePosixPath(b)
    return pa == pb or pa in pb.parents or pb in pa.parents


class ProjectGate:
    """One run per project directory at a time (a directory inside another counts as the
    same project; the same path on another host is another directory); a worktree task's runs
    write only its own worktree, so they never wait here.
    """

    def __init__(self, busy: Callable[[], Collection[Task]]) -> None:
        self._busy = busy

    def blocks(self, task: Task, now: datetime.datetime) -> str | None:
        key = project_key(task)
        for other in self._busy():
            if other.id == task.id or other.host != task.host:
                continue
            if _overlap(key, project_key(other)):
                shown = task.project_dir or "(the workspace)"
                return f"project {shown} has a run in flight (task {other.id})"
        return None

    def next_change(self, now: datetime.datetime) -> datetime.datetime | None:
        return None
