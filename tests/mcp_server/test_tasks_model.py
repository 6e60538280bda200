"""The task state machine: every transition, valid and invalid."""

from __future__ import annotations

import datetime
import uuid

import pytest

from mcp_server._tasks._model import (
    RESUMABLE,
    RUNNING,
    TASK_STATUSES,
    InvalidTransition,
    PendingApproval,
    RunOutcome,
    RunReport,
    Task,
    TaskOptions,
    TaskStatus,
    UsageLimit,
    ask,
    count_events,
    end,
    enqueue,
    finish_run,
    interrupt,
    limited,
    new_task,
    next_event,
    record_session,
    start_run,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(seconds=5)


def make(status: TaskStatus = "pending") -> Task:  # noqa: PLR0911 (one branch per status)
    task = new_task(
        title="t",
        instructions="do it",
        agent="claude",
        project_dir="",
        cwd="/w",
        options=TaskOptions(),
        now=T0,
    )
    if status == "pending":
        return task
    if status == "queued":
        return enqueue(task, T0, "the daemon runs at most 1 at once (1 in flight)")
    task = start_run(task, T0)
    if status == "limited":
        return limited(task, UsageLimit("claude", T1, T0), report("error"), T0)
    if status == "in_progress":
        return task
    if status == "input_required":
        return ask(task, PendingApproval("r1", "Bash", {"command": "ls"}, T0, T1), T0)
    if status == "interrupted":
        return interrupt(task, T0)
    if status == "completed":
        return end(task, T0)
    outcomes: dict[str, RunOutcome] = {
        "waiting": "success",
        "failed": "error",
        "cancelled": "cancelled",
    }
    outcome = outcomes[status]
    return finish_run(task, report(outcome), T0)


def report(outcome: RunOutcome, session_id: str | None = None) -> RunReport:
    return RunReport(outcome=outcome, started_at=T0, finished_at=T1, session_id=session_id)


def test_new_task_is_pending_with_first_turn() -> None:
    """A new task is pending, has a uuid4 id, one turn and tz-aware timestamps."""
    task = make()
    assert task.status == "pending"
    assert uuid.UUID(task.id).version == 4
    assert [turn.instructions for turn in task.turns] == ["do it"]
    assert task.created_at.tzinfo is not None


def test_start_first_run() -> None:
    """pending → in_progress sets started_at and counts the run."""
    task = start_run(make(), T1)
    assert (task.status, task.started_at, task.runs) == ("in_progress", T1, 1)


def test_first_run_refuses_extra_instructions() -> None:
    """The first run of a pending task takes no new instructions."""
    with pytest.raises(InvalidTransition, match="first turn"):
        start_run(make(), T1, "more")


@pytest.mark.parametrize("status", sorted(RESUMABLE))
def test_follow_up_from_resumable(status: TaskStatus) -> None:
    """A follow-up from waiting, failed, cancelled or interrupted adds a turn and runs."""
    task = start_run(make(status), T1, "again")
    assert task.status == "in_progress"
    assert [turn.instructions for turn in task.turns] == ["do it", "again"]
    assert task.runs == 2
    assert task.started_at == T0


@pytest.mark.parametrize("status", sorted(RESUMABLE))
def test_follow_up_needs_instructions(status: TaskStatus) -> None:
    """A follow-up without instructions is refused."""
    with pytest.raises(InvalidTransition, match="needs instructions"):
        start_run(make(status), T1)


@pytest.mark.parametrize("status", ["in_progress", "input_required", "completed"])
def test_start_run_refused(status: TaskStatus) -> None:
    """A run cannot start while one runs or after the task ended."""
    with pytest.raises(InvalidTransition, match=f"it is {status}"):
        start_run(make(status), T1, "again")


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("success", "waiting"),
        ("error", "failed"),
        ("timed_out", "failed"),
        ("killed", "failed"),
        ("cancelled", "cancelled"),
        ("interrupted", "interrupted"),
    ],
)
@pytest.mark.parametrize("running", sorted(RUNNING))
def test_finish_run(outcome: RunOutcome, status: TaskStatus, running: TaskStatus) -> None:
    """A run's outcome decides the status; the report and session id are kept."""
    task = finish_run(make(running), report(outcome, "s-1"), T1)
    assert task.status == status
    assert task.report is not None
    assert task.report.outcome == outcome
    assert task.session_id == "s-1"
    assert task.updated_at == T1


@pytest.mark.parametrize("status", [s for s in TASK_STATUSES if s not in RUNNING])
def test_finish_run_refused(status: TaskStatus) -> None:
    """Only a running task can finish a run."""
    with pytest.raises(InvalidTransition, match="allowed from in_progress, input_required"):
        finish_run(make(status), report("success"), T1)


def test_record_session() -> None:
    """A running task remembers the agent's session id."""
    assert record_session(make("in_progress"), "abc", T1).session_id == "abc"


@pytest.mark.parametrize("status", [s for s in TASK_STATUSES if s not in RUNNING])
def test_record_session_refused(status: TaskStatus) -> None:
    """A session id is only recorded while a run is in progress."""
    with pytest.raises(InvalidTransition):
        record_session(make(status), "abc", T1)


@pytest.mark.parametrize("status", ["pending", "in_progress", "input_required"])
def test_interrupt(status: TaskStatus) -> None:
    """A pending or running task becomes interrupted (its pending requests are dropped)."""
    task = interrupt(make(status), T1)
    assert (task.status, task.pending) == ("interrupted", ())


@pytest.mark.parametrize("status", sorted(set(TASK_STATUSES) - {"pending"} - RUNNING))
def test_interrupt_refused(status: TaskStatus) -> None:
    """Only a pending or running task can be interrupted."""
    with pytest.raises(InvalidTransition):
        interrupt(make(status), T1)


@pytest.mark.parametrize("status", [s for s in TASK_STATUSES if s != "completed"])
def test_end(status: TaskStatus) -> None:
    """Any task but a completed one can be ended; completed_at is set."""
    task = end(make(status), T1)
    assert (task.status, task.completed_at) == ("completed", T1)


def test_end_refused_twice() -> None:
    """Ending a completed task is refused with a clear message."""
    with pytest.raises(InvalidTransition, match=r"cannot end task .*: it is completed"):
        end(make("completed"), T1)


def test_count_events_never_goes_back() -> None:
    """The event count only grows."""
    task = count_events(make(), 5)
    assert task.event_count == 5
    with pytest.raises(InvalidTransition):
        count_events(task, 4)


def test_next_event_is_contiguous() -> None:
    """Each event's seq follows the last one."""
    first = next_event(0, kind="turn", summary="a", now=T0)
    second = next_event(first.seq, kind="status", summary="b", now=T1)
    assert (first.seq, second.seq) == (1, 2)
