"""One server per state directory (issue 15, item 5): ``serve`` and ``up`` lock ``<state>/lock``.

Real subprocesses: the second one exits 2 naming the holder (pid, command, URL); a lock left by
a SIGKILLed holder does not block the next one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import subprocess
import sys

import httpx
import pytest
import trio
from _support.agent_up import base_env, coding_agent_up
from _support.serving import STARTUP_S, serving

from host_daemon import StateDirLocked, StateLock


async def second(command: str, state: pathlib.Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``coding-agent COMMAND --port 0`` on ``state`` to its end."""
    argv = [sys.executable, "-m", "mcp_server", command, "--port", "0", "--state-path", str(state)]
    if command == "up":
        argv += ["--root", str(state.parent)]
    with trio.fail_after(STARTUP_S):
        return await trio.run_process(
            argv,
            env=base_env(DAEMON_TOKEN="d"),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_second_serve_on_the_same_state_exits_naming_the_first(
    tmp_path: pathlib.Path,
) -> None:
    """A second serve exits 2 naming the first's pid, command and URL; the first serves on."""
    state = tmp_path / "state"
    async with serving(state) as first:
        result = await second("serve", state)
        assert result.returncode == 2, result.stderr
        message = result.stderr.decode()
        assert b"Traceback" not in result.stderr
        assert f"pid {first.process.pid} (coding-agent serve --port 0)" in message
        assert f"serving {first.url}" in message
        assert result.stdout == b""  # it never printed a URL: it never served
        async with httpx.AsyncClient() as http:
            health = await http.get(first.url.removesuffix("/mcp") + "/healthz")
        assert health.status_code == 200


async def test_second_up_on_the_same_state_exits_naming_the_first(tmp_path: pathlib.Path) -> None:
    """A second up exits 2 naming the first up (pid, command line, MCP URL)."""
    state, root = tmp_path / "state", tmp_path / "root"
    root.mkdir()
    async with coding_agent_up(state, root, base_env()) as up:
        result = await second("up", state)
        assert result.returncode == 2, result.stderr
        message = result.stderr.decode()
        assert f"pid {up.process.pid} (coding-agent up --port 0 --state-path" in message
        assert f"serving {up.url}" in message
        assert "Traceback" not in message
        assert b"MCP URL" not in result.stdout


async def test_serve_beside_up_on_the_same_state_is_refused(tmp_path: pathlib.Path) -> None:
    """serve and up share the lock: serve on a running up's state names the up."""
    state, root = tmp_path / "state", tmp_path / "root"
    root.mkdir()
    async with coding_agent_up(state, root, base_env()) as up:
        result = await second("serve", state)
    assert result.returncode == 2
    assert f"pid {up.process.pid} (coding-agent up" in result.stderr.decode()


async def test_lock_of_a_sigkilled_serve_does_not_block_the_next(tmp_path: pathlib.Path) -> None:
    """The kernel drops a killed holder's lock: the next serve starts and names itself."""
    state = tmp_path / "state"
    async with serving(state) as first:
        first.process.kill()
        await first.process.wait()
    stale = json.loads((state / "lock").read_text())
    assert stale["pid"] == first.process.pid  # the file stayed, naming the dead holder
    async with serving(state) as again:
        holder = json.loads((state / "lock").read_text())
        assert holder == {
            "pid": again.process.pid,
            "command": "coding-agent serve --port 0",
            "url": again.url,
        }


async def test_lock_is_refused_in_process_too_and_freed_on_release(
    tmp_path: pathlib.Path,
) -> None:
    """flock conflicts between two opens in one process as well; release frees it at once."""
    held = StateLock.acquire(tmp_path, "first")
    try:
        held.record("http://127.0.0.1:1/mcp")
        with pytest.raises(StateDirLocked) as refused:
            StateLock.acquire(tmp_path, "second")
        assert refused.value.holder is not None
        assert refused.value.holder["command"] == "first"
        assert "pid" in str(refused.value)
    finally:
        held.release()
    with StateLock.acquire(tmp_path, "second") as lock:
        assert lock.path.stat().st_mode & 0o777 == 0o600


def test_file_system_without_locks_is_warned_not_fatal(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """flock refused with ENOLCK (a file system without locks): start anyway, and say so."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with StateLock.acquire(tmp_path, "serve") as lock:
        assert json.loads(lock.path.read_text())["command"] == "serve"
    assert any("has no locks" in r.getMessage() for r in caplog.records)
