"""The queue's transitions, its order, the capacity and project gates, and old records."""

from __future__ import annotations

import datetime

import attrs
import cattrs
import orjson
import pytest

from mcp_server._tasks._convert import describe_error
from mcp_server._tasks._files import decode_task, encode_task
from mcp_server._tasks._model import (
    RESUMABLE,
    WAITING_TO_START,
    InvalidTransition,
    RunReport,
    Task,
    TaskOptions,
    UsageLimit,
    WorktreeRecord,
    end,
    enqueue,
    finish_run,
    limited,
    new_task,
    requeue,
    start_run,
)
from mcp_server._tasks._schedule import (
    CapacityGate,
    ProjectGate,
    Scheduler,
    queue_order,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def make(seq: int = 0, *, cwd: str = "/w/a", priority: str = "normal", **kw: object) -> Task:
    task = new_task(
        title="t",
        instructions="do it",
        agent="claude",
        project_dir=cwd.removeprefix("/w/"),
        cwd=cwd,
        options=TaskOptions(),
        now=T0,
        priority=priority,  # type: ignore[arg-type]
    )
    return attrs.evolve(task, seq=seq, **kw)


def done(task: Task) -> Task:
    report = RunReport(outcome="success", started_at=T0, finished_at=T0)
    return finish_run(start_run(task, T0), report, T0)


def test_enqueue_pending_keeps_its_first_turn() -> None:
    """A pending task queued: status queued, queued_at and reason set, one turn, no run."""
    task = enqueue(make(), at(1), "busy")
    assert (task.status, task.queued_at, task.queue_reason) == ("queued", at(1), "busy")
    assert (len(task.turns), task.runs) == (1, 0)


@pytest.mark.parametrize("status", sorted(RESUMABLE))
def test_enqueue_follow_up_records_its_turn(status: str) -> None:
    """A follow-up queued records its instructions at once; starting it adds no turn."""
    base = done(make())
    task = attrs.evolve(base, status=status)
    queued = enqueue(task, at(2), None, "again")
    assert [t.instructions for t in queued.turns] == ["do it", "again"]
    started = start_run(queued, at(3))
    assert ([t.instructions for t in started.turns], started.runs) == (["do it", "again"], 2)
    assert (started.queued_at, started.queue_reason) == (None, None)


def test_enqueue_refuses_a_running_or_queued_task() -> None:
    """A run in flight or already queued cannot be queued again."""
    with pytest.raises(InvalidTransition, match="it is in_progress"):
        enqueue(start_run(make(), T0), T0, None, "more")
    with pytest.raises(InvalidTransition, match="it is queued"):
        enqueue(enqueue(make(), T0, None), T0, None, "more")


@pytest.mark.parametrize("status", sorted(WAITING_TO_START))
def test_start_run_from_waiting(status: str) -> None:
    """A queued or limited task starts its recorded turn; limit and queue fields clear."""
    task = enqueue(make(), T0, "r")
    if status == "limited":
        task = limited(
            start_run(task, T0),
            UsageLimit("claude", at(60), T0),
            RunReport(outcome="error", started_at=T0, finished_at=T0, session_id="s"),
            at(1),
        )
        assert (task.status, task.queued_at, task.session_id) == ("limited", at(1), "s")
    started = start_run(task, at(2))
    assert (started.status, started.limit, started.queued_at) == ("in_progress", None, None)
    with pytest.raises(InvalidTransition, match="queued turn"):
        start_run(task, at(2), "more")


@pytest.mark.parametrize("status", sorted(WAITING_TO_START))
def test_end_dequeues(status: str) -> None:
    """end on a queued or limited task: completed with no run."""
    task = enqueue(make(), T0, "r")
    if status == "limited":
        report = RunReport(outcome="error", started_at=T0, finished_at=T0)
        task = limited(start_run(task, T0), UsageLimit("claude", None, T0), report, T0)
    ended = end(task, at(1))
    assert (ended.status, ended.queued_at, ended.limit) == ("completed", None, None)


def test_requeue_goes_back_to_the_head() -> None:
    """A start the daemon refused: queued again ahead of later ones, the run not counted."""
    started = start_run(enqueue(make(), at(5), "r"), at(6))
    again = requeue(started, at(7), "the daemon is busy")
    later = enqueue(make(1), at(6), None)
    assert (again.status, again.queued_at, again.runs) == ("queued", T0, 0)
    assert queue_order([later, again]) == [again, later]


def test_limited_refuses_a_task_not_running() -> None:
    """Only a run in flight can hit a usage limit."""
    report = RunReport(outcome="error", started_at=T0, finished_at=T0)
    with pytest.raises(InvalidTransition, match="it is pending"):
        limited(make(), UsageLimit("claude", None, T0), report, T0)


def test_queue_order_priority_then_age_then_seq() -> None:
    """High before normal before low; then queued_at; then creation seq."""
    low = enqueue(make(1, priority="low"), at(0), None)
    normal_late = enqueue(make(2), at(5), None)
    normal_early_b = enqueue(make(4), at(1), None)
    normal_early_a = enqueue(make(3), at(1), None)
    high = enqueue(make(5, priority="high"), at(9), None)
    order = queue_order([low, normal_late, normal_early_b, high, normal_early_a, make(6)])
    assert [t.seq for t in order] == [5, 3, 4, 2, 1]


def test_plan_starts_up_to_capacity_in_order() -> None:
    """With two slots and one in flight, the head starts; the rest wait with positions."""
    running: list[Task] = [start_run(make(0, cwd="/w/x"), T0)]
    capacity = CapacityGate(lambda: len(running), max_runs=2)
    scheduler = Scheduler([capacity, ProjectGate(lambda: running)])
    queued = [enqueue(make(i, cwd=f"/w/p{i}"), at(i), None) for i in (1, 2, 3)]
    plan = scheduler.plan(queued, at(10), running.append)
    assert [t.seq for t in plan.start] == [1]
    assert [(w.position, w.reason) for w in plan.waiting] == [
        (1, "the daemon runs at most 2 at once (2 in flight)"),
        (2, "the daemon runs at most 2 at once (2 in flight)"),
    ]


def test_plan_blocked_head_does_not_starve_another_project() -> None:
    """The head's project is busy: the next task, of another project, starts."""
    running: list[Task] = [start_run(make(0, cwd="/w/a"), T0)]
    scheduler = Scheduler(
        [CapacityGate(lambda: len(running), max_runs=4), ProjectGate(lambda: running)]
    )
    head = enqueue(make(1, cwd="/w/a"), at(1), None)
    other = enqueue(make(2, cwd="/w/b"), at(2), None)
    plan = scheduler.plan([head, other], at(3), running.append)
    assert [t.seq for t in plan.start] == [2]
    assert plan.waiting[0].reason is not None
    assert plan.waiting[0].reason.startswith("project a has a run in flight")


def test_project_gate_nested_dirs_and_worktrees() -> None:
    """A dir inside a busy one waits; a worktree task never waits for its repo's others."""
    busy = [start_run(make(0, cwd="/w/a"), T0)]
    gate = ProjectGate(lambda: busy)
    assert gate.blocks(make(1, cwd="/w/a/sub"), T0) is not None
    assert gate.blocks(make(2, cwd="/w/ab"), T0) is None
    worktree = WorktreeRecord("b", "main", "c0ffee", "/w/a", "")
    assert gate.blocks(make(3, cwd="/wt/3", worktree=worktree), T0) is None


def test_capacity_refusal_caps_until_retry_or_free() -> None:
    """After a busy refusal no more start until the retry time, or until one of ours ends."""
    running = [1]
    gate = CapacityGate(lambda: len(running), max_runs=4)
    task = make()
    assert gate.blocks(task, T0) is None
    gate.refused(T0)
    assert gate.blocks(task, at(0.5)) is not None
    assert gate.next_change(T0) == at(1)
    assert gate.blocks(task, at(1)) is None
    gate.refused(at(1))
    assert gate.next_change(at(1)) == at(3)  # backoff: 1, 2, 4 … s
    gate.freed()
    assert (gate.blocks(task, at(1)), gate.next_change(at(1))) == (None, None)


def test_plan_wakes_at_the_earliest_gate_change() -> None:
    """The plan's wake time is the earliest next_change of its gates."""
    gate = CapacityGate(lambda: 1, max_runs=1)
    gate.refused(T0)
    plan = Scheduler([gate]).plan([enqueue(make(), T0, None)], T0, lambda t: None)
    assert (plan.start, plan.wake_at) == ((), at(1))


def test_record_without_queue_fields_loads() -> None:
    """A record written before the queue (no priority, queued_at, …) loads with defaults."""
    data = orjson.loads(encode_task(make()))
    for key in ("priority", "queued_at", "queue_reason", "limit"):
        del data[key]
    del data["options"]["notify_url"]
    task = decode_task(orjson.dumps(data))
    assert (task.priority, task.queued_at, task.limit, task.options.notify_url) == (
        "normal",
        None,
        None,
        None,
    )


def test_record_round_trips_queue_fields_and_stays_strict() -> None:
    """A queued, limited record round-trips; a bad priority or an extra key is refused."""
    task = enqueue(make(priority="high"), at(1), "r")
    report = RunReport(outcome="error", started_at=T0, finished_at=T0)
    held = limited(start_run(task, T0), UsageLimit("claude", at(9), T0, 2, "m"), report, T0)
    assert decode_task(encode_task(held)) == held
    data = orjson.loads(encode_task(task))
    with pytest.raises(cattrs.BaseValidationError) as bad:
        decode_task(orjson.dumps(data | {"priority": "urgent"}))
    assert "@ $.priority" in describe_error(bad.value)
    with pytest.raises(cattrs.BaseValidationError) as extra:
        decode_task(orjson.dumps(data | {"queue_place": 3}))
    assert "queue_place" in describe_error(extra.value)
