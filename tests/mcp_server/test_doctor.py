"""`coding-agent doctor` as a subprocess against a real daemon served by the test on loopback."""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import AsyncIterator

import attrs
import pytest
import trio
from _support.daemon import RunningDaemon, install_stand_in_agent, running_daemon


@attrs.frozen
class Site:
    """A deployment laid out in a temporary directory: projects, workspace, state, token."""

    tmp: pathlib.Path

    @property
    def projects(self) -> pathlib.Path:
        return self.tmp / "projects"

    @property
    def workspace(self) -> pathlib.Path:
        return self.tmp / "workspace"

    @property
    def state(self) -> pathlib.Path:
        return self.tmp / "state"

    @property
    def token_file(self) -> pathlib.Path:
        return self.tmp / "daemon.token"


@attrs.frozen
class Doctor:
    returncode: int
    out: str


@pytest.fixture
def site(tmp_path: pathlib.Path) -> Site:
    for name in ("projects", "workspace", "bin", "empty"):
        (tmp_path / name).mkdir()
    return Site(tmp_path)


@pytest.fixture
async def daemon(site: Site) -> AsyncIterator[RunningDaemon]:
    """A daemon with a stand-in `claude` (answers `--version`) and no other agent on its PATH."""
    claude = install_stand_in_agent(site.tmp / "bin")
    env = {"CLAUDE_PATH": claude, "PATH": str(site.tmp / "empty")}
    async with running_daemon(roots=[site.projects], env=env) as running:
        site.token_file.write_text(running.token + "\n")
        yield running


async def doctor(site: Site, port: int, *extra: str, host_file_root: str | None = None) -> Doctor:
    """Run `python -m mcp_server doctor` with everything pointed at the site."""
    argv = [
        sys.executable,
        "-m",
        "mcp_server",
        "doctor",
        "--daemon-host",
        "127.0.0.1",
        "--daemon-port",
        str(port),
        "--token-file",
        str(site.token_file),
        "--state-path",
        str(site.state),
        "--workspace",
        str(site.workspace),
        "--host-file-root",
        host_file_root or str(site.projects.resolve()),
        "--timeout",
        "30",
        *extra,
    ]
    env = {"PATH": os.environ["PATH"], "HOME": str(site.tmp)}
    result = await trio.run_process(argv, env=env, capture_stdout=True, check=False)
    return Doctor(result.returncode, result.stdout.decode())


async def test_doctor_all_green_against_a_running_daemon(site: Site, daemon: RunningDaemon) -> None:
    """Reachable daemon, an agent with its version, mapped workspace, writable state: exit 0."""
    result = await doctor(site, daemon.port)
    assert result.returncode == 0, result.out
    assert "[FAIL]" not in result.out
    assert f"[ ok ] daemon: daemon {daemon_version()}" in result.out
    claude = site.tmp / "bin" / "claude"
    version = (await trio.run_process([claude, "--version"], capture_stdout=True)).stdout
    assert f"[ ok ] agent claude: {claude} ({version.decode().strip()})" in result.out
    assert "[warn] agent codex: not found" in result.out
    assert f"inside the daemon's root {site.projects.resolve()}" in result.out
    assert f"[ ok ] state: state directory {site.state} is writable" in result.out
    assert result.out.endswith("all good\n")


async def test_doctor_reports_a_stopped_daemon_with_its_fix(site: Site) -> None:
    """With the daemon stopped: a failure naming the address, and how to start the daemon."""
    async with running_daemon(roots=[site.projects]) as stopped:
        site.token_file.write_text(stopped.token + "\n")
    result = await doctor(site, stopped.port)
    assert result.returncode == 1
    assert f"[FAIL] daemon: nothing answers at 127.0.0.1:{stopped.port}" in result.out
    assert "fix: start the daemon on the host: `systemctl --user start" in result.out
    assert result.out.endswith("2 problem(s) to fix\n")  # the agents cannot be listed either
    assert "[FAIL] agents: unknown" in result.out


async def test_doctor_reports_a_token_mismatch(site: Site, daemon: RunningDaemon) -> None:
    """A token the daemon does not share is an authentication failure, fixed by one token file."""
    site.token_file.write_text("not-the-daemons-token\n")
    result = await doctor(site, daemon.port)
    assert result.returncode == 1
    assert "[FAIL] daemon: the daemon at" in result.out
    assert "refused the token" in result.out
    assert "must read the same token file" in result.out


async def test_doctor_reports_a_missing_token_file(site: Site, daemon: RunningDaemon) -> None:
    """No token file: the token check fails (doctor never invents a token)."""
    site.token_file.unlink()
    result = await doctor(site, daemon.port)
    assert result.returncode == 1
    assert f"[FAIL] token: no daemon token in {site.token_file}" in result.out
    assert not site.token_file.exists()


async def test_doctor_reports_a_workspace_outside_the_roots(
    site: Site, daemon: RunningDaemon
) -> None:
    """HOST_FILE_ROOT outside every daemon root fails, with the --root to add."""
    elsewhere = str(site.tmp / "elsewhere")
    result = await doctor(site, daemon.port, host_file_root=elsewhere)
    assert result.returncode == 1
    assert f"[FAIL] workspace: HOST_FILE_ROOT={elsewhere} is outside every daemon root" in (
        result.out
    )
    assert f"add `--root {elsewhere}`" in result.out


async def test_doctor_reports_an_unwritable_state_directory(
    site: Site, daemon: RunningDaemon
) -> None:
    """A state path that cannot be created (under a regular file) fails, with a fix."""
    blocker = site.tmp / "blocker"
    blocker.write_text("a file, not a directory")
    result = await doctor(site, daemon.port, "--state-path", str(blocker / "state"))
    assert result.returncode == 1
    assert f"[FAIL] state: state directory {blocker / 'state'} is not writable" in result.out
    assert "or set STATE_PATH" in result.out


async def test_doctor_fails_when_no_agent_is_found(site: Site) -> None:
    """A daemon that finds no agent CLI at all is a failure, with how to install one."""
    env = {"PATH": str(site.tmp / "empty")}
    env.update(dict.fromkeys(("CLAUDE_PATH", "CODEX_PATH", "GEMINI_PATH"), ""))
    async with running_daemon(roots=[site.projects], env=env) as bare:
        site.token_file.write_text(bare.token + "\n")
        result = await doctor(site, bare.port)
    assert result.returncode == 1
    assert "[FAIL] agents: the daemon found no agent CLI it can run" in result.out


def daemon_version() -> str:
    from host_daemon import __version__  # noqa: PLC0415 -- only this assertion needs it

    return __version__


@pytest.mark.parametrize("value", ["http", "\u00b2", "70000"])
async def test_doctor_refuses_a_bad_claude_proxy_port(site: Site, value: str) -> None:
    """A CLAUDE_PROXY_PORT that is no port is named (not replaced by the default port)."""
    argv = [sys.executable, "-m", "mcp_server", "doctor", "--token-file", str(site.token_file)]
    env = {"PATH": os.environ["PATH"], "HOME": str(site.tmp), "CLAUDE_PROXY_PORT": value}
    result = await trio.run_process(
        argv, env=env, capture_stdout=True, capture_stderr=True, check=False
    )
    assert result.returncode == 2, result.stdout
    assert b"Traceback" not in result.stderr
    assert f"CLAUDE_PROXY_PORT must be a port number, got {value!r}".encode() in result.stderr
