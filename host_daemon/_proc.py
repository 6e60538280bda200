"""Readers of ``/proc``: process status, groups and ancestry, for finding a run's processes.

``/proc/PID/stat`` is parsed from the last ``)``, since a process name may itself contain spaces
and parentheses. A process is identified by its pid *and* its start time (field 22, in clock
ticks since boot), so a pid reused by an unrelated process is never mistaken for the original.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import attrs

__all__ = [
    "ProcStat",
    "descendants",
    "environ_has",
    "group_members",
    "parse_stat",
    "read_stat",
    "snapshot",
]


@attrs.frozen
class ProcStat:
    """The fields of ``/proc/PID/stat`` that the runner needs."""

    pid: int
    comm: str
    state: str
    ppid: int
    pgid: int
    sid: int
    start_time: int

    @property
    def alive(self) -> bool:
        """Whether the process still runs (a zombie ``Z`` or dead ``X`` one does not)."""
        return self.state not in ("Z", "X")


def parse_stat(text: str | bytes) -> ProcStat:
    """Parse the content of a ``/proc/PID/stat`` file."""
    raw = text.encode() if isinstance(text, str) else text
    open_paren = raw.index(b"(")
    close_paren = raw.rindex(b")")
    # Fields after comm start at field 3 (state); start time is field 22, i.e. index 19 here.
    rest = raw[close_paren + 2 :].split()
    return ProcStat(
        pid=int(raw[:open_paren]),
        comm=raw[open_paren + 1 : close_paren].decode("utf-8", errors="replace"),
        state=rest[0].decode("ascii", errors="replace"),
        ppid=int(rest[1]),
        pgid=int(rest[2]),
        sid=int(rest[3]),
        start_time=int(rest[19]),
    )


def read_stat(pid: int) -> ProcStat | None:
    """The status of ``pid``, or None when no such process exists (any more)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return parse_stat(raw)
    except (ValueError, IndexError):
        return None


def snapshot() -> dict[int, ProcStat]:
    """The status of every process visible in ``/proc`` right now, zombies included."""
    stats: dict[int, ProcStat] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return stats
    for name in names:
        if name.isdigit():
            stat = read_stat(int(name))
            if stat is not None:
                stats[stat.pid] = stat
    return stats


def group_members(pgid: int, stats: Mapping[int, ProcStat] | None = None) -> list[ProcStat]:
    """Processes whose process group is ``pgid`` (zombies included: check ``.alive``)."""
    stats = snapshot() if stats is None else stats
    return [stat for stat in stats.values() if stat.pgid == pgid]


def descendants(
    pids: int | Iterable[int], stats: Mapping[int, ProcStat] | None = None
) -> list[ProcStat]:
    """The processes below ``pids`` by parent-pid chains (the roots themselves excluded).

    A chain is only followed while each ancestor lives: a process whose parent died has been
    reparented (to init or a subreaper) and no longer points back here.
    """
    stats = snapshot() if stats is None else stats
    roots = {pids} if isinstance(pids, int) else set(pids)
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: dict[int, ProcStat] = {}
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found and child not in roots:
                found[child] = stats[child]
                stack.append(child)
    return list(found.values())


def environ_has(pid: int, entry: bytes) -> bool | None:
    """Whether ``entry`` (``b"NAME=value"``) is in the environment ``pid`` was started with.

    None when it cannot be told: the process is gone or not ours to read, or its environment
    reads empty (a zombie, or a process caught inside ``execve`` before its new stack is set).
    """
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            data = file.read()
    except OSError:
        return None
    if not data:
        return None
    return entry in data.split(b"\0")
