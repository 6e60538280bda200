"""The scheduler's trio adapter: the runner's queue of tasks waiting to start.

The queue is the task records themselves (``queued``/``limited``, ``queued_at``, ``priority``):
nothing else is stored, so a restart keeps the order and what was queued. One loop task in the
runner's nursery plans (:meth:`Scheduler.plan`) whenever it is woken (a run ended, a task was
queued or dequeued, a gate changed: :meth:`TaskQueue.wake`) or a gate's ``next_change`` comes;
no polling. A task it picks is reserved at once (counted as in flight, so the gates see its slot
taken) and started by the runner, whose start is durable before the daemon is asked: a task
never starts twice, across a restart neither.

Capacity is per host: each daemon's ``max_concurrent_runs`` from its probe (probed when the
loop starts, again after the daemon refused a start as ``busy``, and taken from every other
probe, e.g. ``check_status``'s): see :class:`CapacityGate` and :class:`HostCapacityGate`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from host_daemon import DaemonError, ProbeInfo

from ._hosts import HostCapacityGate
from ._model import Task
from ._schedule import Gate, Plan, ProjectGate, Scheduler, Waiting

if TYPE_CHECKING:
    from ._runner import TaskRunner

log = logging.getLogger("mcp_server.tasks")

PROBE_TIMEOUT_S = 5.0
"""How long the capacity probe may take (a daemon that does not answer: no limit known)."""


class TaskQueue:
    """Plans and starts the runner's waiting tasks; see the module docstring."""

    def __init__(self, runner: TaskRunner, gates: Sequence[Gate]) -> None:
        self._runner = runner
        hosts = [host.name for host in runner.hosts]
        self.capacity = HostCapacityGate(hosts, runner.running)
        """Each host daemon's run limit (set from its probe)."""
        self.projects = ProjectGate(runner.tasks_in_flight)
        self.scheduler = Scheduler([self.capacity, self.projects, *gates])
        self._woken = trio.Event()
        self._probes_wanted = set(hosts)
        self._places: dict[str, Waiting] = {}
        self.passes = 0
        """How many planning passes ran (for the benchmarks and tests)."""

    def add_gate(self, gate: Gate) -> None:
        """One more gate, asked after the others (``serve``/``up`` wiring)."""
        self.scheduler.gates.append(gate)
        self.wake()

    def wake(self) -> None:
        """Something may have unblocked a waiting task: plan again soon."""
        self._woken.set()

    def refused(self, host: str) -> None:
        """The host's daemon answered ``busy`` to a start: hold back, probe again, plan again."""
        self.capacity[host].refused(self._runner.clock.wall())
        self._probes_wanted.add(host)
        self.wake()

    def freed(self, host: str) -> None:
        """A run of ours on ``host`` ended: its slot is free."""
        self.capacity[host].freed()
        self.wake()

    def place(self, task_id: str) -> Waiting | None:
        """The task's place in the queue as of the last pass (``None``: not waiting)."""
        task = self._runner.store.tasks.get(task_id)
        if task is None or not task.waiting_to_start:
            return None
        return self._places.get(task_id)

    def places(self) -> list[Waiting]:
        """Every waiting task's place, first first (as of the last pass)."""
        return sorted(self._places.values(), key=lambda w: w.position)

    def place_map(self) -> dict[str, Waiting]:
        """Task id -> its place (as of the last pass)."""
        return self._places

    def blocks(self, task: Task) -> str | None:
        """Why ``task`` may not start now (after the tasks ahead of it took their slots)."""
        self.plan_now()
        return self.scheduler.blocks(task, self._runner.clock.wall())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Plan whenever woken or a gate's time comes, until cancelled (started once the
        daemons' capacities are known, or their probes failed)."""
        await self._probe()
        task_status.started()
        while True:
            if self._probes_wanted:
                await self._probe()
            self._woken = trio.Event()
            plan = self.plan_now()
            deadline = math.inf
            if plan is not None and plan.wake_at is not None:
                wait_s = (plan.wake_at - self._runner.clock.wall()).total_seconds()
                deadline = trio.current_time() + max(0.0, wait_s)
            with trio.move_on_at(deadline):
                await self._woken.wait()

    async def _probe(self) -> None:
        """Probe the daemons asked for, at once (a host that is down delays no other)."""
        wanted, self._probes_wanted = self._probes_wanted, set()
        async with trio.open_nursery() as nursery:
            for host in sorted(wanted):
                nursery.start_soon(self._probe_host, host)

    async def _probe_host(self, host: str) -> None:
        try:
            await self._runner.probe(timeout=PROBE_TIMEOUT_S, host=host)  # which calls observe
        except (DaemonError, OSError) as exc:
            log.info("queue: host %s: probe failed (%s); its refusals set the capacity", host, exc)

    def observe(self, info: ProbeInfo, host: str) -> None:
        """A host's daemon answered a probe (any: ``check_status``'s too): take its run limit."""
        capacity = self.capacity.hosts.get(host)
        if capacity is not None and info.max_concurrent_runs != capacity.max_runs:
            log.info("queue: host %s runs at most %d at once", host, info.max_concurrent_runs)
            capacity.max_runs = info.max_concurrent_runs
            self.wake()

    def plan_now(self) -> Plan | None:
        """One pass: start what may start (reserved at once), note the others' places."""
        runner = self._runner
        if not runner.may_start_runs():
            return None
        self.passes += 1
        waiting = [t for t in runner.store.tasks.resident.values() if t.waiting_to_start]
        waiting = [t for t in waiting if runner.may_schedule(t.id)]
        plan = self.scheduler.plan(waiting, runner.clock.wall(), runner.start_waiting_soon)
        self._places = {w.task_id: w for w in plan.waiting}
        return plan
