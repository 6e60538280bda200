"""container/entrypoint.sh, run with bash in a temporary root in place of the container's paths.

The server it execs is replaced by a stand-in ``coding-agent`` on PATH that records its argv,
environment and parent pid, so the tests see exactly what the real server would have been given.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import attrs
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "container" / "entrypoint.sh"
NOBODY = 65534

STAND_IN = """#!/bin/bash
out="$(dirname "$0")/../out"
printf '%s\\0' "$@" > "$out/argv"
env -0 > "$out/env"
printf '%s' "$PPID" > "$out/ppid"
"""

KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-secret-1",
    "OPENAI_API_KEY": "sk-openai-secret-2",
    "GEMINI_API_KEY": "gemini-secret-3",
    "GOOGLE_API_KEY": "google-secret-4",
    "CLAUDE_CODE_OAUTH_TOKEN": "oauth-secret-5",
}


@attrs.frozen
class Ran:
    """One run of the entrypoint: exit status, stderr, and what the stand-in server received."""

    returncode: int
    stderr: str
    argv: list[str] | None
    env: dict[str, str] | None
    exec_replaced_bash: bool


@attrs.frozen
class Root:
    """A temporary stand-in for the container's file system."""

    path: pathlib.Path

    @property
    def state(self) -> pathlib.Path:
        return self.path / "data" / "state"

    @property
    def fallback(self) -> pathlib.Path:
        return self.path / "tmp" / "coding-agent-state"

    def run(self, *args: str, env: dict[str, str] | None = None, as_uid: int | None = None) -> Ran:
        """Run the entrypoint with the container's paths pointed into this root."""
        out = self.path / "out"
        for name in ("argv", "env", "ppid"):
            (out / name).unlink(missing_ok=True)
        environ = {
            "PATH": f"{self.path / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.path / "home"),
            "STATE_PATH": str(self.state),
            "CODING_AGENT_FALLBACK_STATE": str(self.fallback),
            "WORKSPACE_PATH": str(self.path / "workspace"),
            **(env or {}),
        }
        argv = ["bash", str(self.path / "entrypoint.sh"), *args]
        if as_uid is not None:
            setpriv = shutil.which("setpriv")
            assert setpriv is not None
            argv = [
                setpriv,
                f"--reuid={as_uid}",
                f"--regid={as_uid}",
                "--clear-groups",
                *argv,
            ]
        result = subprocess.run(
            argv, env=environ, capture_output=True, text=True, timeout=60, check=False
        )
        if not (out / "argv").exists():
            return Ran(result.returncode, result.stderr, None, None, exec_replaced_bash=False)
        recorded_env = dict(
            item.split("=", 1) for item in (out / "env").read_text().split("\0") if item
        )
        return Ran(
            returncode=result.returncode,
            stderr=result.stderr,
            argv=(out / "argv").read_text().split("\0")[:-1],
            env=recorded_env,
            # exec: the stand-in's parent is this test process, not an intermediate bash.
            exec_replaced_bash=(out / "ppid").read_text() == str(os.getpid()) or as_uid is not None,
        )


