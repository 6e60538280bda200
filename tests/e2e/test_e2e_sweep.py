"""``coding-agent up`` killed with SIGKILL: the next ``up`` on its state ends the escaped tool."""

from __future__ import annotations

import os
import pathlib
import signal

from _support.agent_up import base_env, coding_agent_up, sdk_client
from _support.polling import eventually

from host_daemon._proc import read_stat

# Ignores SIGTERM (kept across exec), starts a tool in a session of its own, writes both pids.
_AGENT = """#!/bin/sh
trap '' TERM
setsid sleep 600 </dev/null >/dev/null 2>&1 &
echo $! > sleeper.pid.tmp && mv sleeper.pid.tmp sleeper.pid
echo $$ > leader.pid.tmp && mv leader.pid.tmp leader.pid
exec sleep 600
"""


def alive(pid: int) -> bool:
    stat = read_stat(pid)
    return stat is not None and stat.alive


async def test_restarted_up_ends_what_a_killed_up_left(tmp_path: pathlib.Path) -> None:
    """The tool a TERM-ignoring agent left after ``up`` was SIGKILLed is gone after a restart."""
    root = tmp_path / "root"
    root.mkdir()
    agent = tmp_path / "claude"
    agent.write_text(_AGENT)
    agent.chmod(0o755)
    env = base_env(CLAUDE_PATH=str(agent))
    state = tmp_path / "state"
    sleeper = 0
    try:
        async with coding_agent_up(state, root, env) as up:
            async with sdk_client(up) as client:
                task = {"title": "t", "instructions": "go"}
                created = await client.call_tool("create_task", task)
                assert not created.is_error, created
                await eventually((root / "leader.pid").exists, "the agent's pids")
            sleeper = int((root / "sleeper.pid").read_text())
            leader = int((root / "leader.pid").read_text())
            up.kill()
            await up.process.wait()
        os.kill(leader, signal.SIGKILL)  # it ignored the kernel's SIGTERM
        await eventually(lambda: not alive(leader), "the agent leader to die")
        assert alive(sleeper), "the escaped tool should have outlived the killed up"
        async with coding_agent_up(state, root, env):
            await eventually(lambda: not alive(sleeper), "the escaped tool to be ended")
    finally:
        if sleeper and alive(sleeper):
            os.kill(sleeper, signal.SIGKILL)
