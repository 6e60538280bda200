"""``coding-agent serve --port 0`` as a real subprocess on a state directory, for tests."""

from __future__ import annotations

import contextlib
import pathlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import attrs
import trio

from _support.agent_up import base_env

__all__ = ["STARTUP_S", "Served", "serving"]

STARTUP_S = 60.0


@attrs.frozen
class Served:
    process: trio.Process
    url: str


@contextlib.asynccontextmanager
async def serving(state: pathlib.Path, *args: str) -> AsyncIterator[Served]:
    """``coding-agent serve --port 0`` on ``state``; SIGTERM (then SIGKILL) when the block ends."""
    env = base_env(STATE_PATH=str(state), DAEMON_TOKEN="d")
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "mcp_server", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert process.stdout is not None
    try:
        line = b""
        with trio.fail_after(STARTUP_S):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1)
                assert chunk, "serve exited before printing its URL"
                line += chunk
        yield Served(process, line.decode().split(": ", 1)[1].strip())
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(30):
                    await process.wait()
            if process.returncode is None:
                process.kill()
            await process.wait()
            await process.stdout.aclose()
