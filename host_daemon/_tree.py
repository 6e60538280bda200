"""A run's process tree: find every process of the run, and end them all; the daemon as reaper.

Finding "every process of the run" takes four nets, because children may leave the group:

- the process group (what ``killpg`` reaches);
- descendants of those by parent-pid chains, while the ancestors live;
- processes that carry the run's marker in their environment (``CODING_AGENT_RUN_ID``): it is
  inherited across ``setsid()`` and double forks, so an escaped tree is found even after it was
  reparented to init;
- pids seen earlier by any net, verified by their start time (``/proc/PID/stat`` field 22):
  this catches an escaped process that cleared its environment and was then reparented to the
  daemon (a child subreaper, :func:`become_subreaper`), provided a scan saw it while its parent
  lived (scans run every second, and at every step of a termination). One that clears its
  environment, escapes and loses its parent within that second is beyond these nets: systemd's
  ``KillMode=control-group`` still ends it with the daemon.

Signals go through pidfds opened after the start time was checked, so a reused pid is never hit.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from contextlib import suppress
from typing import Final

import trio

from ._proc import ProcStat, descendants, environ_has, read_stat, snapshot

__all__ = [
    "PR_SET_PDEATHSIG",
    "RUN_LEADERS",
    "RunTree",
    "become_subreaper",
    "is_subreaper",
    "prctl",
    "reap_adopted_orphans",
    "signal_verified",
]

logger = logging.getLogger(__name__)

_TRACK_INTERVAL: Final = 1.0
_KILL_WAIT: Final = 5.0  # how long SIGKILLed processes get to vanish (uninterruptible sleep)

PR_SET_PDEATHSIG: Final = 1
_PR_SET_CHILD_SUBREAPER: Final = 36
_PR_GET_CHILD_SUBREAPER: Final = 37

_libc = ctypes.CDLL(None, use_errno=True)
#: ``prctl(2)``, resolved once: a forked child calls it before exec, where no lookup may run.
prctl = _libc.prctl
prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
prctl.restype = ctypes.c_int

#: Pids of run leaders forked by ``spawn_group`` and not yet reaped by it: their exit status
#: belongs to their run, so :func:`reap_adopted_orphans` leaves them alone.
RUN_LEADERS: set[int] = set()


def become_subreaper(enable: bool = True) -> None:
    """Make this process the reaper of its orphaned descendants (``PR_SET_CHILD_SUBREAPER``).

    Then processes that escaped a run with ``setsid()`` and lost their parent are reparented to
    the daemon instead of init, where the runner finds, kills and reaps them; those no run
    finds are reaped by :func:`reap_adopted_orphans` (``serve_daemon`` calls it every second).
    A subreaper must fork only through ``spawn_group``, whose leaders that function spares.
    Call it once, at daemon start; it lasts for the life of the process (``enable=False``
    undoes it, for tests).
    """
    if prctl(_PR_SET_CHILD_SUBREAPER, int(enable), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def is_subreaper() -> bool:
    """Whether this process is a child subreaper (see :func:`become_subreaper`)."""
    flag = ctypes.c_int(0)
    if prctl(_PR_GET_CHILD_SUBREAPER, ctypes.addressof(flag), 0, 0, 0) != 0:
        return False
    return bool(flag.value)


def reap_adopted_orphans() -> list[int]:
    """Reap the dead children of this process that no run leader is; returns their pids.

    A subreaper adopts every orphan below it, including processes that escaped a run unseen
    (a ``setsid()`` with a cleared environment whose parent died before a scan) and those of
    a short run such as ``agent_version``. Without this they would stay zombies for the
    daemon's lifetime. Leaders of live runs are spared: ``spawn_group`` reaps them itself.
    """
    me = os.getpid()
    reaped = []
    for stat in snapshot().values():
        if stat.ppid != me or stat.alive or stat.pid in RUN_LEADERS:
            continue
        with suppress(ChildProcessError):
            if os.waitid(os.P_PID, stat.pid, os.WEXITED | os.WNOHANG) is not None:
                reaped.append(stat.pid)
    return reaped


def signal_verified(stat: ProcStat, sig: int) -> None:
    """Send ``sig`` to the process ``stat`` describes, and never to a pid's new owner."""
    try:
        pidfd = os.pidfd_open(stat.pid)
    except OSError:
        return
    try:
        current = read_stat(stat.pid)
        if current is not None and current.start_time == stat.start_time:
            signal.pidfd_send_signal(pidfd, sig)
    except OSError:
        pass
    finally:
        os.close(pidfd)


