"""Real git repositories for tests: made in a temporary directory, with no global git config.

Every git command here runs with ``HOME`` pointing into the test's directory and the system
config ignored, and names its identity on the command line: a CI machine with no git identity
(or with hooks, signing or aliases in its config) gives the same results as a bare one.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
from collections.abc import Mapping

from host_daemon._worktrees import WorktreeManager

TEST_IDENTITY = ("-c", "user.name=Test User", "-c", "user.email=test@example.invalid")


def git_env(home: pathlib.Path, **extra: str) -> dict[str, str]:
    """An environment for git that reads no config but the repository's own."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "LC_ALL": "C",
    }
    env.update(extra)
    return env


def git(repo: pathlib.Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run git in ``repo`` as the test user (identity on the command line); its stdout."""
    environ = dict(env) if env is not None else git_env(repo.parent / ".git-home")
    done = subprocess.run(
        ["git", *TEST_IDENTITY, *args],
        cwd=repo,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {repo}: {done.stderr}")
    return done.stdout


def make_repo(
    path: pathlib.Path, files: Mapping[str, str | bytes], *, branch: str = "main"
) -> pathlib.Path:
    """A repository at ``path`` on ``branch`` with one commit holding ``files``."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", f"--initial-branch={branch}")
    write_files(path, files)
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "--message", "initial")
    return path


def write_files(repo: pathlib.Path, files: Mapping[str, str | bytes]) -> None:
    """Write ``files`` (path → text or bytes) under ``repo``, making directories."""
    for name, content in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


def commit_files(repo: pathlib.Path, files: Mapping[str, str | bytes], message: str) -> str:
    """Write ``files``, commit them all, and return the new commit's sha."""
    write_files(repo, files)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", message)
    return head(repo)


def head(repo: pathlib.Path, ref: str = "HEAD") -> str:
    """The sha ``ref`` names in ``repo``."""
    return git(repo, "rev-parse", "--verify", ref).strip()


def branches(repo: pathlib.Path) -> list[str]:
    """Every local branch of ``repo``."""
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()


def checkout_fingerprint(repo: pathlib.Path) -> tuple[str, str, dict[str, str]]:
    """The checkout as the user sees it: HEAD, ``git status --porcelain``, and a hash of every
    file outside ``.git`` (symlinks by their target)."""
    hashes: dict[str, str] = {}
    for current, dirs, files in os.walk(repo):
        dirs[:] = [name for name in dirs if name != ".git"]
        for name in files:
            full = pathlib.Path(current, name)
            data = os.readlink(full).encode() if full.is_symlink() else full.read_bytes()
            hashes[str(full.relative_to(repo))] = hashlib.sha256(data).hexdigest()
    status = git(repo, "status", "--porcelain=v1", "--untracked-files=all")
    return head(repo), status, hashes


def make_manager(tmp_path: pathlib.Path, **overrides: object) -> WorktreeManager:
    """A ``WorktreeManager`` rooted at ``tmp_path``, its worktrees under ``tmp_path/state``,
    running git with a test-local ``HOME`` (so with no identity: the daemon's own is used)."""
    settings: dict[str, object] = {
        "worktrees_dir": str(tmp_path / "state" / "worktrees"),
        "roots": (str(tmp_path),),
        "max_bytes": 10 * 1024**3,
        "git_timeout_s": 60.0,
        "environ": git_env(tmp_path / "daemon-home"),
        "kill_grace_s": 1.0,
    }
    settings.update(overrides)
    return WorktreeManager(**settings)  # type: ignore[arg-type]  # the settings above


def read_text(*parts: str | os.PathLike[str]) -> str:
    """The text of the file at ``os.path.join(*parts)`` (a plain blocking read, for asserts)."""
    return pathlib.Path(*parts).read_text()


def exists(*parts: str | os.PathLike[str]) -> bool:
    """Whether anything (a dangling symlink included) is at ``os.path.join(*parts)``."""
    return os.path.lexists(os.path.join(*parts))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` (a plain blocking write, for setting up a test)."""
    pathlib.Path(path).write_bytes(data)


def write_script(path: str | os.PathLike[str], text: str) -> None:
    """Write an executable script (a git hook, a stand-in program)."""
    script = pathlib.Path(path)
    script.write_text(text)
    script.chmod(0o755)


def worktree_entries(manager: WorktreeManager) -> list[str]:
    """What the worktrees directory holds, sorted."""
    return sorted(os.listdir(manager.worktrees_dir))
