"""Runs tasks' turns through the host daemon and writes every step through to the store.

The runner owns one nursery for the server's lifetime (:meth:`TaskRunner.run`); every run it
follows is a child of it holding the run's stream (a server that stops detaches; the next one
re-attaches: :mod:`._reattach`). Per task there is at most one run: a follow-up while a run is
in flight is refused with :class:`TaskBusy` (the client may ``wait_task`` and retry). A turn
that may not start yet (the daemon's runs are all taken, its project has a run in flight, a gate
holds it) is accepted ``queued``; the :class:`TaskQueue` starts it in order when it may.

The runner builds its store (from a :data:`StoreFactory`), passing the listener the store tells
what it wrote; it tells its own listener (the MCP layer's notices) each :class:`TaskChange`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Literal

import attrs
import trio

from host_daemon import AgentName

from ._budgets import Spending
from ._errors import ShuttingDown, TaskBusy, TaskError, TaskNotFound, WorktreeFailed
from ._holds import HoldPolicy, UsageLimits
from ._host_runs import HostRuns
from ._hosts import DEFAULT_HOST, Host, HostTable
from ._ledger import Ledger, utc_day
from ._listener import Listener
from ._listing import ids as task_ids
from ._live import LiveDesk
from ._model import (
    InvalidTransition,
    Isolation,
    Priority,
    RunOutcome,
    Task,
    TaskEvent,
    TaskOptions,
    dequeue,
    end,
    enqueue,
    isolate,
    new_task,
    start_run,
)
from ._queue import TaskQueue
from ._reattach import DETACH_GRACE_S, OwedCancel, new_run_id
from ._running import TurnRunning, change_event, queued_event, shorten
from ._schedule import Gate
from ._store import StateWriteError, StoreEvent, TaskStore, UnknownTask, Visible
from ._turn import LiveTurn, RunInFlight
from ._workspace import DaemonEndpoint, Workspace
from ._worktrees import COMMIT_TIMEOUT_S, SWEEP_INTERVAL_S

log = logging.getLogger("mcp_server.tasks")

ChangeKind = Literal["created", "transition", "output", "deleted"]


@attrs.frozen
class TaskChange:
    """What the runner tells its :class:`Listener`: a task was created, moved to another status,
    has more output, or was deleted (``task`` is its record then, ``None`` once deleted)."""

    task_id: str
    kind: ChangeKind
    task: Task | None
    notice: str | None = None
    """Something a person should see at once (a permission request waits), for clients that
    log or subscribed to the task (``notifications/message`` at level warning)."""


StoreFactory = Callable[[Listener[StoreEvent]], TaskStore]
"""Makes the runner's store, given the listener it tells: ``functools.partial(TaskStore, root)``."""

OUTPUT_NOTIFY_INTERVAL_S = 0.5
"""Output changes are announced at most this often per task (transitions at once)."""

START_TIMEOUT_S = 30.0
"""How long connecting, the handshake and the agent's spawn may take (a loaded host is slow)."""

LIVE_IDLE_S = 600.0
"""How long the daemon keeps a live task's agent alive without a turn (``LIVE_IDLE_S``)."""


