"""Several host daemons behind one server: each host's name, daemon and the roots it serves, the
host a new task goes to, and the run capacity of each (sans-IO).

A host serves its roots as the MCP client names them (``/home/me/src`` on a laptop,
``/srv/build`` on a build box); each root maps to the directory the host's daemon sees
(:class:`Workspace`: the same path, or ``/workspace`` ↔ ``HOST_FILE_ROOT`` in the container).
A new task goes to the host it names, else to the host with the longest root that contains its
project directory. A task keeps its host for good (``Task.host``): its runs, live session and
worktree are on that host's daemon.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import PurePosixPath

import attrs

from ._errors import TaskError
from ._model import Task
from ._schedule import CapacityGate
from ._workspace import DaemonEndpoint, PathRefused, Workspace

DEFAULT_HOST = "default"
"""The host the single-daemon settings define (and the host of records from before hosts)."""

HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A host's name: letters, digits, ``_.-``, at most 64, starting with a letter or digit."""


class UnknownHost(TaskError, ValueError):
    """A host name that is not configured."""

    code = "unknown_host"


@attrs.frozen
class Host:
    """One host daemon: its name, where it listens, and the roots it serves."""

    name: str
    daemon: DaemonEndpoint
    roots: tuple[Workspace, ...]
    """Client path ↔ daemon path, one per root (at least one)."""

    def __attrs_post_init__(self) -> None:
        if not HOST_NAME.fullmatch(self.name):
            raise ValueError(
                f"expected a host name of letters, digits and _.- (at most 64), got {self.name!r}"
            )
        if not self.roots:
            raise ValueError(f"host {self.name} serves no root")

    def serving(self, path: PurePosixPath) -> Workspace | None:
        """The root containing ``path`` (a client path), the longest one; ``None`` if none."""
        inside = [w for w in self.roots if path.is_relative_to(w.client_root)]
        return max(inside, key=lambda w: len(w.client_root.parts), default=None)

    def roots_text(self) -> str:
        """``laptop (127.0.0.1:9876) serves /a, /b``: as routing errors list the hosts."""
        roots = ", ".join(str(w.client_root) for w in self.roots)
        return f"{self.name} ({self.daemon.host}:{self.daemon.port}) serves {roots}"


class HostTable:
    """The configured hosts, first one first; routes new tasks (see the module docstring)."""

    def __init__(self, hosts: Sequence[Host]) -> None:
        if not hosts:
            raise ValueError("expected at least one host")
        names = [host.name for host in hosts]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"expected each host named once, got {', '.join(doubled)} twice")
        self.hosts: tuple[Host, ...] = tuple(hosts)
        self._by_name = {host.name: host for host in hosts}

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, name: str) -> Host:
        """The host named ``name``, or :class:`UnknownHost` listing the configured ones."""
        host = self._by_name.get(name)
        if host is None:
            raise UnknownHost(
                f"expected one of the configured hosts ({', '.join(self._by_name)}), "
                f"got {name!r} @ host"
            )
        return host

    def route(self, project_dir: str | None, host_name: str | None) -> tuple[Host, str, str]:
        """(host, project dir relative to its root, daemon directory) of a new task.

        A relative project dir is under the first root of the named host (else of the first
        host); an absolute one goes to the named host, else the host with the longest root
        containing it (the first configured on a tie). :class:`PathRefused` when none serves it.
        """
        given = project_dir or "."
        if "\x00" in given:
            raise PathRefused("project_dir contains a NUL byte")
        candidates = self.hosts if host_name is None else (self[host_name],)
        path = PurePosixPath(given)
        if not path.is_absolute():
            return candidates[0], *candidates[0].roots[0].resolve(given)
        found: tuple[int, Host, Workspace] | None = None
        for host in candidates:
            root = host.serving(path)
            if root is not None and (found is None or len(root.client_root.parts) > found[0]):
                found = (len(root.client_root.parts), host, root)
        if found is None:
            if len(self.hosts) == 1:  # one host: the error of the single workspace
                return self.hosts[0], *self.hosts[0].roots[0].resolve(given)
            raise PathRefused(self._unserved(given, host_name))
        _, host, root = found
        return host, *root.resolve(given)

    def _unserved(self, given: str, host_name: str | None) -> str:
        listed = "; ".join(host.roots_text() for host in self.hosts)
        if host_name is not None:
            return (
                f"expected a project_dir that host {host_name} serves, got {given!r} "
                f"@ $.arguments.project_dir (hosts: {listed})"
            )
        return (
            f"expected a project_dir inside a host's root, got {given!r} "
            f"@ $.arguments.project_dir (hosts: {listed})"
        )


def daemon_label(hosts: HostTable, name: str) -> str:
    """``daemon`` (one host) or ``daemon of host laptop``: how errors name a host's daemon."""
    return f"daemon of host {name}" if len(hosts) > 1 else "daemon"


class HostCapacityGate:
    """Each host's daemon runs at most its ``max_concurrent_runs`` (a :class:`CapacityGate`
    per host): a full host queues its own tasks, the others' start."""

    kind = "capacity"
    """How views count the tasks it holds back (as the single-host gate)."""

    def __init__(self, hosts: Sequence[str], running: Callable[[str], int]) -> None:
        self._named = len(hosts) > 1
        self.hosts: dict[str, CapacityGate] = {
            name: CapacityGate(functools.partial(running, name), label=self._label(name))
            for name in hosts
        }

    def _label(self, name: str) -> str:
        return f"the daemon of host {name}" if self._named else "the daemon"

    def __getitem__(self, name: str) -> CapacityGate:
        return self.hosts[name]

    def blocks(self, task: Task, now: datetime.datetime) -> str | None:
        gate = self.hosts.get(task.host)
        return None if gate is None else gate.blocks(task, now)  # an unknown host's run fails

    def next_change(self, now: datetime.datetime) -> datetime.datetime | None:
        times = [t for gate in self.hosts.values() if (t := gate.next_change(now)) is not None]
        return min(times, default=None)
