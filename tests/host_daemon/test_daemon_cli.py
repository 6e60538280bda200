"""``python -m host_daemon`` as a real subprocess: flags, JSON logs, SIGTERM, a second SIGTERM."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
from _support.daemon import install_stand_in_agent

import host_daemon
from host_daemon import AgentEvent, DaemonUnavailable, RunFinished, RunRequest, RunStarted, open_run
from host_daemon._proc import read_stat

DEADLINE = 30.0


@attrs.define
class DaemonProcess:
    process: trio.Process
    logs: list[dict[str, Any]]
    changed: trio.Event
    host: str = ""
    port: int = 0
    token: str = ""

    async def wait_log(self, message: str) -> dict[str, Any]:
        with trio.fail_after(DEADLINE):
            while True:
                for entry in self.logs:
                    if entry.get("message") == message:
                        return entry
                self.changed = trio.Event()
                await self.changed.wait()


async def _pump_logs(stream: trio.abc.ReceiveStream, daemon: DaemonProcess) -> None:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            daemon.logs.append(json.loads(line))
        daemon.changed.set()


@pytest.fixture
def layout(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    root = tmp_path / "root"
    (root / "project").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return {"root": root, "bin": bin_dir, "token": tmp_path / "state" / "daemon.token"}


@pytest.fixture
async def daemon_process(layout: dict[str, pathlib.Path]) -> AsyncIterator[DaemonProcess]:
    layout["token"].parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAEMON_TOKEN")}
    env["CLAUDE_PATH"] = install_stand_in_agent(layout["bin"])
    argv = [sys.executable, "-m", "host_daemon", "--listen", "127.0.0.1:0"]
    argv += ["--root", str(layout["root"]), "--token-file", str(layout["token"])]
    # Its own state dir: the default (under $HOME) is locked by whichever daemon runs there.
    argv += ["--state-dir", str(layout["token"].parent)]
    argv += ["--grace", "20", "--kill-grace", "2", "--log-format", "json"]
    async with trio.open_nursery() as nursery:
        process = await trio.lowlevel.open_process(argv, env=env, stderr=subprocess.PIPE)
        daemon = DaemonProcess(process=process, logs=[], changed=trio.Event())
        assert process.stderr is not None
        nursery.start_soon(_pump_logs, process.stderr, daemon)
        try:
            listening = await daemon.wait_log("listening")
            daemon.host, daemon.port = listening["host"], listening["port"]
            daemon.token = layout["token"].read_text().strip()
            yield daemon
        finally:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                await process.wait()
            nursery.cancel_scope.cancel()


def gone(pid: int) -> bool:
    status = read_stat(pid)
    return status is None or not status.alive


async def test_daemon_creates_token_and_serves_probe(
    daemon_process: DaemonProcess, layout: dict[str, pathlib.Path]
) -> None:
    """The daemon creates its token file 0600 and answers a probe with it."""
    assert stat.S_IMODE(layout["token"].stat().st_mode) == 0o600
    info = await host_daemon.probe(daemon_process.host, daemon_process.port, daemon_process.token)
    assert info.roots == [str(layout["root"])]


async def test_start_log_names_the_worktrees_dir(
    daemon_process: DaemonProcess, layout: dict[str, pathlib.Path]
) -> None:
    """The daemon says at start where it makes worktrees (the state dir's, by default)."""
    starting = await daemon_process.wait_log("starting")
    assert starting["worktrees_dir"] == str(layout["token"].parent / "worktrees")


async def test_logs_never_hold_the_token(daemon_process: DaemonProcess) -> None:
    """Neither a served run nor a failed login puts the token in the logs."""
    d = daemon_process
    request = RunRequest(agent="claude", prompt="hello", cwd="project")
    async with open_run(d.host, d.port, d.token, request) as stream:
        _ = [event async for event in stream]
    with pytest.raises(host_daemon.AuthenticationFailed):
        await host_daemon.probe(d.host, d.port, d.token[:-1] + "x")
    await d.wait_log("run finished")
    await d.wait_log("handshake failed")
    assert d.token not in json.dumps(d.logs)
    assert all(entry["level"] in {"info", "warning"} for entry in d.logs)


async def test_sigterm_lets_the_run_finish_then_exits_0(daemon_process: DaemonProcess) -> None:
    """On SIGTERM a run in flight completes within grace, new clients are refused, exit 0."""
    d = daemon_process
    request = RunRequest(agent="claude", prompt="sleep 2", cwd="project")
    async with open_run(d.host, d.port, d.token, request) as stream:
        assert isinstance(await stream.__anext__(), RunStarted)
        d.process.send_signal(signal.SIGTERM)
        await d.wait_log("shutting down")
        with pytest.raises(DaemonUnavailable):
            await host_daemon.probe(d.host, d.port, d.token)
        events = [event async for event in stream]
    assert isinstance(events[-1], RunFinished)
    assert events[-1].outcome == "success"
    with trio.fail_after(DEADLINE):
        assert await d.process.wait() == 0


async def test_second_sigterm_exits_at_once_killing_the_group(
    daemon_process: DaemonProcess,
) -> None:
    """A second SIGTERM during the grace period exits at once; no process of the run is left."""
    d = daemon_process
    request = RunRequest(agent="claude", prompt="hang", cwd="project")
    async with open_run(d.host, d.port, d.token, request) as stream:
        pids: list[int] = []
        async for event in stream:
            if isinstance(event, AgentEvent) and event.text and event.text.startswith("pids "):
                pids = [int(word) for word in event.text.split()[1:]]
                break
        d.process.send_signal(signal.SIGTERM)
        await d.wait_log("shutting down")
        d.process.send_signal(signal.SIGTERM)
        with trio.fail_after(DEADLINE):
            assert await d.process.wait() == 0
        with pytest.raises(DaemonUnavailable):
            _ = [event async for event in stream]
    assert pids
    assert all(gone(pid) for pid in pids)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "host_daemon", *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=env,
        check=False,
    )


