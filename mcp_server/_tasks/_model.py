"""Coding tasks as plain records and the state machine that moves them (sans-IO).

A task is one conversation with one agent in one project directory. Each call that gives the
agent instructions (``create_task``, then every ``update_task``) is a *turn*; a turn is run by the
host daemon, and its end is recorded as the task's last :class:`RunReport`.

Statuses::

    pending ──start_run──▶ in_progress ──finish_run──▶ waiting | failed | cancelled
       │                   ask │ ▲ answered (none left)   │
       │                       ▼ │                        │
       │                   input_required ──finish_run──▶ ┤ (its pending requests dropped)
       │                      │                           │
       │                      └──interrupt──▶ interrupted ┘ (the process died mid-run)
       └──────────────────────────────────────────────────┴──start_run (a follow-up)──▶ in_progress
    any status but completed ──end──▶ completed
    not running, with a worktree ──merge──▶ completed (review "merged")
    not running, with a worktree ──discard──▶ cancelled (review "discarded"; an ended task
                                                stays completed)

A run that cannot start yet (no capacity, a busy project, a hold, a budget) waits ``queued``
(:func:`enqueue`; a follow-up's turn is recorded then); a run that hit a usage limit waits
``limited`` (:func:`limited`). Both are :data:`WAITING_TO_START`: the scheduler starts them in
order (priority, then ``queued_at``, then ``seq``) with :func:`start_run`; ``end`` dequeues them.

``input_required`` is a run in flight whose agent waits for a person's decision on permission
requests (:class:`PendingApproval`): whatever treats ``in_progress`` as running treats it the
same (:data:`RUNNING`). A turn the client interrupted (``interrupt_task``) ends ``waiting``.
``waiting``, ``failed``, ``cancelled`` and ``interrupted`` accept a follow-up turn unless the
task's work was merged or discarded (its worktree is gone then); ``completed`` is final. Every
transition is a pure function that returns a new record or raises :class:`InvalidTransition`.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, get_args

import attrs

from host_daemon import AgentName, Outcome

from ._errors import TaskError

TaskStatus = Literal[
    "pending",
    "queued",
    "limited",
    "in_progress",
    "input_required",
    "waiting",
    "completed",
    "failed",
    "cancelled",
    "interrupted",
]
TASK_STATUSES: tuple[TaskStatus, ...] = get_args(TaskStatus)
RUNNING: frozenset[TaskStatus] = frozenset({"in_progress", "input_required"})
"""Statuses of a task whose run is in flight."""
RESUMABLE: frozenset[TaskStatus] = frozenset({"waiting", "failed", "cancelled", "interrupted"})
"""Statuses from which a follow-up turn may start."""
WAITING_TO_START: frozenset[TaskStatus] = frozenset({"queued", "limited"})
"""Statuses of a task whose next run is recorded but not started (the scheduler starts it)."""

Priority = Literal["high", "normal", "low"]
"""Which queued task starts first: high before normal before low, then the oldest."""
PRIORITY_RANK: dict[Priority, int] = {"high": 0, "normal": 1, "low": 2}

RunOutcome = Outcome | Literal["interrupted"]

Isolation = Literal["worktree", "none"]
"""Where a task's turns run: a git worktree of its own on a new branch, or the project dir."""
Review = Literal["merged", "discarded"]
"""What became of a worktree task's branch (``None`` while it is open)."""

EventKind = Literal[
    "turn",  # a turn's instructions were accepted
    "run_started",  # the daemon started the agent process
    "agent",  # one normalized agent event (data.kind says which)
    "run_finished",  # the run ended: the report's summary
    "status",  # the task's status changed
    "commit",  # the turn's changes were committed on the task's branch (or why not)
    "approval_request",  # the agent asks for permission to use a tool (a person must decide)
    "approval",  # a permission request was decided: by whom, and how
    "steer",  # instructions sent into the running turn (or why they were not taken)
]


def utcnow() -> datetime.datetime:
    """The current time, timezone-aware (every timestamp in a task is)."""
    return datetime.datetime.now(datetime.UTC)


