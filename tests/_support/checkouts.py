"""Real git repositories for tests: a fixed identity, no global or system config read.

    head = make_repo(tmp_path / "repo", {"a.txt": "a\\n"})
    git(repo, "switch", "-c", "topic")
    before = Snapshot.of(repo)
    ...
    assert Snapshot.of(repo) == before  # HEAD, index, status and every file's bytes

Every ``git`` here runs with ``GIT_CONFIG_GLOBAL=/dev/null`` and ``GIT_CONFIG_NOSYSTEM=1`` (the
machine's config cannot change what a test sees) and the identity in ``GIT_ENV``.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
from collections.abc import Mapping

import attrs

__all__ = [
    "GIT_ENV",
    "Snapshot",
    "add_lfs_attributes",
    "add_submodule",
    "commit_all",
    "git",
    "make_repo",
]

GIT_ENV: Mapping[str, str] = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "user@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "user@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}
_TIMEOUT_S = 60


def git(repo: str | os.PathLike[str], *args: str) -> str:
    """Run ``git -C repo ARGS`` (it must succeed); its stdout."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **GIT_ENV}
    done = subprocess.run(
        ["git", "-C", os.fspath(repo), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def write_files(directory: pathlib.Path, files: Mapping[str, str]) -> None:
    """Write each ``path: text`` under ``directory`` (parents made)."""
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def commit_all(repo: pathlib.Path, message: str) -> str:
    """``git add -A`` and commit; the new HEAD's sha."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def make_repo(path: pathlib.Path, files: Mapping[str, str], branch: str = "main") -> str:
    """A new repository at ``path`` on ``branch`` with ``files`` in one commit; its sha."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    write_files(path, files)
    return commit_all(path, "initial")


def add_submodule(repo: pathlib.Path, source: pathlib.Path, name: str = "vendor") -> None:
    """Make ``source`` a one-commit repository and commit it into ``repo`` as submodule ``name``."""
    make_repo(source, {"lib.txt": "library\n"})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(source), name)
    commit_all(repo, f"add submodule {name}")


def add_lfs_attributes(repo: pathlib.Path) -> None:
    """Commit a ``.gitattributes`` that sends ``*.bin`` through the LFS filter."""
    write_files(repo, {".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n"})
    commit_all(repo, "track *.bin with LFS")


def _file_digests(top: pathlib.Path) -> dict[str, str]:
    digests = {}
    for directory, names, files in os.walk(top):
        names[:] = [name for name in names if name != ".git"]
        for name in files:
            path = pathlib.Path(directory, name)
            mode = path.lstat().st_mode
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            digests[str(path.relative_to(top))] = f"{mode:o} {digest}"
    return digests


@attrs.frozen
class Snapshot:
    """What a user would call their checkout's state: equal snapshots mean nothing changed."""

    head: str
    head_ref: str
    index: str
    status: str
    refs: str
    files: Mapping[str, str]

    @classmethod
    def of(cls, repo: pathlib.Path) -> Snapshot:
        """Read ``repo``: HEAD, branch, index entries, porcelain status, refs, every file."""
        return cls(
            head=git(repo, "rev-parse", "HEAD"),
            head_ref=git(repo, "symbolic-ref", "-q", "HEAD"),
            index=git(repo, "ls-files", "--stage"),
            status=git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
            refs=git(repo, "for-each-ref", "refs/heads"),
            files=_file_digests(repo),
        )