def test_no_root_refused_with_exit_2(tmp_path: pathlib.Path) -> None:
    """Without --root (or $HOST_FILE_ROOT) the daemon refuses to start, and says why."""
    env = {k: v for k, v in os.environ.items() if k != "HOST_FILE_ROOT"}
    env["DAEMON_TOKEN"] = "x"
    result = run_cli("--listen", "127.0.0.1:0", env=env)
    assert result.returncode == 2
    assert "--root" in result.stderr


def test_address_in_use_exits_1(tmp_path: pathlib.Path) -> None:
    """A --listen address already taken ends the daemon with status 1 and a clear message."""
    import socket  # noqa: PLC0415  # only this test holds a raw socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "DAEMON_TOKEN": "x"}
        result = run_cli(
            "--listen",
            f"127.0.0.1:{port}",
            "--root",
            str(tmp_path),
            "--state-dir",
            str(tmp_path / "state"),
            env=env,
        )
    assert result.returncode == 1
    assert "cannot serve" in result.stderr


def test_bad_listen_address_refused() -> None:
    """A --listen value that is not HOST:PORT is a usage error."""
    result = run_cli("--listen", "nowhere")
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr


def test_unknown_permission_mode_refused() -> None:
    """--allow-permission-mode names a mode the agent really has."""
    result = run_cli("--allow-permission-mode", "claude=yolo")
    assert result.returncode == 2
    assert "no permission mode" in result.stderr


def test_install_unit_dispatches(tmp_path: pathlib.Path) -> None:
    """``install-unit`` is handed to the unit installer (its --help is its own)."""
    result = run_cli("install-unit", "--help")
    assert result.returncode == 0
    assert "--print" in result.stdout


@pytest.mark.parametrize("flag", ["--max-connections", "--max-unauthenticated"])
def test_zero_connection_limit_refused(tmp_path: pathlib.Path, flag: str) -> None:
    """A connection limit of 0 is refused at start with status 2 and a clear message."""
    env = {**os.environ, "DAEMON_TOKEN": "x"}
    result = run_cli("--root", str(tmp_path), flag, "0", env=env)
    assert result.returncode == 2
    assert f"{flag} must be at least 1" in result.stderr


