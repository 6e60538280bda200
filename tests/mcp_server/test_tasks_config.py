"""Configuration, workspace path mapping and the ``coding-agent`` command line."""

from __future__ import annotations

import pathlib
import signal
import stat
import subprocess
import sys
from pathlib import PurePosixPath

import httpx
import pytest
import trio
from _support.agent_up import base_env, coding_agent_up

from host_daemon import default_state_dir, default_token_file
from mcp_server._cli import _plan_up, _UpPlan, build_parser
from mcp_server._config import ConfigError, env_flag, serve_config, workspace_from_env
from mcp_server._tasks import PathRefused, Workspace

CONTAINER = Workspace(PurePosixPath("/workspace"), PurePosixPath("/home/me/code"))


@pytest.mark.parametrize(
    ("given", "relative", "host"),
    [
        (None, "", "/home/me/code"),
        ("", "", "/home/me/code"),
        ("app", "app", "/home/me/code/app"),
        ("app/./src/", "app/src", "/home/me/code/app/src"),
        ("/workspace", "", "/home/me/code"),
        ("/workspace/app", "app", "/home/me/code/app"),
    ],
)
def test_workspace_maps_by_components(given: str | None, relative: str, host: str) -> None:
    """Project dirs under /workspace map onto HOST_FILE_ROOT component by component."""
    assert CONTAINER.resolve(given) == (relative, host)


@pytest.mark.parametrize(
    "given",
    ["/workspacefoo", "/workspace-other/x", "/etc", "..", "app/../..", "/workspace/../x", "a\x00b"],
)
def test_workspace_refuses_outside(given: str) -> None:
    """A sibling with the same prefix, '..' and absolute paths elsewhere are refused."""
    with pytest.raises(PathRefused):
        CONTAINER.resolve(given)


def test_workspace_from_env_container() -> None:
    """HOST_FILE_ROOT makes /workspace the client's root."""
    workspace = workspace_from_env({"HOST_FILE_ROOT": "/srv/code"})
    assert workspace.resolve("/workspace/a") == ("a", "/srv/code/a")


def test_workspace_from_env_relative_root_refused() -> None:
    """A relative HOST_FILE_ROOT is a configuration error."""
    with pytest.raises(ConfigError, match="HOST_FILE_ROOT"):
        workspace_from_env({"HOST_FILE_ROOT": "code"})


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("1", True), ("", False), ("no", False)]
)
def test_env_flag(value: str, expected: bool) -> None:
    """Feature flags read true/false spellings."""
    assert env_flag({"X": value}, "X") is expected


def test_env_flag_rejects_other_words() -> None:
    """A flag that is neither true nor false is an error naming the variable."""
    with pytest.raises(ConfigError, match="GIT_AVAILABLE"):
        env_flag({"GIT_AVAILABLE": "maybe"}, "GIT_AVAILABLE")


def test_serve_config_env_and_flags(tmp_path: pathlib.Path) -> None:
    """Environment variables configure serve; flags win over them."""
    environ = {
        "PORT": "4000",
        "STATE_PATH": str(tmp_path / "state"),
        "CLAUDE_PROXY_HOST": "daemon.local",
        "CLAUDE_PROXY_PORT": "9999",
        "DAEMON_TOKEN": "shared",
        "MCP_AUTH_TOKEN": "bearer",
        "TUNNEL_ENABLED": "true",
        "TUNNEL_URL": "https://tunnel.example",
        "HOST_FILE_ROOT": "/srv/code",
        "CLAUDE_AVAILABLE": "true",
    }
    config = serve_config(environ)
    assert (config.port, config.daemon.host, config.daemon.port) == (4000, "daemon.local", 9999)
    assert (config.daemon.token, config.auth_token) == ("shared", "bearer")
    assert config.public_urls == ("https://tunnel.example",)
    assert config.host == "127.0.0.1"
    assert config.features["claude_available"] is True
    assert config.sweep_interval_s == 600
    flagged = serve_config(environ, port=5000, host="0.0.0.0", daemon_port=1234)
    assert (flagged.port, flagged.host, flagged.daemon.port) == (5000, "0.0.0.0", 1234)


def test_serve_config_generates_token_0600(tmp_path: pathlib.Path) -> None:
    """Without MCP_AUTH_TOKEN a token is generated once and stored 0600 in the state dir."""
    environ = {"STATE_PATH": str(tmp_path / "s"), "DAEMON_TOKEN": "d"}
    first = serve_config(environ)
    again = serve_config(environ)
    assert first.auth_token == again.auth_token
    assert len(first.auth_token) >= 32
    mode = stat.S_IMODE((tmp_path / "s" / "mcp.token").stat().st_mode)
    assert mode == 0o600


