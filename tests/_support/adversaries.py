"""Adversarial children for the process runner, and helpers to check they are really gone.

Run as a script, ``python adversaries.py NAME PIDDIR [ARGS...]`` becomes the adversary NAME.
Every process it creates records itself in PIDDIR as a file named after its pid, holding its
start time (``/proc/PID/stat`` field 22), so a test can tell the process from a later one that
reuses the pid. Build the argv with :func:`argv`; wait for the tree with :func:`wait_recorded`;
check with :func:`survivors` / :func:`wait_gone`.

Adversaries (the number of processes each records is in :data:`COUNTS`):

- ``ignore-term``: leader -> child -> grandchild; the grandchild ignores SIGTERM.
- ``leader-exits``: the leader starts a background child holding the output pipes, then exits 0.
- ``chatty``: prints numbered lines as fast as it can, forever.
- ``silent``: never prints, sleeps forever.
- ``setsid``: a child calls ``setsid()`` (a new session and group, as Claude Code's Bash tool
  does) and sleeps forever.
- ``setsid-double-fork``: a child calls ``setsid()``, forks a grandchild and exits, so the
  grandchild is reparented (to init, or to a subreaper).
- ``setsid-clear-env``: a child calls ``setsid()`` and starts a grandchild with an *empty*
  environment (so no inherited marker), then exits once ``PIDDIR/release`` exists, orphaning it.
- ``graceful``: on SIGTERM takes 0.3 s to clean up (as Claude Code kills its tool trees), writes
  ``PIDDIR/cleaned`` and exits 143.
- ``graceful-child``: the leader dies of SIGTERM at once; its child, in its process group, is
  ``graceful`` (so only a signal to the whole group gives it its clean-up).
- ``flood SIZE``: writes lines of SIZE bytes forever, keeping the running total of bytes
  written in ``PIDDIR/progress``.
- ``host SUBREAPER ADVERSARY COUNT``: a stand-in daemon. It becomes a subreaper if SUBREAPER is
  ``1``, runs ADVERSARY through ``spawn_group`` (recording into PIDDIR),
  waits until COUNT processes are recorded and prints ``ready``; on a line from stdin it leaves
  the block (cancelling it) and prints ``ended``, then exits at stdin's EOF. ``host_daemon``
  must be importable (``PYTHONPATH``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

SCRIPT = Path(__file__).resolve()

COUNTS = {
    "ignore-term": 3,
    "leader-exits": 2,
    "chatty": 1,
    "silent": 1,
    "setsid": 2,
    "setsid-double-fork": 3,
    "setsid-clear-env": 3,
    "graceful": 1,
    "graceful-child": 2,
    "flood": 1,
}


def argv(name: str, piddir: Path, *args: str) -> list[str]:
    """The argv that runs adversary ``name``, recording into ``piddir``."""
    return [sys.executable, str(SCRIPT), name, str(piddir), *args]


def _start_time(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return int(text[text.rindex(")") + 2 :].split()[19])


def _state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()[0]


def recorded(piddir: Path) -> dict[int, int]:
    """The processes recorded in ``piddir``: pid -> start time."""
    found: dict[int, int] = {}
    for entry in piddir.iterdir():
        if entry.name.isdigit():
            text = entry.read_text()
            if text.endswith("\n"):  # written in full
                found[int(entry.name)] = int(text)
    return found


def survivors(piddir: Path, *, include_zombies: bool = True) -> list[int]:
    """Recorded processes that still exist in /proc (same pid *and* start time)."""
    alive = []
    for pid, start_time in recorded(piddir).items():
        if _start_time(pid) == start_time and (include_zombies or _state(pid) not in ("Z", "X")):
            alive.append(pid)
    return sorted(alive)


async def wait_recorded(piddir: Path, count: int, *, timeout: float = 30.0) -> dict[int, int]:
    """Wait until ``count`` processes have recorded themselves."""
    import trio  # noqa: PLC0415 -- the script side runs without trio on its path

    with trio.fail_after(timeout):
        # A directory offers no event to wait on: poll it.
        while len(found := recorded(piddir)) < count:  # noqa: ASYNC110
            await trio.sleep(0.01)
    return found


async def wait_gone(
    piddir: Path, *, include_zombies: bool = True, timeout: float = 15.0
) -> list[int]:
    """Wait until no recorded process exists (or runs); return what is left."""
    import trio  # noqa: PLC0415 -- the script side runs without trio on its path

    with trio.move_on_after(timeout):
        # /proc offers no event for another process's end: poll it.
        while survivors(piddir, include_zombies=include_zombies):  # noqa: ASYNC110
            await trio.sleep(0.02)
    return survivors(piddir, include_zombies=include_zombies)


# -- the script side ----------------------------------------------------------------------------


def _record(piddir: Path) -> None:
    pid = os.getpid()
    temp = piddir / f".{pid}"
    temp.write_text(f"{_start_time(pid)}\n")
    temp.rename(piddir / str(pid))


def _sleep_forever() -> None:
    while True:
        time.sleep(60)


def _fork(child: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            child()
        finally:
            os._exit(0)
    return pid


def _ignore_term(piddir: Path) -> None:
    def grandchild() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _record(piddir)
        _sleep_forever()

    def child() -> None:
        _record(piddir)
        _fork(grandchild)
        _sleep_forever()

    _record(piddir)
    _fork(child)
    _sleep_forever()


def _leader_exits(piddir: Path) -> None:
    def child() -> None:
        _record(piddir)
        print("background child holds the pipe", flush=True)
        _sleep_forever()

    _record(piddir)
    _fork(child)
    while len(recorded(piddir)) < 2:
        time.sleep(0.01)
    print("leader exits", flush=True)


def _chatty(piddir: Path) -> None:
    _record(piddir)
    count = 0
    while True:
        count += 1
        sys.stdout.write(f"line {count}\n")


def _setsid(piddir: Path, *, double_fork: bool) -> None:
    def grandchild() -> None:
        _record(piddir)
        _sleep_forever()

    def child() -> None:
        os.setsid()
        if double_fork:
            _fork(grandchild)
            while len(recorded(piddir)) < 2:
                time.sleep(0.01)
            _record(piddir)
            return  # exits: the grandchild is orphaned
        _record(piddir)
        _sleep_forever()

    _record(piddir)
    _fork(child)
    _sleep_forever()


def _setsid_clear_env(piddir: Path) -> None:
    def child() -> None:
        os.setsid()
        _record(piddir)
        if os.fork() == 0:
            # An empty environment on purpose: the escapee must carry no run marker.
            os.execve(sys.executable, [sys.executable, str(SCRIPT), "silent", str(piddir)], {})  # noqa: S606
        while not (piddir / "release").exists():
            time.sleep(0.01)

    _record(piddir)
    _fork(child)
    _sleep_forever()


def _graceful(piddir: Path, *, in_child: bool) -> None:
    def on_term(signum: int, frame: object) -> None:
        time.sleep(0.3)
        (piddir / "cleaned").write_text("cleaned\n")
        os._exit(128 + signum)

    def clean_up_on_term() -> None:
        signal.signal(signal.SIGTERM, on_term)
        _record(piddir)
        _sleep_forever()

    if in_child:
        _record(piddir)
        _fork(clean_up_on_term)
        _sleep_forever()
    clean_up_on_term()


def _flood(piddir: Path, size: int) -> None:
    _record(piddir)
    line = b"x" * (size - 1) + b"\n"
    written = 0
    fd = os.open(piddir / "progress", os.O_WRONLY | os.O_CREAT, 0o600)
    while True:
        written += os.write(1, line)
        os.pwrite(fd, f"{written:>20}".encode(), 0)


def _host(piddir: Path, subreaper: bool, adversary: str, count: int) -> None:
    import trio  # noqa: PLC0415 -- only this mode needs trio and the runner

    from host_daemon import become_subreaper, spawn_group  # noqa: PLC0415

    if subreaper:
        become_subreaper()

    async def main() -> None:
        stdin = trio.lowlevel.FdStream(os.dup(0))
        run = spawn_group(argv(adversary, piddir), cwd=str(piddir), kill_grace=0.5)
        async with run as proc, trio.open_nursery() as nursery:

            async def drain() -> None:
                async for _ in proc:
                    pass

            nursery.start_soon(drain)
            await wait_recorded(piddir, count)
            print("ready", flush=True)
            await stdin.receive_some()
            nursery.cancel_scope.cancel()
        print("ended", flush=True)
        while await stdin.receive_some():
            pass

    trio.run(main)


def main(args: list[str]) -> None:
    """Become the adversary named in ``args``."""
    name, piddir = args[0], Path(args[1])
    if name == "ignore-term":
        _ignore_term(piddir)
    elif name == "leader-exits":
        _leader_exits(piddir)
    elif name == "chatty":
        _chatty(piddir)
    elif name == "silent":
        _record(piddir)
        _sleep_forever()
    elif name in ("setsid", "setsid-double-fork"):
        _setsid(piddir, double_fork=name == "setsid-double-fork")
    elif name == "setsid-clear-env":
        _setsid_clear_env(piddir)
    elif name in ("graceful", "graceful-child"):
        _graceful(piddir, in_child=name == "graceful-child")
    elif name == "flood":
        _flood(piddir, int(args[2]))
    elif name == "host":
        _host(piddir, args[2] == "1", args[3], int(args[4]))
    else:
        raise SystemExit(f"unknown adversary {name!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
