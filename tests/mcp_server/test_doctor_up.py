"""`coding-agent doctor` beside a real `coding-agent up`: it finds what `up` recorded."""

from __future__ import annotations

import os
import pathlib
import sys

import trio
from _support.agent_up import base_env, coding_agent_up
from _support.daemon import install_stand_in_agent
from _support.serving import serving


async def _doctor(state: pathlib.Path, tmp: pathlib.Path, **env: str) -> tuple[int, str]:
    """`python -m mcp_server doctor --state-path STATE`, nothing else pointed anywhere."""
    argv = [sys.executable, "-m", "mcp_server", "doctor", "--state-path", str(state)]
    argv += ["--workspace", str(tmp / "no-workspace"), "--timeout", "60"]
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp), **env}
    if "PYTHONPATH" in os.environ:
        environ["PYTHONPATH"] = os.environ["PYTHONPATH"]
    result = await trio.run_process(argv, env=environ, capture_stdout=True, check=False)
    return result.returncode, result.stdout.decode()


async def test_doctor_beside_up_is_all_good(tmp_path: pathlib.Path) -> None:
    """The daemon's address and token, the MCP URL and token: all from up's state dir, all ok."""
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    env = base_env(CLAUDE_PATH=install_stand_in_agent(tmp_path))
    async with coding_agent_up(state, root, env) as up:
        returncode, out = await _doctor(state, tmp_path)
        address = up.daemon.split(" ")[0]
    assert returncode == 0, out
    assert "[FAIL]" not in out
    assert f"[ ok ] token: daemon token read from {state / 'daemon.token'}" in out
    assert f"answers at {address} (recorded by `coding-agent up` in" in out
    assert f"[ ok ] mcp: {up.url} (recorded by the running server in {state / 'mcp.url'})" in out
    assert "12 tools (protocol 2025-11-25, and 2026-07-28)" in out
    assert out.endswith("all good\n")
    assert not (state / "daemon.address").exists()  # up forgot it as it stopped


async def test_doctor_beside_serve_checks_the_mcp_url(tmp_path: pathlib.Path) -> None:
    """`serve` (the container's server) records its URL too: doctor beside it checks MCP."""
    state = tmp_path / "state"
    async with serving(state) as served:
        returncode, out = await _doctor(state, tmp_path)
    assert f"[ ok ] mcp: {served.url} (recorded by the running server in" in out, out
    assert "12 tools (protocol 2025-11-25, and 2026-07-28)" in out
    assert not (state / "mcp.url").exists()  # serve forgot it as it stopped
    del returncode  # no daemon runs here: its checks fail, which is not this test's concern


async def test_serve_on_every_address_records_its_loopback_url(tmp_path: pathlib.Path) -> None:
    """`serve --host 0.0.0.0` (as in the container) records the URL a local client can use."""
    state = tmp_path / "state"
    async with serving(state, "--host", "0.0.0.0") as served:
        port = served.url.rsplit(":", 1)[1].split("/")[0]
        recorded = (state / "mcp.url").read_text().strip()
    assert recorded == f"http://127.0.0.1:{port}/mcp"


async def test_doctor_names_a_wrong_mcp_token_and_its_fix(tmp_path: pathlib.Path) -> None:
    """An MCP token the server refuses is a failure naming where it came from and the fix."""
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    env = base_env(CLAUDE_PATH=install_stand_in_agent(tmp_path))
    async with coding_agent_up(state, root, env) as up:
        returncode, out = await _doctor(state, tmp_path, MCP_AUTH_TOKEN="not-the-token")
    assert returncode == 1, out
    assert (
        f"[FAIL] mcp: the server at {up.url} (recorded by the running server in "
        f"{state / 'mcp.url'}) refused the MCP token from MCP_AUTH_TOKEN (HTTP 401)"
    ) in out
    assert "fix: MCP_AUTH_TOKEN here is not the server's: unset it" in out
    assert out.endswith("1 problem(s) to fix\n")


async def test_doctor_flags_win_over_what_up_recorded(tmp_path: pathlib.Path) -> None:
    """CLAUDE_PROXY_PORT and CODING_AGENT_URL name another place than up's record: doctor
    checks those."""
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    env = base_env(CLAUDE_PATH=install_stand_in_agent(tmp_path))
    async with coding_agent_up(state, root, env):
        with trio.socket.socket() as unused:
            await unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
            returncode, out = await _doctor(
                state,
                tmp_path,
                CLAUDE_PROXY_PORT=str(port),
                DAEMON_TOKEN_FILE=str(state / "daemon.token"),
                CODING_AGENT_URL=f"http://127.0.0.1:{port}/mcp",
            )
    assert returncode == 1, out
    assert f"[FAIL] daemon: nothing answers at 127.0.0.1:{port} (given)" in out
    assert f"[FAIL] mcp: cannot reach the MCP server at http://127.0.0.1:{port}/mcp" in out


async def test_doctor_refuses_a_garbled_daemon_address(tmp_path: pathlib.Path) -> None:
    """A daemon.address that is no HOST:PORT is named with what it holds (exit 2, no trace)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "daemon.address").write_text("garbage\n")
    argv = [sys.executable, "-m", "mcp_server", "doctor", "--state-path", str(state)]
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    environ |= {k: v for k, v in os.environ.items() if k == "PYTHONPATH"}
    result = await trio.run_process(
        argv, env=environ, capture_stdout=True, capture_stderr=True, check=False
    )
    assert result.returncode == 2, result.stdout
    assert b"Traceback" not in result.stderr
    expected = f"expected HOST:PORT, got 'garbage' @ {state / 'daemon.address'}"
    assert expected.encode() in result.stderr