class TaskRunner(TurnRunning, HostRuns):
    """Creates, runs, follows up, ends and forgets tasks; see the module docstring."""

    def __init__(
        self,
        store: StoreFactory,
        daemon: DaemonEndpoint,
        workspace: Workspace,
        *,
        listener: Listener[TaskChange] | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
        live_idle_s: float = LIVE_IDLE_S,
        spending: Spending | None = None,
        gates: Sequence[Gate] = (),
        hold_policy: HoldPolicy | None = None,
        hosts: Sequence[Host] = (),
        detach_grace_s: float = DETACH_GRACE_S,
    ) -> None:
        self.start_timeout_s = start_timeout_s
        self.detach_grace_s = detach_grace_s  # the daemon's, until a probe says
        self._graces: dict[tuple[str, int], float] = {}  # per daemon, as its probe said
        self._owed: dict[str, OwedCancel] = {}  # run id -> a cancel not sent yet
        self._owed_wakeup = trio.Event()
        self._detached = False  # the server stopped following its runs (shutdown)
        self.live_idle_s = live_idle_s
        self.sweep_interval_s = sweep_interval_s
        self.hosts = HostTable(hosts or [Host(DEFAULT_HOST, daemon, (workspace,))])
        """The host daemons (``hosts``, else ``daemon`` serving ``workspace`` as ``default``);
        each task's daemon calls go to its own host's (:meth:`_daemon_for`)."""
        self._worktrees = {}
        self._listener = listener
        self._active: dict[str, RunInFlight] = {}
        self._held: set[str] = set()  # tasks under review (merge, discard): no run starts
        self._preparing: set[str] = set()  # tasks whose worktree is being made
        self._changed: dict[str, trio.Event] = {}
        self._dirty_output: set[str] = set()
        self._output_queued = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self.store = store(self._on_stored)
        """The durable tasks; the runner runs its flusher and hears what it wrote."""
        self.clock = self.store.clock
        self.spending = spending or Spending(Ledger(self.store.root))
        """The cost ledger and the budgets (S3): recorded after each run, a gate on starts."""
        self.live = LiveDesk(self)
        """Live turns: permission requests and decisions, steering, interrupts."""

        def wake() -> None:  # the queue is made below, with the holds' gate
            self.queue.wake()

        self.limits = UsageLimits(self.store.root, self.clock, wake, hold_policy)
        """Usage-limit holds per agent account (``_holds``); ``hold_policy`` is for tests."""
        self.queue = TaskQueue(self, [*gates, self.limits.gate, self.spending.gate])
        """The tasks waiting to start, and the gates that decide when they may."""

    # -- lifetime -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the runs and the store's flusher until cancelled (detachable runs are then
        detached, others interrupted); re-attach first to the runs in flight at the start."""
        await self.spending.ledger.load(await task_ids(self.store), utc_day(self.clock.wall()))
        async with trio.open_nursery() as nursery:
            await nursery.start(self.store.run_flusher)
            nursery.start_soon(self._announce_output)
            for sweeps in self._host_worktrees():
                nursery.start_soon(sweeps.sweep_every, self.sweep_interval_s, self.worktree_keys)
            nursery.start_soon(self.pay_owed_cancels)
            self._nursery = nursery
            try:
                await self.limits.load()  # the holds before the queue plans
                self._reattach_all(nursery)
                await nursery.start(self.queue.run)  # the tasks queued before a restart start
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None
                self._stop_following(detach=True)

    async def shutdown(self, grace_s: float, *, detach: bool = True) -> None:
        """Give running tasks ``grace_s`` to finish, then detach from them (they go on in the
        daemon; the next server re-attaches), or with ``detach=False`` (the daemon stops too)
        stop them, recorded ``interrupted``; so are runs that cannot be detached.

        From now on no run starts: ``create``/``follow_up`` raise :class:`ShuttingDown`.
        """
        self._closing = True
        with trio.move_on_after(grace_s):
            for active in list(self._active.values()):
                await active.done.wait()
        self._stop_following(detach=detach)
        for active in list(self._active.values()):
            await active.done.wait()
        await self.store.flush(force_fsync=True)

    def notify(self, task_id: str, kind: ChangeKind, *, notice: str | None = None) -> None:
        changed = self._changed.pop(task_id, None)
        if changed is not None:
            changed.set()
        if self._listener is not None:
            self._listener(TaskChange(task_id, kind, self.store.tasks.get(task_id), notice))

    def _on_stored(self, event: StoreEvent) -> None:
        if isinstance(event, Visible):
            self._on_visible(event.task_id)
        else:
            self._on_output_lost(event.task_id, event.reason)

    def _on_visible(self, task_id: str) -> None:
        """More of the task is visible: wake its waiters, announce its output (rate-limited)."""
        self._dirty_output.add(task_id)
        self._output_queued.set()
        changed = self._changed.pop(task_id, None)
        if changed is not None:
            changed.set()

    def _on_output_lost(self, task_id: str, reason: str) -> None:
        """The task's output could not be stored: end its run (the agent is stopped), which
        then fails with ``reason``."""
        active = self._active.get(task_id)
        if active is not None and active.stop_reason is None:
            active.stop_reason = "error"
            active.stop_message = f"run stopped: {reason}"
            active.scope.cancel()

    async def _announce_output(self) -> None:
        """Announce tasks with new output, at most every ``OUTPUT_NOTIFY_INTERVAL_S``."""
        while True:
            await self._output_queued.wait()
            self._output_queued = trio.Event()
            dirty, self._dirty_output = self._dirty_output, set()
            for task_id in dirty:
                task = self.store.tasks.get(task_id)
                if task is not None and self._listener is not None:
                    self._listener(TaskChange(task_id, "output", task))
            await trio.sleep(OUTPUT_NOTIFY_INTERVAL_S)

    # -- queries --------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        """The task's current record, or :class:`TaskNotFound`."""
        task = self.store.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    def active_tasks(self) -> list[Task]:
        """The tasks not at rest (pending, queued, limited, running), oldest first: in creation
        order, whatever the wall clock did meanwhile. The others are read through the index
        (:meth:`TaskStore.page`)."""
        return sorted(self.store.tasks.resident.values(), key=lambda t: t.order)

    def is_running(self, task_id: str) -> bool:
        """True while the task's run is in flight or its end is not yet recorded."""
        return self.get(task_id).running or task_id in self._active

    def run_pending(self, task_id: str) -> bool:
        """True while the task's run is in flight (and followed), or ``queued``."""
        running = self.is_running(task_id) and not self._let_go_of(task_id)
        return running or self.get(task_id).status == "queued"

    def in_flight(self, task_id: str) -> RunInFlight | None:
        """The task's run in flight, if any."""
        return self._active.get(task_id)

    def live_turn(self, task_id: str) -> LiveTurn | None:
        """The control channel of the task's live turn in flight, if any."""
        active = self._active.get(task_id)
        return None if active is None else active.control

    def worktree_keys(self) -> list[str]:
        """The tasks whose worktree must stay: open ones, and those being made."""
        return [*self.store.open_worktrees, *self._preparing]

    @contextlib.contextmanager
    def hold(self, task_id: str) -> Iterator[None]:
        """Keep runs from starting while the task's work is reviewed (:class:`TaskBusy` if a run
        is in flight or another review holds it)."""
        if task_id in self._active or task_id in self._held:
            raise TaskBusy(task_id)
        self._held.add(task_id)
        try:
            yield
        finally:
            self._held.discard(task_id)

    def _daemon_for(self, task: Task) -> DaemonEndpoint:
        """The daemon of the task's host: every daemon call for a task goes there
        (:class:`UnknownHost` when its host is no longer configured)."""
        return self.hosts[task.host].daemon

    def tasks_in_flight(self) -> list[Task]:
        """The tasks whose runs are in flight (or begun), as their runs began."""
        return [active.task for active in self._active.values() if active.task is not None]

    def may_start_runs(self) -> bool:
        """True while runs may start (the runner runs, and is not shutting down)."""
        return self._nursery is not None and not self._closing

    def may_schedule(self, task_id: str) -> bool:
        """True unless the task has a run in flight or is under review."""
        return not (task_id in self._active or task_id in self._held)

    def last_seq(self, task_id: str) -> int:
        """The seq of the task's latest event."""
        self.get(task_id)
        return self.store.last_seq(task_id)

    def changed(self, task_id: str) -> trio.Event:
        """An event set at the task's next change (transition or output)."""
        self.get(task_id)
        return self._changed.setdefault(task_id, trio.Event())

    async def events(self, task_id: str, after: int, limit: int) -> list[TaskEvent]:
        """The task's events with ``seq > after``, at most ``limit``."""
        self.get(task_id)
        return await self.store.read_events(task_id, after, limit)

    async def wait(self, task_id: str, timeout_s: float) -> Task:
        """Wait until the task's run ended or ``timeout_s`` passed; its record (a ``queued``
        task's run is waited for too: it starts by itself)."""
        with trio.move_on_after(timeout_s):
            while self.run_pending(task_id):
                await self.changed(task_id).wait()
        return self.get(task_id)

    # -- commands -------------------------------------------------------------------------

    async def create(
        self,
        *,
        title: str,
        instructions: str,
        agent: AgentName,
        project_dir: str | None,
        options: TaskOptions,
        isolation: Isolation | None = None,
        base_ref: str | None = None,
        include_uncommitted: bool = False,
        task_id: str | None = None,
        priority: Priority = "normal",
        host: str | None = None,
    ) -> Task:
        """Create a task (its worktree first, unless isolation is none) and start its first run;
        returns once the start is durable. A worktree the daemon refused: no task. ``task_id``
        (one from :func:`new_task_id`) names it; by default a fresh one. ``host``: the host it
        runs on (default: the one serving ``project_dir``)."""
        chosen, relative, cwd = self.hosts.route(project_dir, host)
        self._require_nursery()
        live = await self.live.resolve(agent, options.live, chosen.name)
        task = new_task(
            title=title,
            instructions=instructions,
            agent=agent,
            project_dir=relative,
            cwd=cwd,
            options=options,
            now=self.clock.wall(),
            task_id=task_id,
            live=live,
            priority=priority,
            host=chosen.name,
        )
        self._preparing.add(task.id)
        try:
            made = await self.worktrees_for(task).create(
                task, isolation, base_ref, include_uncommitted
            )
            task = isolate(task, made.isolation, made.note, made.worktree)
            return await self._create(task, instructions)
        except BaseException:
            if task.has_open_worktree and task.id not in self.store.tasks:
                with trio.CancelScope(shield=True), contextlib.suppress(WorktreeFailed):
                    with trio.move_on_after(COMMIT_TIMEOUT_S):
                        await self.worktrees_for(task).discard(task.id)
            raise
        finally:
            self._preparing.discard(task.id)

    async def _create(self, task: Task, instructions: str) -> Task:
        nursery = self._require_nursery()
        now = self.clock.wall()
        run_id = new_run_id()
        first = change_event("turn", f"turn 1: {shorten(instructions)}", {"turn": 1})
        reason = self.queue.blocks(task)
        if reason is not None:
            queued = enqueue(task, now, reason)
            await self.store.create(queued, lambda t: [first, queued_event(reason)])
            self.notify(task.id, "created")
            self.queue.plan_now()  # its place now (or its start, if a slot freed meanwhile)
            return self.get(task.id)
        active = self._begin(task)
        first["data"]["run_id"] = run_id  # marks where the run's events begin (_reattach)
        await self._save_start(
            task.id,
            active,
            lambda: self.store.create(start_run(task, now, run_id=run_id), lambda t: [first]),
        )
        self.notify(task.id, "created")
        nursery.start_soon(self._run_turn, task.id, active)
        await self._wait_started(task.id, active)
        return self.get(task.id)

    async def follow_up(self, task_id: str, instructions: str) -> Task:
        """Start the next turn in the same agent conversation (raises :class:`TaskBusy`)."""
        if task_id in self._active or task_id in self._held:
            raise TaskBusy(task_id)
        task = self.get(task_id)
        nursery = self._require_nursery()
        run_id = new_run_id()

        def turn(task: Task) -> list[dict[str, Any]]:
            count = len(task.turns)
            data = {"turn": count} | ({"run_id": task.run_id} if task.running else {})
            return [change_event("turn", f"turn {count}: {shorten(instructions)}", data)]

        reason = None if task.waiting_to_start else self.queue.blocks(task)
        if reason is not None:
            await self._commit_or_not_found(
                task_id,
                lambda t: enqueue(t, self.clock.wall(), reason, instructions),
                lambda t: [*turn(t), queued_event(reason)],
            )
            self.notify(task_id, "transition")
            self.queue.plan_now()
            return self.get(task_id)
        active = self._begin(task)
        await self._save_start(
            task_id,
            active,
            lambda: self.store.commit(
                task_id, lambda t: start_run(t, self.clock.wall(), instructions, run_id), turn
            ),
        )
        self.notify(task_id, "transition")
        nursery.start_soon(self._run_turn, task_id, active)
        await self._wait_started(task_id, active)
        return self.get(task_id)

    async def end(self, task_id: str) -> Task:
        """Stop the run in flight (the daemon kills its process group), then close the task."""
        self.get(task_id)

        def close(task: Task) -> Task:
            # Runs under the task's lock: a follow-up that began meanwhile is stopped first.
            if task_id in self._active:
                raise TaskBusy(task_id)
            return end(task, self.clock.wall())

        ended = change_event("status", "completed: ended by the client", {"status": "completed"})
        while True:
            while task_id in self._active:
                await self.stop(task_id)
            try:
                task = await self.store.commit(task_id, close, lambda t: [ended])
            except TaskBusy:
                continue
            except UnknownTask:
                raise TaskNotFound(task_id) from None
            self.notify(task_id, "transition")
            self.queue.plan_now()  # the places behind it move up
            note = await self.live.close_session(task_id)
            if note is not None:
                self.append(task_id, kind="status", summary=f"completed: {note}")
            return task

    async def stop(self, task_id: str, reason: RunOutcome = "cancelled") -> None:
        """Cancel the task's run, if any, and wait until its end is recorded; a run still
        queued is called off (``cancelled``, it never starts)."""
        active = self._active.get(task_id)
        if active is None:
            task = self.store.tasks.get(task_id)
            if task is not None and task.status == "queued":
                await self._dequeue(task_id)
            return
        active.stop_reason = active.stop_reason or reason
        active.scope.cancel()
        await active.done.wait()

    async def _dequeue(self, task_id: str) -> None:
        event = change_event(
            "status", "cancelled: its queued run was called off", {"status": "cancelled"}
        )
        with contextlib.suppress(UnknownTask, InvalidTransition):  # started or gone meanwhile
            await self.store.commit(
                task_id, lambda t: dequeue(t, self.clock.wall()), lambda t: [event]
            )
            self.notify(task_id, "transition")
            self.queue.plan_now()

    async def clean(self) -> int:
        """Stop every run, then delete every task; returns how many were deleted.

        Each task is forgotten with no checkpoint after its last run stopped, so a run started
        meanwhile (a ``create_task`` or ``update_task`` during the clean) is stopped too.
        """
        gone: set[str] = set()
        while left := [
            task_id
            for task_id in [*self.store.tasks.resident, *await task_ids(self.store, 100)]
            if task_id not in gone
        ]:
            for task_id in left:
                while task_id in self._active:
                    await self.stop(task_id)
                await self.store.delete(task_id)
                self.notify(task_id, "deleted")
                gone.add(task_id)
        deleted = len(gone)
        for sweeps in self._host_worktrees():
            await sweeps.sweep(self.worktree_keys)
        self.queue.wake()
        return deleted

    # -- running --------------------------------------------------------------------------

    async def _save_start(
        self, task_id: str, active: RunInFlight, write: Callable[[], Awaitable[Task]]
    ) -> None:
        """Make a run's start durable (shielded: it is short, and half a start is worse).

        If it is refused or cannot be written, the run does not start and the task keeps its
        last durable record.
        """
        with trio.CancelScope(shield=True):
            try:
                await write()
            except BaseException as exc:
                self._active.pop(task_id, None)
                active.done.set()
                if isinstance(exc, StateWriteError):
                    log.warning("task %s: could not record the start of a run: %s", task_id, exc)
                if isinstance(exc, UnknownTask):
                    raise TaskNotFound(task_id) from None
                raise

    async def _wait_started(self, task_id: str, active: RunInFlight) -> None:
        """Wait until the daemon started the run; a caller cancelled meanwhile stops it."""
        try:
            await active.wait_started(task_id)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self.stop(task_id)
            raise

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None or self._closing:
            raise ShuttingDown("the server is shutting down: no new runs start")
        return self._nursery

    def _begin(self, task: Task) -> RunInFlight:
        active = RunInFlight(task=task)
        self._active[task.id] = active
        return active

    async def _commit_or_not_found(
        self,
        task_id: str,
        change: Callable[[Task], Task],
        events: Callable[[Task], list[dict[str, Any]]],
    ) -> Task:
        try:
            return await self.store.commit(task_id, change, events)
        except UnknownTask:
            raise TaskNotFound(task_id) from None

    def start_waiting_soon(self, task: Task) -> None:
        """Begin the run of a waiting task now (its slot is taken at once) and start it."""
        nursery = self._require_nursery()
        active = self._begin(task)
        nursery.start_soon(self._start_waiting, task.id, active)

    async def _start_waiting(self, task_id: str, active: RunInFlight) -> None:
        """Start a queued or limited task's recorded turn (durably first), then run it."""

        def started(task: Task) -> list[dict[str, Any]]:
            summary = f"in_progress: turn {len(task.turns)} started from the queue"
            data = {"status": "in_progress", "run_id": task.run_id}
            return [change_event("status", summary, data)]

        run_id = new_run_id()
        try:
            await self._save_start(
                task_id,
                active,
                lambda: self.store.commit(
                    task_id, lambda t: start_run(t, self.clock.wall(), run_id=run_id), started
                ),
            )
        except TaskError as exc:  # ended or deleted meanwhile, or the start not writable
            log.info("task %s: queued run not started: %s", task_id, exc)
            self.queue.wake()
            return
        self.notify(task_id, "transition")
        await self._run_turn(task_id, active)

    def append(
        self,
        task_id: str,
        kind: Any,
        summary: str,
        data: dict[str, Any] | None = None,
        raw: str | None = None,
        *,
        daemon_seq: int | None = None,
    ) -> None:
        """Queue an output event (``daemon_seq``: its run frame's number); visible once written."""
        self.store.append_event(
            task_id, kind=kind, summary=summary, data=data, raw=raw, daemon_seq=daemon_seq
        )
