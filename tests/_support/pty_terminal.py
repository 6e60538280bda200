"""A program in a pseudo-terminal, for driving interactive TUIs (Claude Code) in tests.

    async with in_terminal(argv, env=env, cwd=cwd) as term:
        await term.type("/exit\\r")
        term.screen()  # what it printed so far, escape sequences removed

The program gets a new session with the terminal as its controlling tty (a 160x50 window). A
task of the context's nursery reads everything it prints (a TUI blocks when nobody reads) and
answers the Primary Device Attributes query a terminal emulator answers, which TUIs wait on.
Leaving the block sends SIGTERM to the program's process group, then SIGKILL after a grace.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import struct
import termios
from collections.abc import AsyncIterator, Mapping, Sequence

import attrs
import trio

ROWS, COLUMNS = 50, 160
STOP_TIMEOUT_S = 20.0
_DEVICE_ATTRIBUTES_QUERY = b"\x1b[c"
_DEVICE_ATTRIBUTES_ANSWER = b"\x1b[?62;22c"  # a VT220 with ANSI colour, as xterm answers
_ESCAPES = re.compile(
    rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]"  # CSI
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    rb"|\x1b[()][0-9A-Za-z]|\x1b[=>NOM78c]"  # charsets, keypad, single shifts
)


@attrs.define(eq=False)
class Terminal:
    """The running program and everything it printed."""

    process: trio.Process
    _master: trio.lowlevel.FdStream
    output: bytearray = attrs.field(factory=bytearray)

    async def type(self, text: str) -> None:
        """Send ``text`` as keystrokes (``\\r`` is Enter)."""
        await self._master.send_all(text.encode())

    def screen(self) -> str:
        """What the program printed so far, without escape sequences (for failure messages)."""
        return _ESCAPES.sub(b"", bytes(self.output)).decode(errors="replace")

    async def _pump(self) -> None:
        while True:
            try:
                chunk = await self._master.receive_some(65536)
            except OSError as exc:  # EIO: the program and its children closed the terminal
                if exc.errno != errno.EIO:
                    raise
                return
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            if not chunk:
                return
            self.output += chunk
            if _DEVICE_ATTRIBUTES_QUERY in chunk:
                with contextlib.suppress(OSError, trio.BrokenResourceError):
                    await self._master.send_all(_DEVICE_ATTRIBUTES_ANSWER)


def _controlling_tty() -> None:
    """In the child, after ``setsid``: make stdin (the terminal) its controlling tty."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@contextlib.asynccontextmanager
async def in_terminal(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: os.PathLike[str] | str
) -> AsyncIterator[Terminal]:
    """Run ``argv`` in a new pseudo-terminal for the block (see the module docstring)."""
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        process = await trio.lowlevel.open_process(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(env, TERM="xterm-256color"),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_controlling_tty,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    terminal = Terminal(process, trio.lowlevel.FdStream(master))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(terminal._pump)
            try:
                yield terminal
            finally:
                with trio.CancelScope(shield=True):
                    await _stop(process)
                nursery.cancel_scope.cancel()
    finally:
        await terminal._master.aclose()


async def _stop(process: trio.Process) -> None:
    """SIGTERM the program's process group, SIGKILL what is left after a grace, reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with trio.move_on_after(STOP_TIMEOUT_S):
        await process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
