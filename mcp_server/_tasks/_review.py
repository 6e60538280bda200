"""Reviewing a worktree task's work: its diff and commits, then merge or discard.

The daemon does the git side (all or nothing: a refused merge leaves the user's checkout as it
was); the runner's state machine records the outcome (``merged``: the task is ``completed``;
``discarded``: ``cancelled``). While a merge or discard is in flight the task is held: no run
starts (:meth:`TaskRunner.hold`), and a merge is refused while a run is in flight.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import attrs

from host_daemon import CommitsDone, DiffDone, DiscardDone, MergeDone, MergeStrategy

from ._errors import TaskBusy, TaskNotFound
from ._model import Task
from ._model_review import check_reviewable, discarded, merged
from ._runner import TaskRunner
from ._store import UnknownTask


@attrs.frozen
class TaskReview:
    """Merge, discard and read the worktrees of the runner's tasks."""

    runner: TaskRunner

    def _open_worktree(self, task_id: str, action: str) -> Task:
        """The task, if its worktree can be reviewed now (``busy`` while a run is in flight)."""
        task = self.runner.get(task_id)
        if self.runner.is_running(task_id):
            raise TaskBusy(task_id)
        check_reviewable(task, action)
        return task

    async def diff(self, task_id: str) -> DiffDone:
        task = self._readable(task_id)
        return await self.runner.worktrees_for(task).diff(task_id)

    async def commits(self, task_id: str) -> CommitsDone:
        task = self._readable(task_id)
        return await self.runner.worktrees_for(task).commits(task_id)

    def _readable(self, task_id: str) -> Task:
        task = self.runner.get(task_id)
        if not task.has_open_worktree:
            check_reviewable(task, "read the worktree of")
        return task

    async def merge(
        self, task_id: str, strategy: MergeStrategy, message: str | None
    ) -> tuple[Task, MergeDone]:
        """Land the task's branch in its base branch; the task is then ``completed``."""
        self._open_worktree(task_id, "merge")
        with self.runner.hold(task_id):
            task = self._open_worktree(task_id, "merge")
            await self.runner.live.close_session(task_id)  # no agent sits in a merged worktree
            done = await self.runner.worktrees_for(task).merge(task_id, strategy, message)
            where = f"merged into {done.base_branch} at {done.commit[:12]} ({done.strategy})"
            data = {
                "review": "merged",
                "base_branch": done.base_branch,
                "commit": done.commit,
                "strategy": done.strategy,
                "files": done.files[:200],
                "checkout_updated": done.checkout_updated,
            }
            task = await self._record(task_id, merged, where, data)
        return task, done

    async def discard(self, task_id: str) -> tuple[Task, DiscardDone]:
        """Stop a run in flight, remove the worktree and its branch; the task is ``cancelled``."""
        while True:
            check_reviewable(self.runner.get(task_id), "discard", running=True)
            while self.runner.is_running(task_id):
                await self.runner.stop(task_id)
            try:
                with self.runner.hold(task_id):
                    task = self._open_worktree(task_id, "discard")
                    await self.runner.live.close_session(task_id)
                    done = await self.runner.worktrees_for(task).discard(task_id)
                    why = "worktree and branch discarded"
                    task = await self._record(task_id, discarded, why, {"review": "discarded"})
                    return task, done
            except TaskBusy:
                if not self.runner.is_running(task_id):
                    raise  # another merge or discard holds it
                # a follow-up started between the stop and the hold: stop it too

    async def _record(
        self,
        task_id: str,
        change: Callable[[Task, datetime.datetime], Task],
        why: str,
        data: dict[str, Any],
    ) -> Task:
        """Record the review's outcome with a ``status`` event saying it."""
        clock = self.runner.clock

        def events(task: Task) -> list[dict[str, Any]]:
            summary = f"{task.status}: {why}"
            return [{"kind": "status", "summary": summary, "data": {"status": task.status} | data}]

        try:
            task = await self.runner.store.commit(
                task_id, lambda t: change(t, clock.wall()), events
            )
        except UnknownTask:
            raise TaskNotFound(task_id) from None
        self.runner.notify(task_id, "transition")
        return task
