"""spawn_group(stdin=True): a stdin pipe the daemon writes to, with backpressure and a clear end."""

from __future__ import annotations

import sys

import pytest
import trio

from host_daemon import GroupProcess, spawn_group
from host_daemon._process import StdinClosed

PY = sys.executable


async def test_default_stdin_is_dev_null() -> None:
    """Without ``stdin`` the group reads end of file at once, and ``write_stdin`` refuses."""
    reader = "import sys; print(repr(sys.stdin.read()))"
    async with spawn_group([PY, "-c", reader], cwd="/") as proc:
        lines = [line.data async for line in proc if line.stream == "stdout"]
        with pytest.raises(StdinClosed, match="no stdin pipe"):
            await proc.write_stdin(b"x\n")
    assert lines == [b"''"]


async def test_lines_written_reach_the_agent_and_close_ends_it() -> None:
    """Lines written arrive in order; closing stdin gives the agent end of file."""
    echo = "import sys\nfor line in sys.stdin: print('got', line.strip(), flush=True)\nprint('eof')"
    async with spawn_group([PY, "-c", echo], cwd="/", stdin=True) as proc:
        await proc.write_stdin(b"one\n")
        first = await proc.__anext__()
        await proc.write_stdin(b"two\n")
        second = await proc.__anext__()
        await proc.close_stdin()
        rest = [line.data async for line in proc if line.stream == "stdout"]
        status = await proc.wait()
    assert (first.data, second.data, rest) == (b"got one", b"got two", [b"eof"])
    assert status.exit_code == 0


async def test_write_waits_while_the_agent_does_not_read() -> None:
    """A full pipe makes ``write_stdin`` wait (backpressure) until the agent reads."""
    reader = "import sys, time; print('ready', flush=True); sys.stdin.readline(); time.sleep(60)"
    async with spawn_group([PY, "-c", reader], cwd="/", stdin=True, kill_grace=1.0) as proc:
        await proc.__anext__()
        with trio.move_on_after(1.0) as waiting:
            await proc.write_stdin(b"line\n" + b"x" * (4 * 1024 * 1024))
        assert waiting.cancelled_caught


async def _write_until_refused(proc: GroupProcess) -> None:
    for _ in range(64):  # the first writes may fit the pipe before EPIPE shows
        await proc.write_stdin(b"x" * 65536)


async def test_write_after_the_agent_exited_raises_stdin_closed() -> None:
    """Writing to an agent that exited is a ``StdinClosed`` naming the reason, not a crash."""
    async with spawn_group([PY, "-c", "pass"], cwd="/", stdin=True) as proc:
        await proc.wait()
        with pytest.raises(StdinClosed, match="closed its stdin"):
            await _write_until_refused(proc)


async def test_write_after_close_raises_stdin_closed() -> None:
    """Writing after ``close_stdin`` raises ``StdinClosed``; closing twice is fine."""
    async with spawn_group([PY, "-c", "import sys; sys.stdin.read()"], cwd="/", stdin=True) as proc:
        await proc.close_stdin()
        await proc.close_stdin()
        with pytest.raises(StdinClosed, match="closed by the daemon"):
            await proc.write_stdin(b"x\n")
        status = await proc.wait()
    assert status.exit_code == 0
