"""The run path of :class:`TaskRunner`: one turn's run through the daemon, from its stream's
events to its recorded end (or, refused as busy, its return to the queue).

A mixin, so the runner's module stays about commands and lifetime; the attributes it reads are
the runner's (declared here for the type checker).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import attrs
import trio

from host_daemon import (
    AgentEvent,
    DaemonError,
    InputAccepted,
    PermissionRequest,
    PermissionResolved,
    RunEvent,
    RunFinished,
    RunStarted,
)

from ._budgets import Spending, crossing_text
from ._errors import TaskNotFound
from ._holds import UsageLimits
from ._hosts import DEFAULT_HOST, HostTable, UnknownHost, daemon_label
from ._model import Clock, RunReport, Task, finish_run, record_session, requeue
from ._reattach import RunFollowing, run_so_far
from ._report import ReportBuilder, event_data, summarize
from ._store import StateWriteError, TaskStore, UnknownTask
from ._turn import RunInFlight, run_request

if TYPE_CHECKING:
    from ._live import LiveDesk
    from ._queue import TaskQueue
    from ._worktrees import TaskWorktrees

log = logging.getLogger("mcp_server.tasks")


class TurnRunning(RunFollowing):
    """Runs one turn and records its end; mixed into :class:`TaskRunner`."""

    hosts: HostTable
    start_timeout_s: float
    live_idle_s: float
    clock: Clock
    store: TaskStore
    live: LiveDesk
    queue: TaskQueue
    limits: UsageLimits
    spending: Spending
    _active: dict[str, RunInFlight]

    if TYPE_CHECKING:

        def get(self, task_id: str) -> Task: ...

        def worktrees_for(self, task: Task) -> TaskWorktrees: ...

        def notify(self, task_id: str, kind: Any, *, notice: str | None = None) -> None: ...

        def append(
            self,
            task_id: str,
            kind: Any,
            summary: str,
            data: dict[str, Any] | None = None,
            raw: str | None = None,
            *,
            daemon_seq: int | None = None,
        ) -> None: ...

    async def _run_turn(self, task_id: str, active: RunInFlight, resume: bool = False) -> None:
        """Run the task's latest turn (or, ``resume``, follow its run begun before a restart)
        and record its end; a run the server detaches from goes on in the daemon, unrecorded."""
        task = self.get(task_id)
        request = run_request(task, self.live_idle_s)
        # Seam (S3): the run may spend what is left of the task's max_budget_usd.
        request = attrs.evolve(request, max_budget_usd=self.spending.run_budget(task))
        builder = ReportBuilder(
            clock=self.clock, cwd=task.cwd, asked_session=request.resume_session_id
        )
        finished: RunFinished | None = None
        error: str | None = None
        try:
            with active.scope:
                lost_at = None
                if resume:
                    so_far = await run_so_far(self.store, task)
                    builder.resume(so_far.started_at, so_far.seen)
                    active.daemon_seq, lost_at = so_far.daemon_seq, so_far.lost_at
                finished = await self._follow(
                    task_id, active, None if resume else request, builder, lost_at
                )
        except StateWriteError as exc:
            error = active.failed("state_unwritable", f"run stopped: {exc}")
        except UnknownHost as exc:
            error = active.failed(exc.code, f"{exc}: the task's host is no longer configured")
        except DaemonError as exc:
            error = self._daemon_refused(task, active, exc)
        except OSError as exc:
            error = active.failed(
                "daemon_unavailable",
                f"{daemon_label(self.hosts, task.host)}: connection failed: {exc}",
            )
        except Exception as exc:
            # A bug here must fail this run, not the server and every other run with it.
            log.exception("task %s: the run failed unexpectedly", task_id)
            error = active.failed("internal_error", f"internal error: {type(exc).__name__}")
        finally:
            active.started.set()
            if active.control is not None:
                active.control.end()
            with trio.CancelScope(shield=True):
                await self._close_run(task, active, builder, finished, error)

    async def _close_run(
        self,
        task: Task,
        active: RunInFlight,
        builder: ReportBuilder,
        finished: RunFinished | None,
        error: str | None,
    ) -> None:
        """Let go of a run the server detaches from; else cancel what may be left of it on the
        daemon (its stream's end only detached it) and record its end."""
        if active.detaching:
            self._let_go(task.id, active)
            return
        try:
            if finished is None:
                await self._cancel_left_run(task, active)
        finally:
            await self._end_run(task.id, active, builder, finished, error)

    def _daemon_refused(self, task: Task, active: RunInFlight, exc: DaemonError) -> str | None:
        """The daemon's error as the run's, naming its host (``busy`` before the start: the
        run is requeued, no error)."""
        label = daemon_label(self.hosts, task.host)
        if exc.code == "busy" and not active.started.is_set():
            active.requeued = f"the {label} is busy ({exc.message}); it starts when it may"
            return None
        return active.failed(exc.code, f"{label}: {exc.code}: {exc.message}")

    async def _end_run(
        self,
        task_id: str,
        active: RunInFlight,
        builder: ReportBuilder,
        finished: RunFinished | None,
        error: str | None,
    ) -> None:
        """Record the run's end (or, refused as busy, its requeue) and free its slot."""
        try:
            if active.requeued is not None and active.stop_reason is None:
                await self._requeue(task_id, active.requeued)
            else:
                active.requeued = None
                report = builder.build(finished, error, active.stop_reason, active.stop_message)
                if active.reattached and report.outcome == "killed":
                    # The daemon ended it while no server followed it (its detach grace ran out,
                    # it shut down): like a restart's, the turn was interrupted.
                    report = attrs.evolve(report, outcome="interrupted")
                report = await self._commit_turn(task_id, report)
                seq = None if finished is None else finished.seq
                await self._finish(task_id, report, asked_to_stop=active.asked_to_stop, seq=seq)
        finally:
            self._active.pop(task_id, None)
            active.done.set()
            host = DEFAULT_HOST if active.task is None else active.task.host
            if active.requeued is not None:
                self.queue.refused(host)
            else:
                self.queue.freed(host)

    async def _consume(
        self,
        task_id: str,
        active: RunInFlight,
        stream: AsyncIterator[RunEvent],
        builder: ReportBuilder,
    ) -> RunFinished | None:
        """Store a run's events as they arrive; the run's ``RunFinished``, if it came."""
        finished: RunFinished | None = None
        async for event in stream:
            seq = None if isinstance(event, InputAccepted) else event.seq
            if seq is not None:
                if seq <= active.daemon_seq:
                    continue  # recorded before the stream was re-attached
                active.daemon_seq = seq
            if isinstance(event, RunStarted):
                data = {"pid": event.pid, "argv": event.argv, "cwd": event.cwd}
                if event.live:
                    data |= {"live": True, "reused": event.reused, "steerable": event.steerable}
                how = " (live, reused)" if event.reused else " (live)" if event.live else ""
                summary = f"run started: pid {event.pid}{how}"
                self.append(task_id, "run_started", summary, data, daemon_seq=seq)
            elif isinstance(event, AgentEvent):
                builder.see(event)
                summary = summarize(event)
                self.append(task_id, "agent", summary, event_data(event), event.raw, daemon_seq=seq)
                if event.kind == "init" and event.session_id:
                    await self._record_session(task_id, event.session_id)
                await self.store.backpressure(task_id)
            elif isinstance(event, PermissionRequest | PermissionResolved):
                await self.live.on_frame(task_id, active.control, event)
            elif isinstance(event, InputAccepted):
                if active.control is not None:
                    active.control.accepted(event)
            elif isinstance(event, RunFinished):
                finished = event
        return finished

    async def _record_session(self, task_id: str, session_id: str) -> None:
        if self.get(task_id).session_id == session_id:
            return
        try:
            await self.store.commit(
                task_id, lambda t: record_session(t, session_id, self.clock.wall())
            )
        except UnknownTask:
            raise TaskNotFound(task_id) from None

    async def _commit_turn(self, task_id: str, report: RunReport) -> RunReport:
        """The run's report with the commit of what the turn changed (a worktree task's)."""
        task = self.store.tasks.get(task_id)
        if task is None or not task.has_open_worktree:
            return report

        def note(summary: str, data: dict[str, Any]) -> None:
            self.append(task_id, "commit", summary, data)

        return await self.worktrees_for(task).commit_turn(task, report, note)

    async def _finish(
        self, task_id: str, report: RunReport, *, asked_to_stop: bool, seq: int | None = None
    ) -> None:
        """Record the run's end (``seq``: the number of its ``RunFinished`` frame)."""
        cost = "" if report.cost_usd is None else f", ${report.cost_usd:.4f}"
        turns = "" if report.num_turns is None else f", {report.num_turns} turns"
        # Seam (S3): the run goes into the ledger; the budgets it crossed end its turn for good.
        ran = self.store.tasks.get(task_id)
        crossed = [] if ran is None else await self.spending.run_finished(ran, report)
        budget = {"budget_crossed": [b.view() for b in crossed]} if crossed else {}
        why = f"; {crossing_text(crossed)}" if crossed else ""
        finished = change_event(
            "run_finished",
            f"run finished: {report.outcome}{turns}{cost}"
            + (f" ({shorten(report.error)})" if report.error else "")
            + why,
            {"outcome": report.outcome, "error": report.error, "cost_usd": report.cost_usd}
            | budget,
        )
        if seq is not None:
            finished["daemon_seq"] = seq

        def events(task: Task) -> list[dict[str, Any]]:
            status = change_event("status", task.status + why, {"status": task.status} | budget)
            return [finished, status]

        def finish(task: Task) -> Task:
            return finish_run(task, report, self.clock.wall(), asked_to_stop=asked_to_stop)

        # Usage limits (_holds): a limited run holds its agent's account; the task waits.
        task = self.store.tasks.get(task_id)
        change = await self.limits.finish_change(task, report, asked_to_stop) or finish

        self.live.turn_ended(self.store.tasks.get(task_id))
        try:
            task = await self.store.commit(task_id, change, events, defer=True)
        except UnknownTask:
            return  # deleted (clean_state) while the run was stopping
        log.info("task %s: run %d ended %s", task_id, task.runs, report.outcome)
        self.notify(task_id, "transition")
        if crossed:  # a live agent is not kept for a turn that would wait queued
            await self.live.close_session(task_id)

    async def _requeue(self, task_id: str, reason: str) -> None:
        """The daemon refused the start (busy): back to the head of the queue, not failed."""
        event = change_event("status", f"queued: {reason}", {"status": "queued", "reason": reason})
        self.live.turn_ended(self.store.tasks.get(task_id))
        try:
            await self.store.commit(
                task_id, lambda t: requeue(t, self.clock.wall(), reason), lambda t: [event]
            )
        except UnknownTask:
            return
        log.info("task %s: the daemon refused its start (%s): queued again", task_id, reason)
        self.notify(task_id, "transition")


def change_event(kind: str, summary: str, data: dict[str, Any]) -> dict[str, Any]:
    """A transition's event, as :meth:`TaskStore.commit` takes it."""
    return {"kind": kind, "summary": summary, "data": data}


def queued_event(reason: str) -> dict[str, Any]:
    return change_event("status", f"queued: {reason}", {"status": "queued", "reason": reason})


def shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
