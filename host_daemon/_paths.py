"""Confinement of working directories to the daemon's configured roots, free of races.

A run's directory is not checked by name and then entered by name (between the two, anyone who
can write inside a root could swap it for a symlink to elsewhere). It is opened and held:

1. the requested path is resolved (``realpath``) only to learn which root it lies in and the
   canonical path beneath that root; outside every root it is refused, by its components
   (``os.path.commonpath``), never by string prefix;
2. from a descriptor of that root, each component is opened with ``O_NOFOLLOW`` in turn
   (``openat``): a symlink met on the way (one swapped in since step 1, or a loop) is refused,
   so what is opened lies beneath the root whatever happens meanwhile;
3. the held directory's current path is checked to be inside a root once more;
4. the agent is started in that very directory (``spawn_group`` with the descriptor), so no
   later swap of names can move it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping, Sequence
from types import TracebackType

from ._errors import DaemonError, ErrorCode

__all__ = [
    "HeldDirectory",
    "PathChanged",
    "PathNotADirectory",
    "PathNotAccessible",
    "PathNotFound",
    "PathOutsideRoots",
    "PathRefused",
    "open_inside_roots",
    "resolve_roots",
]

_DIRECTORY_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_DELETED = " (deleted)"


class PathRefused(DaemonError):
    """A working directory the daemon will not run in; ``code`` names why for the error frame."""

    code: ErrorCode = "invalid_request"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(type(self).code, message)
        self.path = path


class PathOutsideRoots(PathRefused):
    """A path that does not lead to a directory inside any configured root."""

    code: ErrorCode = "path_outside_root"


class PathNotFound(PathRefused):
    """A path inside the roots' reach that does not exist (or no longer does)."""

    code: ErrorCode = "path_not_found"


class PathNotADirectory(PathRefused):
    """A path inside the roots that names something other than a directory."""

    code: ErrorCode = "not_a_directory"


class PathNotAccessible(PathRefused):
    """A path the daemon may not look into (permissions), or could not read."""

    code: ErrorCode = "path_not_accessible"


class PathChanged(PathRefused):
    """A path whose components were swapped while it was opened: trying again may succeed."""

    code: ErrorCode = "path_changed"


class HeldDirectory:
    """A directory inside a root, held open (``O_PATH``) so that runs start in this very one.

    ``path`` is where it was when it was opened and checked. Close it (or use ``with``) once the
    run has started: the child changed into it at spawn.
    """

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def close(self) -> None:
        """Release the descriptor (idempotent)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __enter__(self) -> HeldDirectory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _is_inside(candidate: str, root: str) -> bool:
    return os.path.commonpath([candidate, root]) == root


def _root_of(path: str, real: str, real_roots: Sequence[str]) -> str:
    for root in real_roots:
        if _is_inside(real, root):
            return root
    raise PathOutsideRoots(
        path,
        f"{path!r} resolves to {real!r}, outside the allowed roots: {', '.join(real_roots)}",
    )


def open_inside_roots(path: str, roots: Sequence[str]) -> HeldDirectory:
    """Open the directory ``path`` names inside one of ``roots``, else raise ``PathRefused``.

    A relative ``path`` is taken relative to each root in turn (the first root where it exists
    wins). Symlinks that stay inside a root are followed (their target is what is opened); one
    that leads out of every root is refused. The directory must exist. See the module docstring
    for why this cannot be raced.
    """
    if not path or "\0" in path:
        raise PathRefused(path, f"invalid path {path!r}")
    real_roots = [os.path.realpath(root) for root in roots]
    if not real_roots:
        raise PathOutsideRoots(path, f"{path!r} refused: the daemon has no roots configured")
    candidates = [path] if os.path.isabs(path) else [os.path.join(r, path) for r in real_roots]
    for candidate in candidates:
        try:
            # Lenient, so that a missing path outside the roots reads as "outside".
            real = os.path.realpath(candidate)
        except OSError as exc:  # a link replaced while it was read, say
            raise PathChanged(
                path, f"{path!r} could not be resolved ({exc.strerror}): did it change?"
            ) from None
        root = _root_of(path, real, real_roots)
        try:
            fd = _open_beneath(path, root, os.path.relpath(real, root))
        except FileNotFoundError:
            continue
        held = HeldDirectory(fd, os.readlink(f"/proc/self/fd/{fd}"))
        try:
            _check_held(path, held, real_roots)
        except BaseException:
            held.close()
            raise
        return held
    raise PathNotFound(path, f"{path!r} does not exist inside the allowed roots")


def _open_beneath(path: str, root: str, relative: str) -> int:
    """Open ``relative`` beneath ``root`` component by component, following no symlink."""
    names = [name for name in relative.split(os.sep) if name not in ("", ".")]
    if ".." in names:  # realpath leaves none; never climb above the held root
        raise PathOutsideRoots(path, f"{path!r} climbs out of {root!r}")
    try:
        fd = os.open(root, _DIRECTORY_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PathNotAccessible(path, f"{path!r}: cannot open {root!r}: {exc.strerror}") from None
    try:
        walked = root
        for name in names:
            walked = os.path.join(walked, name)
            try:
                child = os.open(name, _DIRECTORY_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                raise
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # a symlink gives ENOTDIR here
                    raise _not_a_directory(path, fd, name, walked) from None
                raise PathNotAccessible(
                    path, f"{path!r}: cannot open {walked!r}: {exc.strerror}"
                ) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_a_directory(path: str, parent_fd: int, name: str, walked: str) -> PathRefused:
    try:
        mode = os.lstat(name, dir_fd=parent_fd).st_mode
    except FileNotFoundError:
        return PathNotFound(path, f"{path!r}: {walked!r} vanished while it was opened")
    except OSError as exc:
        return PathNotAccessible(path, f"{path!r}: cannot inspect {walked!r}: {exc.strerror}")
    if stat.S_ISLNK(mode):
        return PathOutsideRoots(
            path,
            f"{path!r}: {walked!r} is a symlink that does not resolve inside the allowed roots "
            "(a loop, or the path changed while it was opened)",
        )
    if stat.S_ISDIR(mode):  # it was no directory a moment ago
        return PathChanged(path, f"{path!r}: {walked!r} changed while it was opened")
    return PathNotADirectory(path, f"{path!r}: {walked!r} is not a directory")


def _check_held(path: str, held: HeldDirectory, real_roots: Sequence[str]) -> None:
    """What was opened must still be a live directory inside a root."""
    if held.path.endswith(_DELETED):
        raise PathNotFound(path, f"{path!r} was removed while it was opened")
    if not os.path.isabs(held.path) or not any(_is_inside(held.path, r) for r in real_roots):
        raise PathOutsideRoots(
            path, f"{path!r} was opened at {held.path!r}, outside the allowed roots"
        )


def resolve_roots(raw_roots: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The ``--root`` arguments (else ``$HOST_FILE_ROOT``) as real directories, duplicates dropped.

    Raises ``ValueError`` with a message for the user when none is named or one is no directory.
    """
    from_environ = [environ["HOST_FILE_ROOT"]] if environ.get("HOST_FILE_ROOT") else []
    named = list(raw_roots or from_environ)
    if not named:
        raise ValueError("name at least one --root: the only directories agents may work in")
    roots = []
    for raw in named:
        real = os.path.realpath(os.path.expanduser(raw))
        if not os.path.isdir(real):
            raise ValueError(f"--root {raw}: no such directory")
        roots.append(real)
    return tuple(dict.fromkeys(roots))
