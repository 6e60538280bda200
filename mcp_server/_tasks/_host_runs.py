"""The runner's side of several hosts: runs counted per host, each host's daemon probed, and the
task's worktree operations through its own host's daemon.

A mixin, so the runner's module stays about commands and lifetime; the attributes it reads are
the runner's (declared here for the type checker). The one lookup of a task's daemon is the
runner's ``_daemon_for``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from host_daemon import ProbeInfo, probe

from ._hosts import HostTable, daemon_label
from ._model import Task
from ._turn import RunInFlight
from ._worktrees import TaskWorktrees

if TYPE_CHECKING:
    from ._queue import TaskQueue
    from ._workspace import DaemonEndpoint


class HostRuns:
    """Runs and daemon calls per host; mixed into :class:`TaskRunner`."""

    hosts: HostTable
    queue: TaskQueue
    _active: dict[str, RunInFlight]
    _worktrees: dict[DaemonEndpoint, TaskWorktrees]
    """One :class:`TaskWorktrees` per daemon (its sweep lock orders creates and sweeps)."""
    _graces: dict[tuple[str, int], float]
    """Each daemon's detach grace, as its last probe said (re-attach reads it)."""

    if TYPE_CHECKING:

        def _daemon_for(self, task: Task) -> DaemonEndpoint: ...

    def running(self, host: str | None = None) -> int:
        """How many runs are in flight (on ``host``'s daemon, when given)."""
        if host is None:
            return len(self._active)
        return sum(a.task is not None and a.task.host == host for a in self._active.values())

    def worktrees_for(self, task: Task) -> TaskWorktrees:
        """The task's git worktree, made, reviewed and swept through its host's daemon."""
        return self._worktrees_at(self._daemon_for(task), task.host)

    def _host_worktrees(self) -> list[TaskWorktrees]:
        """Each host's worktrees (for the sweeps)."""
        return [self._worktrees_at(host.daemon, host.name) for host in self.hosts]

    def _worktrees_at(self, daemon: DaemonEndpoint, host: str) -> TaskWorktrees:
        found = self._worktrees.get(daemon)
        if found is None:
            found = TaskWorktrees(daemon, daemon_label(self.hosts, host))
            self._worktrees[daemon] = found
        return found

    async def probe(
        self, timeout: float = 5.0, cli_wait_s: float | None = None, host: str | None = None
    ) -> ProbeInfo:
        """Ask a host's daemon (default: the first host's) what it is and can do (raises
        ``DaemonError`` when it cannot answer)."""
        named = self.hosts.hosts[0] if host is None else self.hosts[host]
        daemon = named.daemon
        info = await probe(
            daemon.host, daemon.port, daemon.token, timeout=timeout, cli_wait_s=cli_wait_s
        )
        self.queue.observe(info, named.name)
        self._graces[(daemon.host, daemon.port)] = info.detach_grace_s
        return info
