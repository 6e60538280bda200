"""The real Claude Code CLI for tests: installed once into a cache, pinned, never skipped.

``claude_executable()`` returns the native ``claude`` binary of the pinned npm release. It is
taken from ``CODING_AGENT_TEST_CLAUDE`` when set; otherwise it is installed with npm on first
use into ``${XDG_CACHE_HOME:-~/.cache}/coding-agent-tests/claude-code-<version>`` (a file lock
serializes concurrent test processes; the install happens in a temporary directory that is
renamed into place, so a half-finished install is never used). Tests that need the CLI install
it or fail: a missing CLI is a broken environment, not a reason to skip.

``claude_env(base_url, home)`` is the environment that points the CLI at a scripted model on
loopback with no other network traffic.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import shutil
import subprocess
import tempfile

CLAUDE_CODE_VERSION = "2.1.332"
_PACKAGE = "@anthropic-ai/claude-code"
_NATIVE = pathlib.Path("node_modules/@anthropic-ai/claude-code-linux-x64/claude")
_INSTALL_TIMEOUT_S = 900


def _cache_root() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "coding-agent-tests"


def claude_executable() -> str:
    """Path of the pinned Claude Code binary, installing it into the cache on first use."""
    override = os.environ.get("CODING_AGENT_TEST_CLAUDE")
    if override:
        if not os.access(override, os.X_OK):
            raise RuntimeError(f"CODING_AGENT_TEST_CLAUDE={override} is not an executable")
        return override
    root = _cache_root()
    target = root / f"claude-code-{CLAUDE_CODE_VERSION}"
    binary = target / _NATIVE
    if os.access(binary, os.X_OK):
        return str(binary)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"claude-code-{CLAUDE_CODE_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(binary, os.X_OK):
            _install(root, target)
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"npm installed {_PACKAGE} but {binary} is missing")
    return str(binary)


def _install(root: pathlib.Path, target: pathlib.Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is needed to install {_PACKAGE}@{CLAUDE_CODE_VERSION} for tests")
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".install-", dir=root))
    try:
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(staging),
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--ignore-scripts",
                f"{_PACKAGE}@{CLAUDE_CODE_VERSION}",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_INSTALL_TIMEOUT_S,
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"npm install {_PACKAGE}@{CLAUDE_CODE_VERSION} failed: "
            f"{exc.stderr.decode(errors='replace')[-2000:]}"
        ) from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def claude_env(base_url: str, home: str | os.PathLike[str]) -> dict[str, str]:
    """Environment for the CLI: the scripted model at ``base_url``, a throwaway ``HOME``."""
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "HOME": str(home),
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
    }
