"""CLIs and libraries from npm for tests: installed once into a cache, pinned, never skipped.

``installed_cli(package, version, binary, override_var)`` returns the path of ``binary``
(relative to the install prefix) of ``package@version``, taken from ``$override_var`` when set;
``installed_package(package, version)`` returns the install prefix itself (for libraries a test
script imports). Otherwise the package is installed with npm on first use into
``${XDG_CACHE_HOME:-~/.cache}/coding-agent-tests/<name>-<version>`` (a file lock serializes
concurrent test processes; the install happens in a temporary directory that is renamed into
place, so a half-finished install is never used). Tests that need a CLI install it or fail: a
missing CLI is a broken environment, not a reason to skip.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import shutil
import subprocess
import tempfile

__all__ = ["cache_root", "installed_cli", "installed_package"]

_INSTALL_TIMEOUT_S = 900


def cache_root() -> pathlib.Path:
    """Where the pinned CLIs are installed, one directory per package and version."""
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "coding-agent-tests"


def installed_cli(package: str, version: str, binary: pathlib.PurePath, override_var: str) -> str:
    """Path of ``binary`` in the pinned install of ``package``, installing it on first use."""
    override = os.environ.get(override_var)
    if override:
        if not os.access(override, os.X_OK):
            raise RuntimeError(f"{override_var}={override} is not an executable")
        return override
    path = _installed(package, version, binary, os.X_OK)
    return str(path)


def installed_package(package: str, version: str) -> pathlib.Path:
    """The install prefix of the pinned ``package`` (its ``node_modules`` beside), installed once.

    For libraries (no executable to point at): a script copied into the prefix imports them.
    """
    manifest = pathlib.PurePath("node_modules", *package.split("/"), "package.json")
    return _installed(package, version, manifest, os.R_OK).parents[len(manifest.parts) - 1]


def _installed(package: str, version: str, member: pathlib.PurePath, mode: int) -> pathlib.Path:
    """``member`` (relative to the prefix) of the pinned install, installing it when missing."""
    root = cache_root()
    name = f"{package.rpartition('/')[2]}-{version}"
    target = root / name
    path = target / member
    if os.access(path, mode):
        return path
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(path, mode):
            _install(root, target, f"{package}@{version}")
    if not os.access(path, mode):
        raise RuntimeError(f"npm installed {package}@{version} but {path} is missing")
    return path


def _install(root: pathlib.Path, target: pathlib.Path, spec: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is needed to install {spec} for tests")
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
                spec,
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
            f"npm install {spec} failed: {exc.stderr.decode(errors='replace')[-2000:]}"
        ) from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
