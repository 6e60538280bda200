"""What a killed daemon left behind: find it at the next start, and end it.

A daemon killed with SIGKILL cannot end its runs: their leaders get SIGTERM from the kernel
(``PR_SET_PDEATHSIG``), but a tool process that an agent started in a session of its own and
does not clean up lives on, reparented to init. So every run's environment carries the daemon's
marker, ``CODING_AGENT_DAEMON=<namespace>:<pid>:<start time>``: the namespace names the state
directory (a hash of its real path), the pid and start time the daemon instance. At start, a
daemon with a state directory ends every process whose marker has its own namespace and names
an instance that is gone (SIGTERM, a grace period, SIGKILL). Processes of daemons with another
state directory, or of an instance still alive, are spared.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
from typing import Final

import attrs
import trio

from ._proc import ProcStat, read_stat, snapshot
from ._tree import signal_verified

__all__ = ["DAEMON_MARKER_ENV", "DaemonIdentity", "find_leftovers", "sweep_leftovers"]

log = logging.getLogger("host_daemon")

DAEMON_MARKER_ENV: Final = "CODING_AGENT_DAEMON"
_PREFIX: Final = f"{DAEMON_MARKER_ENV}=".encode()
#: After SIGKILL, how long the swept processes get to vanish before the sweep gives up on them.
_KILL_WAIT_S: Final = 5.0


@attrs.frozen
class DaemonIdentity:
    """One daemon instance: its state directory's namespace, its pid and start time."""

    namespace: str
    pid: int
    start_time: int

    @classmethod
    def of_this_process(cls, state_dir: str | os.PathLike[str] | None) -> DaemonIdentity:
        """This process as a daemon for ``state_dir`` (no state directory: a namespace of its own).

        Without a state directory there is no earlier instance to recognise: the namespace is
        then unique to this instance, and nothing is swept.
        """
        me = read_stat(os.getpid())
        start_time = me.start_time if me is not None else 0
        if state_dir is None:
            namespace = f"pid{os.getpid()}-{start_time}"
        else:
            real = os.path.realpath(state_dir).encode("utf-8", "surrogateescape")
            namespace = hashlib.sha256(real).hexdigest()[:16]
        return cls(namespace=namespace, pid=os.getpid(), start_time=start_time)

    @property
    def marker(self) -> str:
        """The value of ``CODING_AGENT_DAEMON`` in this instance's runs."""
        return f"{self.namespace}:{self.pid}:{self.start_time}"

    @classmethod
    def parse(cls, marker: bytes) -> DaemonIdentity | None:
        """The identity a marker names, or ``None`` if it is malformed."""
        namespace, _, rest = marker.decode("utf-8", "replace").partition(":")
        pid, _, start_time = rest.partition(":")
        if not namespace or not pid.isdecimal() or not start_time.isdecimal():
            return None
        return cls(namespace=namespace, pid=int(pid), start_time=int(start_time))

    def is_alive(self) -> bool:
        """Whether this instance still runs (its pid alive with its start time)."""
        stat = read_stat(self.pid)
        return stat is not None and stat.alive and stat.start_time == self.start_time


def _marker_of(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            data = file.read()
    except OSError:  # gone, or not ours to read
        return None
    for entry in data.split(b"\0"):
        if entry.startswith(_PREFIX):
            return entry[len(_PREFIX) :]
    return None


def find_leftovers(identity: DaemonIdentity) -> list[ProcStat]:
    """Live processes marked by a dead earlier instance of the daemon ``identity`` is."""
    found = []
    for stat in snapshot().values():
        if stat.pid == identity.pid or not stat.alive:
            continue
        marker = _marker_of(stat.pid)
        owner = DaemonIdentity.parse(marker) if marker is not None else None
        if owner is None or owner.namespace != identity.namespace or owner == identity:
            continue
        if not owner.is_alive():
            found.append(stat)
    return found


async def sweep_leftovers(identity: DaemonIdentity, kill_grace: float) -> list[ProcStat]:
    """End what earlier instances left (SIGTERM, ``kill_grace``, SIGKILL); the processes swept.

    Each process is signalled through a pidfd after its start time was checked again, so a pid
    reused since the scan is never hit.
    """
    leftovers = find_leftovers(identity)
    for stat in leftovers:
        log.warning(
            "ending a process left by an earlier daemon instance",
            extra={"fields": {"pid": stat.pid, "command": stat.comm}},
        )
        signal_verified(stat, signal.SIGTERM)
        signal_verified(stat, signal.SIGCONT)  # a stopped one must see its TERM
    pending = leftovers
    deadline = trio.current_time() + kill_grace
    killed = False
    while pending := [stat for stat in pending if _still_running(stat)]:
        now = trio.current_time()
        if now >= deadline and not killed:
            for stat in pending:
                signal_verified(stat, signal.SIGKILL)
            killed, deadline = True, now + _KILL_WAIT_S
        elif now >= deadline:
            log.warning(
                "processes left by an earlier daemon instance survive SIGKILL",
                extra={"fields": {"pids": [stat.pid for stat in pending]}},
            )
            break
        await trio.sleep(0.05)  # /proc offers nothing to wait on
    log.info("swept what earlier instances left", extra={"fields": {"processes": len(leftovers)}})
    return leftovers


def _still_running(stat: ProcStat) -> bool:
    current = read_stat(stat.pid)
    return current is not None and current.alive and current.start_time == stat.start_time