@attrs.frozen
class Clock:
    """Where tasks get the time: the wall clock stamps records, the monotonic clock measures.

    A wall clock may jump (NTP, a VM resumed, an operator); durations and the order of tasks must
    not, so they come from ``monotonic`` and from a creation sequence. Tests inject a clock.
    """

    wall: Callable[[], datetime.datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic


class InvalidTransition(TaskError, ValueError):
    """A transition that the task's current status does not allow."""

    code = "invalid_state"


@attrs.frozen
class TaskOptions:
    """How the agent runs each turn; ``None`` leaves the choice to the agent CLI."""

    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    timeout_s: float | None = None
    permission_mode: str | None = None
    live: bool | None = None
    """A supervised live run (``None``: live when the daemon says the agent can)."""
    allow_rules: tuple[str, ...] | None = None
    """Narrows the daemon's allow rules (``None``: all of them); never widens them."""
    deny_rules: tuple[str, ...] = ()
    """More rules that deny a permission request at once."""
    approval_timeout_s: float | None = None
    """Deny a permission request nobody answered after this long (at most the daemon's)."""
    notify_url: str | None = None
    """A webhook told of this task's transitions (checked against the owner's allowlist)."""


@attrs.frozen
class PendingApproval:
    """A permission request of the agent that waits for a decision (the task is
    ``input_required`` while it has one)."""

    request_id: str
    tool_name: str
    input: dict[str, Any]
    asked_at: datetime.datetime
    timeout_at: datetime.datetime
    description: str | None = None
    suggestions: list[dict[str, Any]] = attrs.field(factory=list)


@attrs.frozen
class Turn:
    """Instructions given to the agent, and when."""

    instructions: str
    at: datetime.datetime


@attrs.frozen
class RunReport:
    """How the last run ended, for the client and for the next turn."""

    outcome: RunOutcome
    started_at: datetime.datetime
    finished_at: datetime.datetime
    final_text: str | None = None
    cost_usd: float | None = None
    num_turns: int | None = None
    usage: dict[str, Any] | None = None
    files_changed: list[str] = attrs.field(factory=list)
    error: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    session_id: str | None = None
    session_note: str | None = None
    """Set when the agent answered a resume with a different session id than asked for."""
    duration_s: float | None = None
    """The run's length on the monotonic clock (``None`` in records from before it was kept)."""
    commit: str | None = None
    """The commit of the run's changes on the task's branch (``None``: none, or no worktree)."""
    limit_resets_at: datetime.datetime | None = None
    """``outcome == "limited"``: when the agent said its usage limit resets (if it said)."""

    def duration(self) -> float:
        """Seconds the run took: monotonic if measured, else by the wall clock but never < 0."""
        if self.duration_s is not None:
            return self.duration_s
        return max(0.0, (self.finished_at - self.started_at).total_seconds())


@attrs.frozen
class WorktreeRecord:
    """The task's worktree as the daemon made it: its branch and what the branch started from."""

    branch: str
    base_branch: str | None
    """The branch a merge lands in; ``None`` when the base was a detached commit."""
    base_commit: str
    repo: str
    """The host path of the repository's top level (the user's checkout)."""
    subdir: str
    """The project dir relative to ``repo`` ("" for the top level)."""


@attrs.frozen
class UsageLimit:
    """The agent account's usage limit that the task's last run hit, and when it resets."""

    agent: AgentName
    resets_at: datetime.datetime | None
    """When the limit resets, as the agent said (``None``: it did not say; back off)."""
    hit_at: datetime.datetime
    attempt: int = 1
    """How many times in a row a resume hit the limit again (drives the backoff)."""
    message: str | None = None


@attrs.frozen
class Task:
    """One coding task: its turns, options, status, timestamps and last run's report."""

    id: str
    title: str
    agent: AgentName
    project_dir: str
    """As the client gave it, relative to the workspace ("" for the workspace itself)."""
    cwd: str
    """The host directory the daemon runs the agent in."""
    options: TaskOptions
    status: TaskStatus
    turns: tuple[Turn, ...]
    created_at: datetime.datetime
    updated_at: datetime.datetime
    started_at: datetime.datetime | None = None
    completed_at: datetime.datetime | None = None
    session_id: str | None = None
    report: RunReport | None = None
    event_count: int = 0
    runs: int = 0
    seq: int = 0
    """Creation order, from the store's counter (0 in records from before it was kept)."""
    isolation: Isolation = "none"
    isolation_note: str | None = None
    """Why this isolation: the branch, or why no worktree was made."""
    worktree: WorktreeRecord | None = None
    commits: tuple[str, ...] = ()
    """The commits made after its turns on the task's branch, oldest first."""
    review: Review | None = None
    live: bool = False
    """Whether its turns run live (decided at create from the option and the daemon's probe)."""
    pending: tuple[PendingApproval, ...] = ()
    """The permission requests of the run in flight that wait for a decision, oldest first."""
    granted_rules: tuple[str, ...] = ()
    """Rules a person allowed for the rest of the task (``approve`` with ``remember: task``)."""
    priority: Priority = "normal"
    queued_at: datetime.datetime | None = None
    """When its waiting run was queued (``None`` unless ``queued`` or ``limited``)."""
    queue_reason: str | None = None
    """Why it waits, as a sentence ("2 runs ahead (the daemon runs at most 2)")."""
    limit: UsageLimit | None = None
    """The usage limit its last run hit (set while ``limited``)."""
    host: str = "default"
    """The host daemon its runs go to (records from before several hosts: ``default``)."""
    run_id: str | None = None
    """Its latest run's id on the daemon (a detachable run: the server re-attaches to it)."""

    @property
    def running(self) -> bool:
        """True while a run is in flight (``in_progress`` or ``input_required``)."""
        return self.status in RUNNING

    @property
    def reattachable(self) -> bool:
        """True while a detachable run is in flight: a restarted server re-attaches to it."""
        return self.running and self.run_id is not None

    def pending_request(self, request_id: str) -> PendingApproval | None:
        """The pending permission request with this id, if it is still pending."""
        return next((p for p in self.pending if p.request_id == request_id), None)

    @property
    def has_open_worktree(self) -> bool:
        """True while the task's worktree exists: made, and neither merged nor discarded."""
        return self.worktree is not None and self.review is None

    def isolation_text(self) -> str:
        """``isolation: worktree (branch coding-agent/…)``, as results say it."""
        note = f" ({self.isolation_note})" if self.isolation_note else ""
        return f"isolation: {self.isolation}{note}"

    @property
    def waiting_to_start(self) -> bool:
        """True while its next run is recorded but not started (``queued``, ``limited``)."""
        return self.status in WAITING_TO_START

    @property
    def queue_order(self) -> tuple[int, datetime.datetime, int]:
        """Sort key of the queue: priority, then when it was queued, then creation order."""
        queued_at = self.queued_at or self.created_at
        return (PRIORITY_RANK[self.priority], queued_at, self.seq)

    @property
    def order(self) -> tuple[int, datetime.datetime]:
        """Sort key of listings, oldest first: by creation sequence, not by a wall-clock stamp."""
        return (self.seq, self.created_at)


@attrs.frozen
class TaskEvent:
    """One line of a task's log; ``seq`` runs 1, 2, 3, … without gaps within a task."""

    seq: int
    time: datetime.datetime
    kind: EventKind
    summary: str
    data: dict[str, Any] | None = None
    raw: str | None = None
    daemon_seq: int | None = None
    """The daemon's number of the run frame it records (``None``: not from a frame)."""


def new_task_id() -> str:
    """A fresh task id: a random UUID (122 random bits), unguessable and unique in practice."""
    return str(uuid.uuid4())


def new_task(
    *,
    title: str,
    instructions: str,
    agent: AgentName,
    project_dir: str,
    cwd: str,
    options: TaskOptions,
    now: datetime.datetime,
    task_id: str | None = None,
    live: bool = False,
    priority: Priority = "normal",
    host: str = "default",
) -> Task:
    """A fresh ``pending`` task holding its first turn (isolation: see :func:`isolate`)."""
    return Task(
        id=task_id or new_task_id(),
        title=title,
        agent=agent,
        project_dir=project_dir,
        cwd=cwd,
        options=options,
        status="pending",
        turns=(Turn(instructions=instructions, at=now),),
        created_at=now,
        updated_at=now,
        live=live,
        priority=priority,
        host=host,
    )


def isolate(
    task: Task, isolation: Isolation, note: str | None, worktree: WorktreeRecord | None = None
) -> Task:
    """Say where a ``pending`` task runs (before its first run): its worktree, or none."""
    if task.status != "pending" or task.runs:
        raise refuse(task, "isolate", "pending, before its first run")
    if (isolation == "worktree") != (worktree is not None):
        raise ValueError(f"isolation {isolation!r} does not match worktree {worktree!r}")
    return attrs.evolve(task, isolation=isolation, isolation_note=note, worktree=worktree)


def refuse(task: Task, action: str, allowed: str) -> InvalidTransition:
    return InvalidTransition(
        f"cannot {action} task {task.id}: it is {task.status} (allowed from {allowed})"
    )


def start_run(
    task: Task, now: datetime.datetime, instructions: str | None = None, run_id: str | None = None
) -> Task:
    """Start a run (named ``run_id`` on the daemon): the first turn of a ``pending`` task, a
    follow-up with ``instructions``, or the run a ``queued``/``limited`` task holds."""
    _check_open(task, "start a run of")
    if task.status == "pending" or task.status in WAITING_TO_START:
        if instructions is not None:
            which = "first turn" if task.status == "pending" else "queued turn"
            raise InvalidTransition(
                f"cannot add instructions to task {task.id}: its {which} has not run yet"
            )
        turns = task.turns
    elif task.status in RESUMABLE:
        if instructions is None:
            raise InvalidTransition(f"a follow-up turn of task {task.id} needs instructions")
        turns = (*task.turns, Turn(instructions=instructions, at=now))
    else:
        allowed = ["pending", *sorted(WAITING_TO_START), *sorted(RESUMABLE)]
        raise refuse(task, "start a run of", ", ".join(allowed))
    return attrs.evolve(
        task,
        status="in_progress",
        turns=turns,
        started_at=task.started_at or now,
        updated_at=now,
        runs=task.runs + 1,
        queued_at=None,
        queue_reason=None,
        limit=None,
        run_id=run_id,
    )


def _check_open(task: Task, action: str) -> None:
    if task.review is not None:
        raise InvalidTransition(
            f"cannot {action} task {task.id}: its work was {task.review} "
            "(its worktree is gone); create a new task"
        )


def enqueue(
    task: Task, now: datetime.datetime, reason: str | None, instructions: str | None = None
) -> Task:
    """Queue the task's next run: its first turn (``pending``), or a follow-up (``instructions``
    recorded now, from a resumable status). It starts later, by :func:`start_run`."""
    _check_open(task, "queue a run of")
    if task.status == "pending":
        if instructions is not None:
            raise InvalidTransition(
                f"cannot add instructions to task {task.id}: its first turn has not run yet"
            )
        turns = task.turns
    elif task.status in RESUMABLE:
        if instructions is None:
            raise InvalidTransition(f"a follow-up turn of task {task.id} needs instructions")
        turns = (*task.turns, Turn(instructions=instructions, at=now))
    else:
        raise refuse(task, "queue a run of", "pending, " + ", ".join(sorted(RESUMABLE)))
    return attrs.evolve(
        task, status="queued", turns=turns, queued_at=now, queue_reason=reason, updated_at=now
    )


def requeue(task: Task, now: datetime.datetime, reason: str | None) -> Task:
    """A started run the daemon refused (busy) goes back to the head of the queue (of its
    priority: ``queued_at`` is the task's creation), ``queued`` with no run counted."""
    if not task.running:
        raise refuse(task, "requeue", "in_progress, input_required")
    return attrs.evolve(
        task,
        status="queued",
        runs=max(0, task.runs - 1),
        queued_at=task.created_at,
        queue_reason=reason,
        updated_at=now,
        pending=(),
    )


def dequeue(task: Task, now: datetime.datetime) -> Task:
    """A queued run is called off before it started (its MCP task was cancelled): ``cancelled``
    (a follow-up may start again); the turn it held stays in the record, never run."""
    if task.status != "queued":
        raise refuse(task, "dequeue", "queued")
    return attrs.evolve(task, status="cancelled", queued_at=None, queue_reason=None, updated_at=now)


def limited(task: Task, limit: UsageLimit, report: RunReport, now: datetime.datetime) -> Task:
    """The run hit a usage limit: ``limited`` until the limit resets; the scheduler resumes it
    (its queue place: the time the limit was hit)."""
    if not task.running:
        raise refuse(task, "limit", "in_progress, input_required")
    commits = task.commits if report.commit is None else (*task.commits, report.commit)
    return attrs.evolve(
        task,
        status="limited",
        report=report,
        limit=limit,
        session_id=report.session_id or task.session_id,
        queued_at=now,
        queue_reason=None,
        updated_at=now,
        commits=commits,
        pending=(),
    )


def record_session(task: Task, session_id: str, now: datetime.datetime) -> Task:
    """Remember the agent's conversation id (from its init event) for later follow-ups."""
    if not task.running:
        raise refuse(task, "record a session for", "in_progress, input_required")
    return attrs.evolve(task, session_id=session_id, updated_at=now)


def finish_run(
    task: Task, report: RunReport, now: datetime.datetime, *, asked_to_stop: bool = False
) -> Task:
    """A run ended: ``waiting`` on success, ``cancelled`` when cancelled, else ``failed``.

    A run the client interrupted (``interrupt_task``: ``asked_to_stop`` and outcome
    ``interrupted``) leaves the task ``waiting`` for its next turn. Requests still pending are
    dropped (the daemon resolved them ``closed``).
    """
    if not task.running:
        raise refuse(task, "finish a run of", "in_progress, input_required")
    status: TaskStatus
    if report.outcome == "success" or (asked_to_stop and report.outcome == "interrupted"):
        status = "waiting"
    elif report.outcome == "cancelled":
        status = "cancelled"
    elif report.outcome == "interrupted":
        status = "interrupted"
    else:
        status = "failed"
    commits = task.commits if report.commit is None else (*task.commits, report.commit)
    return attrs.evolve(
        task,
        status=status,
        report=report,
        session_id=report.session_id or task.session_id,
        updated_at=now,
        commits=commits,
        pending=(),
    )


def ask(task: Task, request: PendingApproval, now: datetime.datetime) -> Task:
    """The agent asks for permission: the task is ``input_required`` until it is decided."""
    if not task.running:
        raise refuse(task, "ask for a decision in", "in_progress, input_required")
    if task.pending_request(request.request_id) is not None:
        return task
    return attrs.evolve(
        task, status="input_required", pending=(*task.pending, request), updated_at=now
    )


def answered(task: Task, request_id: str, now: datetime.datetime) -> Task:
    """A permission request was decided: back to ``in_progress`` once none is pending."""
    if task.pending_request(request_id) is None:
        return task
    pending = tuple(p for p in task.pending if p.request_id != request_id)
    status: TaskStatus = task.status
    if not pending and task.status == "input_required":
        status = "in_progress"
    return attrs.evolve(task, status=status, pending=pending, updated_at=now)


def grant(task: Task, rule: str, now: datetime.datetime) -> Task:
    """A person allowed ``rule`` for the rest of the task (passed to every later turn)."""
    if rule in task.granted_rules:
        return task
    return attrs.evolve(task, granted_rules=(*task.granted_rules, rule), updated_at=now)


def interrupt(task: Task, now: datetime.datetime) -> Task:
    """The process that ran the task stopped (crash or shutdown) before the run ended; its
    pending requests went with it (the daemon ended the session)."""
    if task.status != "pending" and not task.running:
        raise refuse(task, "interrupt", "pending, in_progress, input_required")
    return attrs.evolve(task, status="interrupted", updated_at=now, pending=())


def end(task: Task, now: datetime.datetime) -> Task:
    """Close the task for good (the runner stops any run in flight first)."""
    if task.status == "completed":
        raise refuse(task, "end", "any status but completed")
    return attrs.evolve(
        task,
        status="completed",
        completed_at=now,
        updated_at=now,
        pending=(),
        queued_at=None,
        queue_reason=None,
        limit=None,
    )


def count_events(task: Task, event_count: int) -> Task:
    """Record how many events the task's log holds (not a status change)."""
    if event_count < task.event_count:
        raise InvalidTransition(
            f"event count of task {task.id} cannot go back from {task.event_count} to {event_count}"
        )
    return attrs.evolve(task, event_count=event_count)


def next_event(
    last_seq: int,
    *,
    kind: EventKind,
    summary: str,
    now: datetime.datetime,
    data: dict[str, Any] | None = None,
    raw: str | None = None,
    daemon_seq: int | None = None,
) -> TaskEvent:
    """The event that follows ``last_seq`` in a task's log."""
    return TaskEvent(last_seq + 1, now, kind, summary, data, raw, daemon_seq)
