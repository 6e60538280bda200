"""A user's checkout for the worktree end-to-end tests, on top of ``git_repos``.

    before = Snapshot.of(repo)
    ...  # a refused merge
    assert Snapshot.of(repo) == before  # HEAD, its branch, index, status, branches, every file

``add_submodule`` and ``add_lfs_attributes`` make the repositories a worktree cannot serve.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections.abc import Mapping

import attrs

from .git_repos import commit_files, git, make_repo

__all__ = ["Snapshot", "add_lfs_attributes", "add_submodule"]


def add_submodule(repo: pathlib.Path, source: pathlib.Path, name: str = "vendor") -> None:
    """Make ``source`` a one-commit repository and commit it into ``repo`` as submodule ``name``."""
    make_repo(source, {"lib.txt": "library\n"})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(source), name)
    git(repo, "commit", "-q", "-m", f"add submodule {name}")


def add_lfs_attributes(repo: pathlib.Path) -> None:
    """Commit a ``.gitattributes`` that sends ``*.bin`` through the LFS filter."""
    attributes = "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    commit_files(repo, {".gitattributes": attributes}, "track *.bin with LFS")


def _file_digests(top: pathlib.Path) -> dict[str, str]:
    digests = {}
    for directory, names, files in os.walk(top):
        names[:] = [name for name in names if name != ".git"]
        for name in files:
            path = pathlib.Path(directory, name)
            mode = path.lstat().st_mode
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            digests[str(path.relative_to(top))] = f"{mode:o} {hashlib.sha256(data).hexdigest()}"
    return digests


@attrs.frozen
class Snapshot:
    """What a user would call their checkout's state: equal snapshots mean nothing changed."""

    head: str
    head_ref: str
    index: str
    status: str
    branches: str
    files: Mapping[str, str]

    @classmethod
    def of(cls, repo: pathlib.Path) -> Snapshot:
        """Read ``repo``: HEAD, its branch, the index's entries, status, branches, every file."""
        return cls(
            head=git(repo, "rev-parse", "HEAD"),
            head_ref=git(repo, "rev-parse", "--symbolic-full-name", "HEAD"),
            index=git(repo, "ls-files", "--stage"),
            status=git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
            branches=git(repo, "for-each-ref", "refs/heads"),
            files=_file_digests(repo),
        )