def test_serve_config_shares_the_daemons_default_token_file(tmp_path: pathlib.Path) -> None:
    """Without DAEMON_TOKEN(_FILE), serve reads the token file the daemon itself defaults to."""
    environ = {"STATE_PATH": str(tmp_path / "s"), "XDG_STATE_HOME": str(tmp_path / "xdg")}
    daemon_file = default_token_file(default_state_dir(environ))
    daemon_file.parent.mkdir(parents=True)
    daemon_file.write_text("the-daemons-token\n")
    assert serve_config(environ).daemon.token == "the-daemons-token"


@pytest.mark.parametrize(
    "argv",
    [
        ["up", "--max-runs", "\u0663"],
        ["up", "--max-runs", "\u00b2"],
        ["up", "--port", "\u0663\u0660\u0660\u0660"],
        ["serve", "--daemon-port", "\u00b2"],
    ],
)
def test_flags_take_ascii_digits_only(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Numeric flags refuse digits other than 0-9 with a usage error naming the value."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert argv[-1] in capsys.readouterr().err


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        ({"TUNNEL_ENABLED": "true"}, "TUNNEL_URL"),
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "\u00b2"}, "PORT"),
        ({"CLAUDE_PROXY_PORT": "\u0663\u0660\u0660\u0660"}, "CLAUDE_PROXY_PORT"),
        ({"CLAUDE_PROXY_PORT": "0"}, "CLAUDE_PROXY_PORT"),
    ],
)
def test_serve_config_errors(tmp_path: pathlib.Path, environ: dict[str, str], match: str) -> None:
    """Bad settings are errors that name the variable."""
    with pytest.raises(ConfigError, match=match):
        serve_config({"STATE_PATH": str(tmp_path), "DAEMON_TOKEN": "d", **environ})


