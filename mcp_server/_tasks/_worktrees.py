"""The server's side of task worktrees: asks the daemon (which runs every git command) to make,
commit, show, merge, discard and sweep them. A thin trio adapter over the daemon's client
coroutines; names and messages come from :mod:`._isolation` (sans-IO).

Every daemon failure becomes a :class:`WorktreeFailed` with the daemon's code and message (git's
own text, the conflicting files), which a tool answers as its error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import attrs
import trio

from host_daemon import (
    CommitDone,
    CommitsDone,
    DaemonError,
    DiffDone,
    DiscardDone,
    MergeDone,
    MergeStrategy,
    SweepDone,
    WorktreeCommit,
    WorktreeCommits,
    WorktreeCreate,
    WorktreeDiff,
    WorktreeDiscard,
    WorktreeMerge,
    WorktreeSkipped,
    WorktreeSweep,
    commit_worktree,
    create_worktree,
    diff_worktree,
    discard_worktree,
    merge_worktree,
    sweep_worktrees,
    worktree_commits,
)

from ._errors import WorktreeFailed
from ._isolation import branch_name, commit_message, commit_summary, worktree_record
from ._model import Isolation, RunReport, Task, WorktreeRecord
from ._workspace import DaemonEndpoint

log = logging.getLogger("mcp_server.tasks")

GIT_TIMEOUT_S = 120.0
"""How long one worktree operation may take daemon-side and on the wire (git on a big repo)."""
COMMIT_TIMEOUT_S = 60.0
"""A turn's commit waits at most this long (it runs shielded, after the run ended)."""
SWEEP_INTERVAL_S = 600.0
"""How often the runner asks the daemon to remove worktrees whose task is gone."""

R = TypeVar("R")


@attrs.frozen
class Isolated:
    """Where a new task runs: its worktree, or none and why."""

    isolation: Isolation
    note: str
    worktree: WorktreeRecord | None = None


@attrs.define(eq=False)
class TaskWorktrees:
    """The worktree operations of tasks, through the daemon at ``daemon``.

    A sweep and the creates never overlap: a sweep waits for the creates in flight, and creates
    wait for the sweep, so no worktree is made between the sweep's list of tasks and its work.
    """

    daemon: DaemonEndpoint
    label: str = "daemon"
    """How errors name the daemon (``daemon of host laptop`` beside other hosts)."""
    timeout_s: float = GIT_TIMEOUT_S
    _sweeping: trio.Lock = attrs.field(factory=trio.Lock, init=False)
    _creating: int = attrs.field(default=0, init=False)
    _no_creates: trio.Event = attrs.field(factory=trio.Event, init=False)

    async def _ask(self, call: Callable[..., Awaitable[R]], request: object) -> R:
        daemon = self.daemon
        try:
            return await call(
                daemon.host, daemon.port, daemon.token, request, timeout=self.timeout_s
            )
        except DaemonError as exc:
            raise WorktreeFailed(exc.code, f"{self.label}: {exc.code}: {exc.message}") from None
        except OSError as exc:
            why = f"{self.label} connection failed: {exc}"
            raise WorktreeFailed("daemon_unavailable", why) from None

    async def create(
        self,
        task: Task,
        isolation: Isolation | None,
        base_ref: str | None,
        include_uncommitted: bool,
    ) -> Isolated:
        """Make the task's worktree, unless isolation is ``none`` or (``None``: automatic) the
        daemon found nothing to isolate (not a git repository); :class:`WorktreeFailed` else."""
        if isolation == "none":
            return Isolated("none", "asked for by the client")
        request = WorktreeCreate(
            key=task.id,
            cwd=task.cwd,
            branch=branch_name(task.id, task.title),
            base_ref=base_ref,
            include_uncommitted=include_uncommitted,
            required=isolation == "worktree",
        )
        async with self._sweeping:
            if self._creating == 0:
                self._no_creates = trio.Event()
            self._creating += 1
        try:
            reply = await self._ask(create_worktree, request)
        finally:
            self._creating -= 1
            if self._creating == 0:
                self._no_creates.set()
        if isinstance(reply, WorktreeSkipped):
            return Isolated("none", reply.reason)
        return Isolated("worktree", f"branch {reply.branch}", worktree_record(reply))

    async def commit(self, task_id: str, message: str) -> CommitDone:
        """Commit what the turn changed on the task's branch (``commit`` None: nothing did)."""
        return await self._ask(commit_worktree, WorktreeCommit(key=task_id, message=message))

    async def commit_turn(
        self, task: Task, report: RunReport, note: Callable[[str, dict[str, Any]], None]
    ) -> RunReport:
        """Commit what the turn changed on the task's branch, bounded by ``COMMIT_TIMEOUT_S``;
        ``note`` logs the ``commit`` event (the commit, or why there is none: a failure never
        fails the task). Returns the report with the commit."""
        message = commit_message(task.id, len(task.turns), task.turns[-1].instructions, report)
        with trio.move_on_after(COMMIT_TIMEOUT_S) as bounded:
            try:
                done = await self.commit(task.id, message)
            except WorktreeFailed as exc:
                note(f"commit failed: {exc}", {"error": str(exc)})
                return report
            except Exception as exc:
                # A bug here must not keep the run's end from being recorded.
                log.exception("task %s: the turn's commit failed unexpectedly", task.id)
                why = f"commit failed: internal error: {type(exc).__name__}"
                note(why, {"error": why})
                return report
        if bounded.cancelled_caught:
            why = f"commit failed: no answer from the daemon in {COMMIT_TIMEOUT_S:g} s"
            note(why, {"error": why})
            return report
        note(commit_summary(done.commit, done.files), {"commit": done.commit, "files": done.files})
        return report if done.commit is None else attrs.evolve(report, commit=done.commit)

    async def diff(self, task_id: str) -> DiffDone:
        return await self._ask(diff_worktree, WorktreeDiff(key=task_id))

    async def commits(self, task_id: str) -> CommitsDone:
        return await self._ask(worktree_commits, WorktreeCommits(key=task_id))

    async def merge(self, task_id: str, strategy: MergeStrategy, message: str | None) -> MergeDone:
        request = WorktreeMerge(key=task_id, strategy=strategy, message=message)
        return await self._ask(merge_worktree, request)

    async def discard(self, task_id: str) -> DiscardDone:
        return await self._ask(discard_worktree, WorktreeDiscard(key=task_id))

    async def sweep(self, keep: Callable[[], Iterable[str]]) -> SweepDone | None:
        """Remove the worktrees of tasks not in ``keep()`` (asked once no create is in flight);
        ``None`` when the daemon could not (logged at debug: the next sweep retries)."""
        async with self._sweeping:
            if self._creating:
                await self._no_creates.wait()
            request = WorktreeSweep(keep=sorted(keep()))
            try:
                done = await self._ask(sweep_worktrees, request)
            except WorktreeFailed as exc:
                log.debug("worktree sweep skipped: %s", exc)
                return None
        if done.removed:
            log.info("worktree sweep removed %s", ", ".join(done.removed))
        if done.kept_branches:
            log.warning(
                "worktree sweep kept branches holding commits: %s", ", ".join(done.kept_branches)
            )
        return done

    async def sweep_every(self, interval_s: float, keep: Callable[[], Iterable[str]]) -> None:
        """Sweep now, then every ``interval_s``, keeping the worktrees ``keep()`` names."""
        while True:
            await self.sweep(keep)
            await trio.sleep(interval_s)
