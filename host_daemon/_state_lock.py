"""One process per state directory: an exclusive ``flock`` on a lock file that names its holder.

Two servers (or daemons) on one state directory would be two writers on one store. The first
takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<state>/<name>`` and writes its pid, command and,
once bound, its URL there; a second one fails at once with :class:`StateDirLocked` naming
them. The kernel releases the lock when the holder exits in any way (a crash or ``SIGKILL``
too), so a lock file left behind never blocks anyone: its stale content is simply replaced.
The descriptor is not inherited by child processes (Python opens it close-on-exec).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
from types import TracebackType
from typing import Any, Final

SERVER_LOCK: Final = "lock"
"""The MCP server's lock file (``coding-agent serve`` and ``up``)."""
DAEMON_LOCK: Final = "daemon.lock"
"""The host daemon's lock file (``host-daemon``, and ``up`` whose daemon runs in-process)."""
MAX_HOLDER_BYTES: Final = 4096
"""A holder's record is read up to this size (it is a line of JSON)."""


class StateDirLocked(OSError):
    """Another live process holds the state directory's lock; the message names it."""

    def __init__(self, path: pathlib.Path, holder: dict[str, Any] | None) -> None:
        super().__init__(
            f"the state directory {path.parent} is in use by {describe_holder(holder)} "
            f"(it holds {path}); stop that one, or give this one another state directory"
        )
        self.path = path
        self.holder = holder


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 (coding-agent up --port 3000) serving http://…`` from a holder's record."""
    if holder is None:
        return "another process (its record is unreadable)"
    text = f"pid {holder.get('pid', '?')}"
    if holder.get("command"):
        text += f" ({holder['command']})"
    url = holder.get("url")
    return text + (f" serving {url}" if url else ", still starting")


class StateLock:
    """A held lock on ``<directory>/<name>``; ``release`` (or leaving the ``with``) frees it."""

    def __init__(self, path: pathlib.Path, fd: int, command: str) -> None:
        self.path = path
        self._fd: int | None = fd
        self.command = command

    @classmethod
    def acquire(cls, directory: pathlib.Path, command: str, name: str = SERVER_LOCK) -> StateLock:
        """Take the lock or raise :class:`StateDirLocked` naming its holder (never waits)."""
        path = directory / name
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateDirLocked(path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        lock = cls(path, fd, command)
        lock.record(None)
        return lock

    def record(self, url: str | None) -> None:
        """Write who holds the lock: this pid, the command and (once bound) the URL."""
        if self._fd is None:
            return
        data = json.dumps({"pid": os.getpid(), "command": self.command, "url": url}).encode()
        data += b"\n"
        # Write, then cut: a reader never sees an empty file while the holder lives.
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        """Free the lock (the file stays: removing it would race with the next holder)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> StateLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, MAX_HOLDER_BYTES, 0)
        holder = json.loads(data)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None