@pytest.fixture
def root() -> Iterator[Root]:
    """A world-traversable temporary root (so an unprivileged uid can run in it too)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="entrypoint-"))
    try:
        path.chmod(0o755)
        for name in ("bin", "home", "workspace"):
            (path / name).mkdir()
        (path / "home").chmod(0o777)
        (path / "tmp").mkdir()
        (path / "tmp").chmod(0o1777)  # like the container's /tmp, where the fallback lives
        (path / "out").mkdir(mode=0o777)
        (path / "out").chmod(0o777)
        shutil.copy(ENTRYPOINT, path / "entrypoint.sh")
        (path / "entrypoint.sh").chmod(0o755)
        (path / "bin" / "coding-agent").write_text(STAND_IN)
        (path / "bin" / "coding-agent").chmod(0o755)
        yield Root(path)
    finally:
        shutil.rmtree(path)


def test_entrypoint_execs_the_server_on_all_container_interfaces(root: Root) -> None:
    """The server replaces the script (exec) as `coding-agent serve --host 0.0.0.0` plus args."""
    ran = root.run("--log-format", "json")
    assert ran.returncode == 0, ran.stderr
    assert ran.argv == ["serve", "--host", "0.0.0.0", "--log-format", "json"]
    assert ran.exec_replaced_bash


def test_entrypoint_creates_a_writable_state_directory(root: Root) -> None:
    """A missing state directory is created and handed to the server, with no warning."""
    ran = root.run()
    assert ran.env is not None
    assert root.state.is_dir()
    assert ran.env["STATE_PATH"] == str(root.state)
    assert "WARNING" not in ran.stderr
    assert list(root.state.iterdir()) == []  # the write probe cleaned up after itself


def test_entrypoint_falls_back_when_state_cannot_be_created(root: Root) -> None:
    """A state path under a regular file (uncreatable even for root) falls back, loudly."""
    (root.path / "data").write_text("a file where a directory should be")
    ran = root.run()
    assert ran.returncode == 0, ran.stderr
    assert ran.env is not None
    assert ran.env["STATE_PATH"] == str(root.fallback)
    assert root.fallback.is_dir()
    assert "WARNING: state directory" in ran.stderr
    assert "does NOT survive" in ran.stderr


def test_entrypoint_falls_back_when_state_is_read_only(root: Root) -> None:
    """An existing state directory this uid cannot write to falls back (checked as non-root)."""
    root.state.mkdir(parents=True)
    root.state.chmod(0o555)
    uid = None
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv is missing: cannot drop to a plain uid")
        uid = NOBODY
    ran = root.run(as_uid=uid)
    assert ran.returncode == 0, ran.stderr
    assert ran.env is not None
    assert ran.env["STATE_PATH"] == str(root.fallback)
    assert f"not writable by uid {NOBODY if uid else os.geteuid()}" in ran.stderr


def test_entrypoint_gives_up_when_no_state_directory_is_writable(root: Root) -> None:
    """Neither the state path nor the fallback can be created: a clear error, no server."""
    (root.path / "data").write_text("not a directory")
    ran = root.run(env={"CODING_AGENT_FALLBACK_STATE": str(root.path / "data" / "fallback")})
    assert ran.returncode == 73
    assert ran.argv is None
    assert "not writable either" in ran.stderr


def test_entrypoint_removes_agent_api_keys(root: Root) -> None:
    """Agent credentials never reach the server; their names are logged, their values never."""
    ran = root.run(env={**KEYS, "UNRELATED": "kept"})
    assert ran.env is not None
    assert not set(KEYS) & set(ran.env)
    assert ran.env["UNRELATED"] == "kept"
    for name, value in KEYS.items():
        assert name in ran.stderr
        assert value not in ran.stderr


def test_entrypoint_sets_defaults_and_keeps_given_values(root: Root) -> None:
    """Unset settings get the documented defaults (``PORT`` 3000, …); values already set win."""
    ran = root.run(env={"CLAUDE_PROXY_PORT": "9999"})
    assert ran.env is not None
    assert ran.env["PORT"] == "3000"
    assert ran.env["CLAUDE_PROXY_HOST"] == "host.docker.internal"
    assert ran.env["CLAUDE_PROXY_PORT"] == "9999"
    assert ran.env["TUNNEL_ENABLED"] == "false"


def test_entrypoint_refuses_a_tunnel_without_its_url(root: Root) -> None:
    """TUNNEL_ENABLED=true with no TUNNEL_URL stops before the server starts, saying why."""
    ran = root.run(env={"TUNNEL_ENABLED": "true"})
    assert ran.returncode == 64
    assert ran.argv is None
    assert "TUNNEL_URL" in ran.stderr
    ok = root.run(env={"TUNNEL_ENABLED": "true", "TUNNEL_URL": "https://example.trycloudflare.com"})
    assert ok.env is not None
    assert ok.env["TUNNEL_URL"] == "https://example.trycloudflare.com"


def test_entrypoint_marks_the_workspace_safe_for_git_once(root: Root) -> None:
    """With git installed, /workspace becomes a safe.directory, added only once across restarts."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed here (the entrypoint skips this step too)")
    root.run()
    root.run()
    listed = subprocess.run(
        [git, "config", "--global", "--get-all", "safe.directory"],
        env={"HOME": str(root.path / "home"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()
    assert listed == [str(root.path / "workspace")]
