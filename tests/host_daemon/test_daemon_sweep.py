"""A daemon started on a state directory ends what a SIGKILLed earlier instance left running.

Real processes throughout: ``python -m host_daemon`` subprocesses, an agent that starts a tool
process in a session of its own and ignores SIGTERM, and ``/proc`` to see who lives.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
from _support.polling import eventually

from host_daemon import AgentEvent, DaemonError, RunRequest, RunStarted, open_run
from host_daemon._proc import read_stat
from host_daemon._sweep import DAEMON_MARKER_ENV, DaemonIdentity

DEADLINE = 30.0

# Starts a tool in a session of its own (out of the run's group), reports its pid, ignores TERM
# (an ignored signal stays ignored across exec).
_AGENT = """#!/bin/sh
trap '' TERM
setsid sleep 600 </dev/null >/dev/null 2>&1 &
echo "sleeper $!"
exec sleep 600
"""


@attrs.define
class Daemon:
    process: trio.Process
    logs: list[dict[str, Any]] = attrs.field(factory=list)
    changed: trio.Event = attrs.field(factory=trio.Event)

    async def wait_log(self, message: str) -> dict[str, Any]:
        with trio.fail_after(DEADLINE):
            while True:
                for entry in self.logs:
                    if entry.get("message") == message:
                        return entry
                self.changed = trio.Event()
                await self.changed.wait()

    async def pump(self) -> None:
        assert self.process.stderr is not None
        buffer = b""
        async for chunk in self.process.stderr:
            *lines, buffer = (buffer + chunk).split(b"\n")
            self.logs.extend(json.loads(line) for line in lines)
            self.changed.set()


@contextlib.asynccontextmanager
async def daemon_on(
    state: pathlib.Path, root: pathlib.Path, agent: pathlib.Path
) -> AsyncIterator[Daemon]:
    """``python -m host_daemon`` on ``state``, killed (if still running) when the block ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAEMON_TOKEN")}
    env["CLAUDE_PATH"] = str(agent)
    argv = [sys.executable, "-m", "host_daemon", "--listen", "127.0.0.1:0", "--root", str(root)]
    argv += ["--state-dir", str(state), "--kill-grace", "1", "--log-format", "json"]
    async with trio.open_nursery() as nursery:
        process = await trio.lowlevel.open_process(argv, env=env, stderr=subprocess.PIPE)
        daemon = Daemon(process)
        nursery.start_soon(daemon.pump)
        try:
            yield daemon
        finally:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                await process.wait()
            nursery.cancel_scope.cancel()


def alive(pid: int) -> bool:
    stat = read_stat(pid)
    return stat is not None and stat.alive


async def marked_sleeper(marker: str) -> trio.Process:
    env = dict(os.environ, **{DAEMON_MARKER_ENV: marker})
    return await trio.lowlevel.open_process(["sleep", "600"], env=env, stdin=subprocess.DEVNULL)


async def test_restarted_daemon_ends_what_a_killed_one_left_and_spares_others(
    tmp_path: pathlib.Path,
) -> None:
    """After a SIGKILL, the next daemon on the state dir ends the escaped tool; others live."""
    state, root = tmp_path / "state", tmp_path / "root"
    root.mkdir()
    agent = tmp_path / "agent"
    agent.write_text(_AGENT)
    agent.chmod(0o755)
    spared: list[trio.Process] = []
    sleeper = 0
    try:
        async with daemon_on(state, root, agent) as first:
            listening = await first.wait_log("listening")
            token = (state / "daemon.token").read_text().strip()
            request = RunRequest(agent="claude", prompt="go", cwd=str(root))
            with contextlib.suppress(DaemonError):
                async with open_run(listening["host"], listening["port"], token, request) as run:
                    async for event in run:
                        if isinstance(event, RunStarted):
                            leader = event.pid
                        if isinstance(event, AgentEvent) and event.raw.startswith("sleeper "):
                            sleeper = int(event.raw.split()[1])
                            break
                    first.process.kill()  # while the run is in flight: nothing ends it
                    await first.process.wait()
                    os.kill(leader, signal.SIGKILL)  # it ignored the kernel's SIGTERM
        first_identity = DaemonIdentity.parse(f"x:{first.process.pid}:0".encode())
        assert first_identity is not None
        await eventually(lambda: not alive(leader), "the agent leader to die")
        assert alive(sleeper), "the escaped tool should have outlived the killed daemon"
        # A dead instance of a daemon on another state dir, and a live one on this state dir.
        other = DaemonIdentity.of_this_process(tmp_path / "other-state")
        mine = DaemonIdentity.of_this_process(state)
        dead_pid = first_identity.pid
        spared.append(await marked_sleeper(f"{other.namespace}:{dead_pid}:{other.start_time}"))
        spared.append(await marked_sleeper(mine.marker))
        async with daemon_on(state, root, agent) as second:
            swept = await second.wait_log("swept what earlier instances left")
            assert swept["processes"] == 1
            await eventually(lambda: not alive(sleeper), "the escaped tool to be ended")
            ended = await second.wait_log("ending a process left by an earlier daemon instance")
            assert ended["pid"] == sleeper
            assert all(process.returncode is None for process in spared)
            assert all(alive(process.pid) for process in spared)
    finally:
        for process in spared:
            process.kill()
            await process.wait()
        if sleeper and alive(sleeper):
            os.kill(sleeper, signal.SIGKILL)


@pytest.mark.parametrize("marker", [b"", b"abc", b"ns:1", b"ns:x:2", b":1:2"])
def test_malformed_markers_name_no_instance(marker: bytes) -> None:
    """A marker that is not ``namespace:pid:start_time`` names no daemon (nothing is swept)."""
    assert DaemonIdentity.parse(marker) is None
