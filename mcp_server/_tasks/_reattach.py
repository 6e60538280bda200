"""Runs that outlive their stream: following a detachable run across lost streams and restarts.

Every run the runner starts carries a ``run_id`` (stored in the task's record by the transition
that starts it, before the daemon is asked). The daemon numbers such a run's frames (``seq``);
each event recorded from a frame keeps its number (``TaskEvent.daemon_seq``). When the stream
drops without a cancel (the server restarts or crashes, the network blips), the daemon keeps the
run for its detach grace. The runner then re-attaches (``RunAttach`` with the last frame it
recorded) and skips frames it has already, so every event is recorded exactly once:

- mid-run, a lost stream is re-attached at once, then with a backoff while the daemon cannot be
  reached, until its detach grace has passed since the stream was lost (then the run is
  recorded ``interrupted``, saying so);
- at start, every task found running with a ``run_id`` is re-attached the same way (the time
  of its last recorded event counts as the time the stream was lost);
- a daemon that no longer has the run (``unknown_run``: it restarted, or the grace ran out)
  ends it ``interrupted`` with the daemon's reason.

Stopping a detachable run (``end_task``, ``clean_state``, an interrupt that did not end it) no
longer follows from closing its stream: the runner cancels it by id (``RunCancel``); a cancel
the daemon cannot be sent now is retried until the daemon's grace would have ended the run.
Cancels owed are kept in ``STATE/owed-cancels.json``, so a restart still sends them.
A server shutting down detaches (:attr:`RunInFlight.detaching`): nothing is cancelled, the
record stays running, the next server re-attaches.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import pathlib
import uuid
from typing import TYPE_CHECKING

import attrs
import orjson
import trio

from host_daemon import (
    AgentEvent,
    DaemonError,
    DaemonUnavailable,
    RequestRejected,
    RunFinished,
    RunRequest,
    RunStream,
    attach_run,
    cancel_run,
    open_run,
)

from ._convert import describe_error
from ._files import STATE_CONVERTER, fsync_dir
from ._hosts import UnknownHost
from ._model import Clock, Task, TaskEvent
from ._report import ReportBuilder, seen_again
from ._turn import LiveTurn, RunInFlight

if TYPE_CHECKING:
    from ._store import TaskStore
    from ._workspace import DaemonEndpoint

log = logging.getLogger("mcp_server.tasks")

DETACH_GRACE_S = 900.0
"""How long the daemon keeps a detached run, until a probe says (the daemon's default)."""
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
"""Re-attaching to a daemon that cannot be reached backs off from the first delay to the most."""
CANCEL_TIMEOUT_S = 30.0
"""How long cancelling a run by id may take (the daemon answers once its group is gone)."""
SCAN_PAGE = 256
"""Events read per step while looking back for a re-attached run's recorded frames."""
_LOST = frozenset({"unreachable", "timeout", "connection_lost", "closed"})
"""Codes of a stream or a daemon that went away: the run may well go on; re-attach."""
_MAYBE_SENT = frozenset({"timeout", "connection_lost", "closed"})
"""Codes of a start that failed after its request may have reached the daemon."""


OWED_FILE = "owed-cancels.json"
"""The cancels not sent yet, in the state dir: run id -> :class:`OwedCancel`."""


@attrs.frozen
class OwedCancel:
    """A run to cancel by id once its daemon answers: its task's record (which names the
    daemon) and since when (past the daemon's grace the daemon has ended it anyway)."""

    task: Task
    since: datetime.datetime


def load_owed(path: pathlib.Path) -> dict[str, OwedCancel]:
    """The owed cancels stored at ``path`` (none if absent; unreadable: none, with a warning)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        owed: dict[str, OwedCancel] = STATE_CONVERTER.structure(
            orjson.loads(data), dict[str, OwedCancel]
        )
    except Exception as exc:  # any damage: the daemon's grace ends those runs anyway
        log.warning("ignoring %s, which cannot be read: %s", path, describe_error(exc))
        return {}
    return owed


def save_owed(path: pathlib.Path, owed: dict[str, OwedCancel]) -> None:
    """Replace ``path`` with ``owed`` atomically (written, fsync'd, renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(orjson.dumps(STATE_CONVERTER.unstructure(owed, dict[str, OwedCancel])))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def new_run_id() -> str:
    """A fresh run id: 128 random bits, as the daemon asks (``[A-Za-z0-9_-]{8,64}``)."""
    return uuid.uuid4().hex


@attrs.frozen
class RunSoFar:
    """What a task's log holds of its run in flight, for re-attaching to it after a restart."""

    daemon_seq: int
    """The run's last frame recorded (0: none)."""
    started_at: datetime.datetime
    lost_at: datetime.datetime
    """When the server last recorded anything of the run: its stream was lost after that."""
    seen: list[AgentEvent]
    """Its recorded agent events that the run's report needs, oldest first."""


async def run_so_far(store: TaskStore, task: Task) -> RunSoFar:
    """Read the task's log back from its end to its run's start (the event whose data names
    the ``run_id``): the last frame number recorded, and what the report needs."""
    daemon_seq = 0
    lost_at = task.updated_at
    started_at: datetime.datetime | None = None  # the run_started event's
    seen: list[AgentEvent] = []
    high = store.last_seq(task.id)
    if high:
        lost_at = max(lost_at, (await store.read_events(task.id, high - 1, 1))[0].time)
    while high > 0:
        low = max(0, high - SCAN_PAGE)
        for event in reversed(await _read_range(store, task.id, low, high)):
            if event.daemon_seq is None:
                if _starts(event, task):  # the run's first event: done
                    started_at = started_at or event.time
                    high = 0
                    break
                continue
            daemon_seq = max(daemon_seq, event.daemon_seq)
            if event.kind == "run_started":
                started_at = event.time
            again = seen_again(event.data) if event.kind == "agent" and event.data else None
            if again is not None:
                seen.append(again)
        else:
            high = low
    seen.reverse()
    return RunSoFar(daemon_seq, started_at or task.updated_at, lost_at, seen)


def _starts(event: TaskEvent, task: Task) -> bool:
    """Whether ``event`` is the one the transition that started the task's run wrote."""
    return event.data is not None and event.data.get("run_id") == task.run_id


async def _read_range(store: TaskStore, task_id: str, low: int, high: int) -> list[TaskEvent]:
    """Events ``low + 1`` … ``high`` (a read stops at its byte budget: read on)."""
    events: list[TaskEvent] = []
    while low < high:
        page = await store.read_events(task_id, low, high - low)
        if not page:
            break
        events += page
        low = page[-1].seq
    return events


class RunFollowing:
    """Follows a run's stream to its end, re-attaching when it is lost; cancels runs by id.
    Mixed into :class:`TaskRunner` (through ``TurnRunning``)."""

    start_timeout_s: float
    clock: Clock
    store: TaskStore
    _active: dict[str, RunInFlight]
    _graces: dict[tuple[str, int], float]
    detach_grace_s: float
    _owed: dict[str, OwedCancel]
    _owed_wakeup: trio.Event
    _detached: bool
    _changed: dict[str, trio.Event]

    if TYPE_CHECKING:

        def get(self, task_id: str) -> Task: ...

        def _daemon_for(self, task: Task) -> DaemonEndpoint: ...

        def _begin(self, task: Task) -> RunInFlight: ...

        async def _run_turn(
            self, task_id: str, active: RunInFlight, resume: bool = False
        ) -> None: ...

        async def _consume(
            self, task_id: str, active: RunInFlight, stream: RunStream, builder: ReportBuilder
        ) -> RunFinished | None: ...

    def _reattach_all(self, nursery: trio.Nursery) -> None:
        """Follow again every run found in flight at the start (in ``nursery``)."""
        for task in [t for t in self.store.tasks.resident.values() if t.reattachable]:
            active = self._begin(task)
            active.started.set()  # the daemon started it before the restart
            nursery.start_soon(functools.partial(self._run_turn, resume=True), task.id, active)

    def _stop_following(self, *, detach: bool) -> None:
        """End the runs in flight: detach the detachable ones (``detach``), interrupt others."""
        self._detached = True
        for task_id, active in self._active.items():
            task = self.store.tasks.get(task_id)
            if detach and task is not None and task.reattachable and active.stop_reason is None:
                active.detaching = True
            else:
                active.stop_reason = active.stop_reason or "interrupted"
            active.scope.cancel()

    def grace_of(self, daemon: DaemonEndpoint) -> float:
        """The daemon's detach grace, as its last probe said (else :data:`DETACH_GRACE_S`)."""
        return self._graces.get((daemon.host, daemon.port), self.detach_grace_s)

    async def _follow(
        self,
        task_id: str,
        active: RunInFlight,
        request: RunRequest | None,
        builder: ReportBuilder,
        lost_at: datetime.datetime | None,
    ) -> RunFinished | None:
        """Start the run (``request``) or re-attach to it, and follow it to its end; a lost
        stream of a detachable run is re-attached. Its ``RunFinished``, if it came."""
        task = self.get(task_id)
        if request is not None:
            daemon = self._daemon_for(task)
            try:
                async with open_run(
                    daemon.host, daemon.port, daemon.token, request, timeout=self.start_timeout_s
                ) as stream:
                    return await self._on_stream(task_id, active, stream, builder)
            except DaemonUnavailable as exc:
                if task.run_id is None or not active.started.is_set() or exc.code not in _LOST:
                    raise
                log.warning("task %s: the run's stream was lost (%s): re-attaching", task_id, exc)
            lost_at = self.clock.wall()
        return await self._reattach(task_id, active, builder, lost_at or self.clock.wall())

    async def _on_stream(
        self, task_id: str, active: RunInFlight, stream: RunStream, builder: ReportBuilder
    ) -> RunFinished | None:
        started = stream.started
        if started.live:
            if active.control is None:
                active.control = LiveTurn(stream, started)
            else:  # re-attached: decisions, steering and interrupts go on the new stream
                active.control.control = stream
        active.started.set()
        return await self._consume(task_id, active, stream, builder)

    async def _reattach(
        self,
        task_id: str,
        active: RunInFlight,
        builder: ReportBuilder,
        lost_at: datetime.datetime,
    ) -> RunFinished | None:
        """Attach to the task's run again (after the last frame recorded) until it finishes,
        the daemon says it has it no more, or the daemon stays unreachable past its grace."""
        task = self.get(task_id)
        run_id = task.run_id
        if run_id is None:
            raise DaemonUnavailable("connection_lost", "the run's stream was lost")
        delay = RETRY_FIRST_S
        while True:
            daemon = self._daemon_for(task)
            attached = False
            try:
                async with attach_run(
                    daemon.host,
                    daemon.port,
                    daemon.token,
                    run_id,
                    active.daemon_seq,
                    timeout=self.start_timeout_s,
                ) as stream:
                    attached = active.reattached = True
                    log.info(
                        "task %s: re-attached to run %s after frame %d",
                        task_id,
                        run_id,
                        active.daemon_seq,
                    )
                    return await self._on_stream(task_id, active, stream, builder)
            except RequestRejected as exc:
                if exc.code != "unknown_run":
                    raise
                return self._gone(
                    task_id, active, f"the host daemon no longer has the run: {exc.message}"
                )
            except DaemonUnavailable as exc:
                if exc.code not in _LOST:
                    raise
                if attached:  # lost again: the grace starts over
                    lost_at, delay = self.clock.wall(), RETRY_FIRST_S
                grace = self.grace_of(daemon)
                waited = (self.clock.wall() - lost_at).total_seconds()
                if waited >= grace:
                    return self._gone(
                        task_id,
                        active,
                        f"the host daemon was unreachable for longer than its {grace:g} s "
                        f"detach grace, which ended the run ({exc.message})",
                    )
                log.warning(
                    "task %s: cannot re-attach to run %s yet (%s); again in %.1f s",
                    task_id,
                    run_id,
                    exc.message,
                    delay,
                )
                await trio.sleep(min(delay, grace - waited))
                delay = min(delay * 2, RETRY_MAX_S)

    def _gone(self, task_id: str, active: RunInFlight, why: str) -> RunFinished | None:
        """The run is over with no end from the daemon: recorded ``interrupted`` with ``why``."""
        log.warning("task %s: %s", task_id, why)
        active.gone = True
        active.stop_reason = "interrupted"
        active.stop_message = why
        return None

    def _let_go_of(self, task_id: str) -> bool:
        """Whether the server stopped following the task's run (it shuts down)."""
        return self._detached and task_id not in self._active

    def _let_go(self, task_id: str, active: RunInFlight) -> None:
        """The server stops following the run (it shuts down): the daemon keeps it, the record
        stays running; waiters are told."""
        self._active.pop(task_id, None)
        active.done.set()
        changed = self._changed.pop(task_id, None)  # no transition: only waiters are told
        if changed is not None:
            changed.set()

    async def _cancel_left_run(self, task: Task, active: RunInFlight) -> None:
        """A detachable run the server stops following without its end: cancel it by id
        (closing its stream only detaches it)."""
        if task.run_id is None or active.gone or active.requeued is not None:
            return
        if active.start_error is not None and active.start_error[0] not in _MAYBE_SENT:
            return  # refused, or never sent: the daemon has no such run
        if not await self._send_cancel(task, task.run_id):
            self._owed[task.run_id] = OwedCancel(task, self.clock.wall())
            await self._save_owed()
            self._owed_wakeup.set()

    async def _save_owed(self) -> None:
        path = self.store.root / OWED_FILE
        try:
            await trio.to_thread.run_sync(save_owed, path, dict(self._owed))
        except OSError as exc:  # kept in memory; the daemon's grace ends the runs anyway
            log.warning("cannot write %s: %s", path, exc)

    async def _send_cancel(self, task: Task, run_id: str) -> bool:
        """``RunCancel`` by id; False when the daemon could not be reached (try again later)."""
        try:
            daemon = self._daemon_for(task)
        except UnknownHost as exc:  # its host is no longer configured: nothing to reach
            log.warning("task %s: run %s not cancelled: %s", task.id, run_id, exc)
            return True
        try:
            answer = await cancel_run(
                daemon.host, daemon.port, daemon.token, run_id, timeout=CANCEL_TIMEOUT_S
            )
        except DaemonUnavailable as exc:
            log.warning("task %s: run %s not cancelled yet: %s", task.id, run_id, exc)
            return False
        except DaemonError as exc:
            log.warning("task %s: cancelling run %s: %s", task.id, run_id, exc)
            return True
        log.info(
            "task %s: run %s cancelled (%s)", task.id, run_id, "found" if answer.found else "gone"
        )
        return True

    async def pay_owed_cancels(self) -> None:
        """Send the cancels the daemon could not be sent (those of a previous server too), with
        a backoff, until sent or until the daemon's grace has ended those runs anyway (the
        runner's nursery runs this)."""
        path = self.store.root / OWED_FILE
        self._owed.update(await trio.to_thread.run_sync(load_owed, path))
        delay = RETRY_FIRST_S
        while True:
            if not self._owed:
                await self._owed_wakeup.wait()
                self._owed_wakeup = trio.Event()
                delay = RETRY_FIRST_S
            before = len(self._owed)
            for run_id, owed in list(self._owed.items()):
                task = owed.task
                waited = (self.clock.wall() - owed.since).total_seconds()
                try:
                    daemon = self._daemon_for(task)
                except UnknownHost as exc:  # its host is no longer configured
                    log.warning("task %s: run %s not cancelled: %s", task.id, run_id, exc)
                    self._owed.pop(run_id, None)
                    continue
                if waited > self.grace_of(daemon):
                    log.info("task %s: run %s: the daemon's grace has ended it", task.id, run_id)
                elif not await self._send_cancel(task, run_id):
                    continue
                self._owed.pop(run_id, None)
            if len(self._owed) != before:
                await self._save_owed()
            if self._owed:
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