class RunTree:
    """The processes of one run, found through the four nets, and how to end them all.

    ``pid`` is the leader's, which is also the process group id; ``marker`` the run's
    ``NAME=value`` environment entry. The leader itself is reaped by its owner, not here.
    """

    def __init__(self, pid: int, start_time: int, marker: bytes, *, kill_grace: float) -> None:
        self.pid = pid
        self._start_time = start_time
        self._marker = marker
        self._kill_grace = kill_grace
        #: Every process of the run seen by the last scan: pid → start time.
        self.seen: dict[int, int] = {pid: start_time}
        self._unmarked: set[tuple[int, int]] = set()
        self._ended = False

    async def track_forever(self) -> None:
        """Scan the run every second (the fourth net needs escapees seen while they lived)."""
        while True:
            await trio.sleep(_TRACK_INTERVAL)
            self.collect()
            self.reap_orphans()

    def collect(self) -> dict[int, ProcStat]:
        """Every process of the run that /proc shows now, zombies included."""
        stats = snapshot()
        me = os.getpid()
        roots = {self.pid}
        for stat in stats.values():
            if stat.pid == me:
                continue
            key = (stat.pid, stat.start_time)
            if stat.pgid == self.pid or self.seen.get(stat.pid) == stat.start_time:
                roots.add(stat.pid)
            elif stat.alive and stat.start_time >= self._start_time and key not in self._unmarked:
                marked = environ_has(stat.pid, self._marker)
                if marked:
                    roots.add(stat.pid)
                elif marked is not None:  # only a definite "no" is remembered
                    self._unmarked.add(key)
        members = {pid: stats[pid] for pid in roots if pid in stats}
        for stat in descendants(roots, stats):
            members[stat.pid] = stat
        members.pop(me, None)
        # A pid absent now never comes back with the same start time: forget it.
        self.seen = {pid: stat.start_time for pid, stat in members.items()}
        self.seen.setdefault(self.pid, self._start_time)
        self._unmarked = {k for k in self._unmarked if k[0] in stats}
        return members

    def reap_orphans(self) -> None:
        """Reap run processes that were reparented to this (subreaper) process and died."""
        me = os.getpid()
        for pid, start_time in list(self.seen.items()):
            if pid == self.pid:
                continue  # the leader is reaped last, by its owner
            stat = read_stat(pid)
            if stat is None or stat.start_time != start_time or stat.ppid != me or stat.alive:
                continue
            with suppress(ChildProcessError):
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)

    async def terminate(self) -> None:
        """End every process of the run: SIGTERM once each, the grace, then SIGKILL; return
        when none is alive (or when SIGKILLed ones outlast ``_KILL_WAIT``, with a warning)."""
        if self._ended:
            return  # everything, the leader included, was seen dead: nothing can come back
        grace_end = trio.current_time() + self._kill_grace
        termed: set[tuple[int, int]] = set()
        delay = 0.005
        while True:
            live = [stat for stat in self.collect().values() if stat.alive]
            self.reap_orphans()
            if not live:
                self._ended = True
                return
            now = trio.current_time()
            if now >= grace_end + _KILL_WAIT:
                logger.warning(
                    "run %d: %d process(es) survive SIGKILL (uninterruptible?): %s",
                    self.pid,
                    len(live),
                    sorted(stat.pid for stat in live),
                )
                return
            if now >= grace_end:
                # SIGKILL, again each round: it cannot be caught, and catches late forks.
                with suppress(OSError):
                    os.killpg(self.pid, signal.SIGKILL)
                for stat in live:
                    signal_verified(stat, signal.SIGKILL)
            else:
                # SIGTERM exactly once per process: a second one makes some CLIs skip their
                # cleanup, or re-enters a handler that is still cleaning up.
                fresh = [stat for stat in live if (stat.pid, stat.start_time) not in termed]
                if not termed:
                    with suppress(OSError):
                        os.killpg(self.pid, signal.SIGTERM)
                        os.killpg(self.pid, signal.SIGCONT)  # a stopped one must see its TERM
                    fresh = [stat for stat in fresh if stat.pgid != self.pid]
                    termed.update((s.pid, s.start_time) for s in live if s.pgid == self.pid)
                for stat in fresh:
                    signal_verified(stat, signal.SIGTERM)
                    signal_verified(stat, signal.SIGCONT)
                    termed.add((stat.pid, stat.start_time))
            await trio.sleep(delay)
            delay = min(delay * 2, 0.1)