def parsed_config(*args: str, state_dir: pathlib.Path) -> host_daemon.DaemonConfig:
    """The configuration the daemon would start with (the token comes from the environment)."""
    from host_daemon._cli import build_parser, config_from_args  # noqa: PLC0415

    arguments = build_parser().parse_args([*args, "--state-dir", str(state_dir)])
    return config_from_args(arguments, {"DAEMON_TOKEN": "x"})


def test_worktrees_default_to_the_state_dir(tmp_path: pathlib.Path) -> None:
    """Without worktree flags: STATE_DIR/worktrees, a 20 GiB budget, 120 s per git command."""
    config = parsed_config("--root", str(tmp_path), state_dir=tmp_path / "state")
    assert config.worktrees_dir == str(tmp_path / "state" / "worktrees")
    assert config.worktrees_max_bytes == 20 * 1024**3
    assert config.git_timeout_s == 120.0


@pytest.mark.parametrize("place", ["root/deep/worktrees", "state/trees"])
def test_worktrees_dir_inside_a_root_or_the_state_dir_accepted(
    tmp_path: pathlib.Path, place: str
) -> None:
    """--worktrees-dir strictly inside a root or under the state dir is taken, as a real path."""
    (tmp_path / "root").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    config = parsed_config(
        "--root",
        str(tmp_path / "root"),
        "--worktrees-dir",
        str(link / place),
        state_dir=tmp_path / "state",
    )
    assert config.worktrees_dir == str(tmp_path / place)


@pytest.mark.parametrize(
    ("place", "says"),
    [
        ("elsewhere/worktrees", "expected a directory strictly inside a --root"),
        ("root", "expected a directory strictly inside a --root"),
        ("state", "expected a directory strictly inside a --root"),
        ("root/sub", "holds a root or the state directory"),
    ],
)
def test_worktrees_dir_of_no_own_refused_with_exit_2(
    tmp_path: pathlib.Path, place: str, says: str
) -> None:
    """--worktrees-dir outside, equal to, or holding a root or the state dir: exit 2, says why."""
    (tmp_path / "root" / "sub" / "project").mkdir(parents=True)
    env = {**os.environ, "DAEMON_TOKEN": "x"}
    result = run_cli(
        "--listen",
        "127.0.0.1:0",
        "--root",
        str(tmp_path / "root"),
        "--root",
        str(tmp_path / "root" / "sub" / "project"),
        "--state-dir",
        str(tmp_path / "state"),
        "--worktrees-dir",
        str(tmp_path / place),
        env=env,
    )
    assert result.returncode == 2
    assert f"--worktrees-dir {tmp_path / place}: " in result.stderr
    assert says in result.stderr


@pytest.mark.parametrize(("gib", "expected"), [("0", 0), ("0.5", 512 * 1024**2), ("3", 3 << 30)])
def test_worktrees_max_gb_is_taken_in_gibibytes(
    tmp_path: pathlib.Path, gib: str, expected: int
) -> None:
    """--worktrees-max-gb takes fractions and 0 (no worktrees), and becomes bytes."""
    config = parsed_config(
        "--root", str(tmp_path), "--worktrees-max-gb", gib, state_dir=tmp_path / "s"
    )
    assert config.worktrees_max_bytes == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("-1", "must be 0 or more GiB, got -1"),
        ("nan", "must be 0 or more GiB, got nan"),
        ("inf", "must be 0 or more GiB, got inf"),
        ("lots", "expected a number of GiB, got 'lots'"),
    ],
)
def test_bad_worktrees_max_gb_refused(value: str, says: str) -> None:
    """A budget that is no finite number of GiB, or is negative, is a usage error."""
    result = run_cli(f"--worktrees-max-gb={value}")
    assert result.returncode == 2
    assert says in result.stderr


def test_git_timeout_is_taken(tmp_path: pathlib.Path) -> None:
    """--git-timeout sets the bound of each git command the daemon runs."""
    config = parsed_config("--root", str(tmp_path), "--git-timeout", "7.5", state_dir=tmp_path)
    assert config.git_timeout_s == 7.5


