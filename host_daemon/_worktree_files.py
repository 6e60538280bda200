"""The worktrees directory on disk: metadata files, usage, and removal that never leaves it.

Blocking file work, called through ``trio.to_thread``. Every removal first checks that what it
removes lies strictly inside the worktrees directory, by real path and without following a
symlink at the last step: metadata pointing elsewhere, or a symlink planted where a worktree
was, can make the daemon delete nothing but the planted entry itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from typing import Final

__all__ = [
    "SCRATCH_PREFIXES",
    "any_exists",
    "directory_usage",
    "entry_kind",
    "inside",
    "looks_like_worktree",
    "make_private_dir",
    "prepare_worktrees_dir",
    "read_bytes",
    "read_quietly",
    "remove_inside",
    "repository_of_worktree",
    "unsearchable_ancestor",
    "write_atomically",
]

_DIR_MODE: Final = 0o755
#: Name prefixes of the scratch directories of operations (a rebase, a snapshot).
SCRATCH_PREFIXES: Final = (".merge-", ".snapshot-")


def prepare_worktrees_dir(directory: str) -> None:
    """Make the worktrees directory if it is missing, 0711: owners of repositories may pass
    through to their worktrees, not list them."""
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    try:
        os.mkdir(directory)
    except FileExistsError:
        return
    os.chmod(directory, 0o711)  # noqa: S103 -- search only: owners reach their worktrees


def looks_like_worktree(path: str) -> bool:
    """Whether the sweep may remove the entry at ``path``: an empty directory (a worktree half
    made), a git worktree (a ``.git`` file naming its repository), or a symlink (removing the
    link loses nothing). Anything else was put there by someone else, and stays."""
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            return True
        if not stat.S_ISDIR(mode):
            return False
        if not os.listdir(path):
            return True
        data = read_bytes(os.path.join(path, ".git"))
    except OSError:
        return False
    return data is not None and data.startswith(b"gitdir: ")


def unsearchable_ancestor(path: str, owner: tuple[int, int]) -> tuple[str, int] | None:
    """The first directory from ``/`` down to ``path`` that the user ``owner`` (uid, gid, no
    supplementary groups: how git is run) may not pass through, with its mode; None if none."""
    uid, gid = owner
    current = os.sep
    for part in ["", *path.strip(os.sep).split(os.sep)]:
        current = os.path.join(current, part)
        info = os.stat(current)
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return current, stat.S_IMODE(info.st_mode)
    return None


def inside(path: str, directory: str) -> bool:
    """Whether ``path`` (not followed at its last component) lies strictly inside the real
    directory ``directory``."""
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    candidate = os.path.join(parent, os.path.basename(path))
    if os.path.basename(path) in ("", ".", ".."):
        return False
    return os.path.commonpath([candidate, directory]) == directory and candidate != directory


def remove_inside(path: str, directory: str) -> bool:
    """Remove ``path`` (a file, a symlink itself, or a whole tree without following symlinks)
    if it lies strictly inside ``directory``; returns whether something was removed.

    Raises ``ValueError`` for a path outside (nothing is touched).
    """
    if not inside(path, directory):
        raise ValueError(f"refusing to remove {path!r}: not inside {directory!r}")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        _make_writable(path)
        shutil.rmtree(path)  # fd-based on Linux: never follows a symlink inside the tree
    else:
        os.unlink(path)
    return True


def _make_writable(tree: str) -> None:
    """Let the owner remove entries of read-only directories (git leaves some, agents too)."""
    for current, dirs, _files in os.walk(tree, followlinks=False):
        for name in dirs:
            full = os.path.join(current, name)
            with contextlib.suppress(OSError):
                info = os.lstat(full)
                if stat.S_ISDIR(info.st_mode) and not info.st_mode & stat.S_IWUSR:
                    os.chmod(full, info.st_mode | stat.S_IWUSR | stat.S_IXUSR)


def write_atomically(path: str, data: bytes) -> None:
    """Write ``path`` so that a reader or a crash sees the old content or the new, never half:
    a temporary file beside it, fsync, rename, fsync of the directory."""
    directory = os.path.dirname(path)
    temporary = f"{path}.tmp-{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_bytes(path: str) -> bytes | None:
    """The content of the regular file ``path`` (a symlink is not followed), None if absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with os.fdopen(fd, "rb") as file:
        return file.read()


def make_private_dir(path: str, owner: tuple[int, int] | None) -> None:
    """Make the directory ``path`` (it must not exist), owned by ``owner`` when given."""
    os.mkdir(path, _DIR_MODE)
    if owner is not None:
        os.chown(path, owner[0], owner[1], follow_symlinks=False)


def directory_usage(directory: str) -> int:
    """Bytes ``directory`` takes on disk (allocated blocks), walked without following symlinks."""
    total = 0
    for current, dirs, files in os.walk(directory, followlinks=False):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(current, name)).st_blocks * 512
    with contextlib.suppress(OSError):
        total += os.lstat(directory).st_blocks * 512
    return total


def any_exists(*paths: str) -> bool:
    """Whether anything (a dangling symlink included) is at one of ``paths``."""
    return any(os.path.lexists(path) for path in paths)


def entry_kind(path: str) -> tuple[bool, bool]:
    """Whether ``path`` exists, and whether it is a real directory (not a symlink to one)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False, False
    return True, stat.S_ISDIR(mode)


def read_quietly(path: str) -> bytes | None:
    """Like :func:`read_bytes`, with any error (a symlink, permissions) read as absent."""
    try:
        return read_bytes(path)
    except OSError:
        return None


def repository_of_worktree(path: str) -> str | None:
    """The repository a worktree directory belongs to, from its ``.git`` file, if readable."""
    data = read_bytes(os.path.join(path, ".git")) if not os.path.islink(path) else None
    if not data or not data.startswith(b"gitdir: "):
        return None
    gitdir = data[len(b"gitdir: ") :].strip().decode("utf-8", "surrogateescape")
    common = os.path.dirname(os.path.dirname(gitdir))  # <repo>/.git/worktrees/<name>
    return os.path.dirname(common) if os.path.basename(common) == ".git" else None