async def test_serve_starts_and_stops_on_sigterm(tmp_path: pathlib.Path) -> None:
    """coding-agent serve prints its URL, answers /healthz and exits 0 on SIGTERM."""
    env = base_env(
        STATE_PATH=str(tmp_path / "state"), DAEMON_TOKEN="d", PROJECTS_PATH=str(tmp_path)
    )
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "mcp_server", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert process.stdout is not None
    try:
        with trio.fail_after(60):
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
        url = line.decode().split(": ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient() as http:
            health = await http.get(url.removesuffix("/mcp") + "/healthz")
            assert health.status_code == 200
            refused = await http.post(url, json={})
            assert refused.status_code == 401
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stdout.aclose()


async def test_up_prints_client_line_and_stores_tokens(tmp_path: pathlib.Path) -> None:
    """coding-agent up prints URL and token; both tokens are stored 0600 in the state dir."""
    state = tmp_path / "state"
    root = tmp_path / "root"
    root.mkdir()
    async with coding_agent_up(state, root, base_env()) as up:
        assert up.url.startswith("http://127.0.0.1:")
        assert up.url.endswith("/mcp")
        assert up.token == (state / "mcp.token").read_text().strip()
    for name in ("mcp.token", "daemon.token"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    assert up.process.returncode == 0
    assert stat.S_ISDIR((state / "tasks").stat().st_mode)


async def test_up_takes_the_daemon_port_from_claude_proxy_port(tmp_path: pathlib.Path) -> None:
    """coding-agent up listens for its daemon on CLAUDE_PROXY_PORT when it is set."""
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = tmp_path / "root"
    root.mkdir()
    env = base_env(CLAUDE_PROXY_PORT=str(port))
    async with coding_agent_up(tmp_path / "state", root, env) as up:
        assert up.daemon.startswith(f"127.0.0.1:{port} "), up.daemon


async def test_serve_on_a_taken_port_fails_clearly(tmp_path: pathlib.Path) -> None:
    """A port already in use ends serve with exit 2 and a one-line reason, no traceback."""
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env(STATE_PATH=str(tmp_path / "state"), DAEMON_TOKEN="d")
        with trio.fail_after(60):
            result = await trio.run_process(
                [sys.executable, "-m", "mcp_server", "serve", "--port", str(port)],
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr
    assert b"coding-agent: [Errno 98]" in result.stderr


async def test_doctor_is_dispatched(tmp_path: pathlib.Path) -> None:
    """coding-agent doctor runs the doctor (here: no daemon, so it reports problems)."""
    env = base_env(
        STATE_PATH=str(tmp_path / "state"),
        DAEMON_TOKEN_FILE=str(tmp_path / "missing.token"),
        CLAUDE_PROXY_HOST="127.0.0.1",
        CLAUDE_PROXY_PORT="1",
    )
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-m", "mcp_server", "doctor"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode != 0
    assert b"token" in result.stdout + result.stderr


def coding_agent_token(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real ``coding-agent token`` (as ``python -m mcp_server``) with only ``environ``."""
    return subprocess.run(
        [sys.executable, "-m", "mcp_server", "token"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**base_env(), **environ},
    )


def test_token_command_prints_the_environment_token(tmp_path: pathlib.Path) -> None:
    """With MCP_AUTH_TOKEN set (no mcp.token file then), `token` prints that token."""
    result = coding_agent_token({"MCP_AUTH_TOKEN": "from-env", "STATE_PATH": str(tmp_path)})
    assert (result.returncode, result.stdout) == (0, "from-env\n")


def test_token_command_prints_the_generated_token(tmp_path: pathlib.Path) -> None:
    """Without MCP_AUTH_TOKEN, `token` prints the one the server generated in STATE_PATH."""
    environ = {"STATE_PATH": str(tmp_path / "s"), "DAEMON_TOKEN": "d"}
    generated = serve_config(environ).auth_token
    result = coding_agent_token({"STATE_PATH": str(tmp_path / "s")})
    assert (result.returncode, result.stdout) == (0, generated + "\n")


def test_token_command_without_a_token_says_why(tmp_path: pathlib.Path) -> None:
    """No token anywhere: exit 1 naming the file it looked for; nothing is created."""
    result = coding_agent_token({"STATE_PATH": str(tmp_path)})
    assert result.returncode == 1
    assert f"MCP_AUTH_TOKEN is unset and {tmp_path / 'mcp.token'} cannot be read" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_sweep_interval_from_env(tmp_path: pathlib.Path) -> None:
    """WORKTREE_SWEEP_INTERVAL_S sets the sweep's interval; anything but a positive number is an
    error naming it."""
    environ = {"STATE_PATH": str(tmp_path / "state"), "DAEMON_TOKEN": "t"}
    assert serve_config(environ | {"WORKTREE_SWEEP_INTERVAL_S": "30"}).sweep_interval_s == 30
    for bad in ("0", "-5", "soon", "nan"):
        with pytest.raises(ConfigError, match="WORKTREE_SWEEP_INTERVAL_S"):
            serve_config(environ | {"WORKTREE_SWEEP_INTERVAL_S": bad})


def _plan(tmp_path: pathlib.Path, *flags: str, **environ: str) -> _UpPlan:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    args = build_parser().parse_args(
        ["up", "--state-path", str(tmp_path / "state"), "--root", str(root), *flags]
    )
    return _plan_up(args, {"HOME": str(tmp_path), **environ})


def test_up_takes_the_worktree_and_dashboard_settings_from_env(tmp_path: pathlib.Path) -> None:
    """up reads WORKTREE_SWEEP_INTERVAL_S and DASHBOARD_SESSION_IDLE_S as serve does."""
    plan = _plan(tmp_path, WORKTREE_SWEEP_INTERVAL_S="7", DASHBOARD_SESSION_IDLE_S="60")
    assert (plan.sweep_interval_s, plan.dashboard.session_idle_s) == (7, 60)
    assert plan.worktrees_dir == str((tmp_path / "state").resolve() / "worktrees")


def test_up_worktrees_dir_inside_the_root(tmp_path: pathlib.Path) -> None:
    """up --worktrees-dir takes a directory inside the root."""
    plan = _plan(tmp_path, "--worktrees-dir", str(tmp_path / "root" / ".worktrees"))
    assert plan.worktrees_dir == str((tmp_path / "root" / ".worktrees").resolve())


def test_up_refuses_a_worktrees_dir_outside_root_and_state(tmp_path: pathlib.Path) -> None:
    """up --worktrees-dir outside the root and the state dir is a config error naming the flag."""
    with pytest.raises(ConfigError, match="--worktrees-dir"):
        _plan(tmp_path, "--worktrees-dir", str(tmp_path / "elsewhere"))


def test_up_takes_the_approval_rules_of_its_flags_and_policy_file(tmp_path: pathlib.Path) -> None:
    """up --allow-rule/--deny-rule/--policy-file give the daemon both lists, flags first."""
    policy = tmp_path / "policy.toml"
    policy.write_text('allow = ["Read", "Bash(pytest:*)"]\ndeny = ["Bash(rm:*)"]\n')
    plan = _plan(
        tmp_path,
        "--allow-rule",
        "Bash(pytest:*)",
        "--deny-rule",
        "Edit(secrets/**)",
        "--policy-file",
        str(policy),
    )
    assert plan.allow_rules == ("Bash(pytest:*)", "Read")
    assert plan.deny_rules == ("Edit(secrets/**)", "Bash(rm:*)")


def test_up_refuses_a_rule_that_does_not_parse(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """up --allow-rule with a malformed rule exits 2 naming the flag, before anything starts."""
    with pytest.raises(SystemExit) as exited:
        _plan(tmp_path, "--allow-rule", "Bash(pytest")
    assert exited.value.code == 2
    assert "--allow-rule" in capsys.readouterr().err


def test_up_refuses_a_policy_file_with_a_bad_rule(tmp_path: pathlib.Path) -> None:
    """A policy file whose rule does not parse is a config error naming the file and the place."""
    policy = tmp_path / "policy.toml"
    policy.write_text('deny = ["Bash(rm"]\n')
    with pytest.raises(ConfigError, match=r"policy\.toml.*@ deny\[0\]"):
        _plan(tmp_path, "--policy-file", str(policy))