@pytest.mark.parametrize("value", ["0", "-3", "inf", "soon"])
def test_bad_git_timeout_refused(value: str) -> None:
    """A git timeout that is not a positive finite number of seconds is a usage error."""
    result = run_cli(f"--git-timeout={value}")
    assert result.returncode == 2
    assert "argument --git-timeout: " in result.stderr


def test_live_flags_are_taken(tmp_path: pathlib.Path) -> None:
    """--no-live, --live-idle-s, --max-live-sessions and --approval-timeout-s reach the config."""
    config = parsed_config(
        "--root",
        str(tmp_path),
        "--no-live",
        "--live-idle-s",
        "30",
        "--max-live-sessions",
        "3",
        "--approval-timeout-s",
        "60",
        state_dir=tmp_path,
    )
    assert (config.live, config.live_idle_s, config.max_live_sessions) == (False, 30.0, 3)
    assert config.approval_timeout_s == 60.0
    default = parsed_config("--root", str(tmp_path), state_dir=tmp_path)
    assert (default.live, default.live_idle_s, default.max_live_sessions) == (True, 600.0, 8)
    assert default.approval_timeout_s == 900.0


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--live-idle-s", "0"), ("--approval-timeout-s", "inf"), ("--max-live-sessions", "0")],
)
def test_bad_live_flags_refused(flag: str, value: str) -> None:
    """A live limit that is not positive (and finite) is a usage error naming the flag."""
    result = run_cli("--root", "/", f"{flag}={value}")
    assert result.returncode == 2
    assert flag in result.stderr


async def test_second_daemon_on_the_same_state_dir_exits_naming_the_first(
    daemon_process: DaemonProcess, layout: dict[str, pathlib.Path]
) -> None:
    """A second daemon on a running one's state dir exits 2 naming its pid and command."""
    env = {**os.environ, "DAEMON_TOKEN": "x"}
    state = layout["token"].parent
    argv = [sys.executable, "-m", "host_daemon", "--listen", "127.0.0.1:0"]
    argv += ["--root", str(layout["root"]), "--state-dir", str(state)]
    with trio.fail_after(DEADLINE):
        result = await trio.run_process(
            argv,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 2
    message = result.stderr.decode()
    first = daemon_process.process.pid
    assert f"in use by pid {first} (host-daemon --listen 127.0.0.1:0" in message
    assert str(state / "daemon.lock") in message
    assert "Traceback" not in message


def detach_grace(*args: str, env: dict[str, str], tmp_path: pathlib.Path) -> float:
    from host_daemon._cli import build_parser, config_from_args  # noqa: PLC0415

    parsed = build_parser().parse_args(
        ["--root", str(tmp_path), "--state-dir", str(tmp_path / "state"), *args]
    )
    return config_from_args(parsed, {"DAEMON_TOKEN": "x", **env}).detach_grace_s


def test_detach_grace_from_flag_env_or_default(tmp_path: pathlib.Path) -> None:
    """--detach-grace wins over $DETACH_GRACE_S, which wins over the default of 900 s."""
    assert detach_grace(env={}, tmp_path=tmp_path) == 900.0
    assert detach_grace(env={"DETACH_GRACE_S": "60"}, tmp_path=tmp_path) == 60.0
    flagged = detach_grace("--detach-grace", "0", env={"DETACH_GRACE_S": "60"}, tmp_path=tmp_path)
    assert flagged == 0.0


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        ((), {"DETACH_GRACE_S": "soon"}, "DETACH_GRACE_S must be a number of seconds, got 'soon'"),
        (("--detach-grace", "-1"), {}, "--detach-grace must be a finite number of seconds"),
        (("--detach-grace", "inf"), {}, "--detach-grace must be a finite number of seconds"),
    ],
)
def test_bad_detach_grace_refused(
    tmp_path: pathlib.Path, args: tuple[str, ...], env: dict[str, str], says: str
) -> None:
    """A detach grace that is not a finite number of seconds ≥ 0 is refused, naming its source."""
    with pytest.raises(ValueError, match=re.escape(says)):
        detach_grace(*args, env=env, tmp_path=tmp_path)
