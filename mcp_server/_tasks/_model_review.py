"""The review transitions of a worktree task (merge, discard): pure functions on a :class:`Task`,
beside the run transitions in ``_model``."""

from __future__ import annotations

import datetime

import attrs

from ._model import InvalidTransition, Task, TaskStatus, refuse

__all__ = ["check_reviewable", "discarded", "merged"]


def check_reviewable(task: Task, action: str, *, running: bool = False) -> None:
    """Refuse to merge or discard a task that has no open worktree, or (unless ``running`` is
    allowed) a run in flight."""
    if task.worktree is None:
        raise InvalidTransition(
            f"cannot {action} task {task.id}: it has no worktree ({task.isolation_text()})"
        )
    if task.review is not None:
        raise InvalidTransition(f"cannot {action} task {task.id}: it was already {task.review}")
    if task.running and not running:
        raise refuse(task, action, "any status but in_progress, input_required")


def merged(task: Task, now: datetime.datetime) -> Task:
    """The task's branch landed in its base branch: the task is ``completed``."""
    check_reviewable(task, "merge")
    return attrs.evolve(
        task,
        status="completed",
        review="merged",
        completed_at=task.completed_at or now,
        updated_at=now,
    )


def discarded(task: Task, now: datetime.datetime) -> Task:
    """The task's worktree and branch were removed: ``cancelled`` (an ended task stays
    ``completed``, which is final)."""
    check_reviewable(task, "discard")
    status: TaskStatus = "completed" if task.status == "completed" else "cancelled"
    return attrs.evolve(
        task,
        status=status,
        review="discarded",
        completed_at=task.completed_at or now,
        updated_at=now,
    )
