"""Confinement of working directories to the daemon's configured roots.

Paths are compared by components on their real paths (``os.path.commonpath``), never by string
prefix: ``/srv/a`` is not inside ``/srv/ab``'s sibling ``/srv/a`` just because it starts alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

__all__ = ["PathNotFound", "PathOutsideRoots", "resolve_inside_roots", "resolve_roots"]


class PathOutsideRoots(ValueError):
    """A path that does not resolve to a location inside any configured root."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class PathNotFound(PathOutsideRoots):
    """A path inside the roots' reach that does not exist (or cannot be resolved)."""


def _is_inside(candidate: str, root: str) -> bool:
    return os.path.commonpath([candidate, root]) == root


def _check_inside(path: str, real: str, real_roots: Sequence[str]) -> None:
    if not any(_is_inside(real, root) for root in real_roots):
        raise PathOutsideRoots(
            path,
            f"{path!r} resolves to {real!r}, outside the allowed roots: {', '.join(real_roots)}",
        )


def resolve_inside_roots(path: str, roots: Sequence[str]) -> str:
    """Return the real path of ``path`` if it lies inside one of ``roots``, else raise.

    A relative ``path`` is taken relative to each root in turn (the first root where it exists
    wins). Symlinks are followed before the check, so a link inside a root that points out of it
    is refused, and a link that stays inside is accepted. The path must exist.
    """
    if not path or "\0" in path:
        raise PathOutsideRoots(path, f"invalid path {path!r}")
    real_roots = [os.path.realpath(root) for root in roots]
    if not real_roots:
        raise PathOutsideRoots(path, f"{path!r} refused: the daemon has no roots configured")
    candidates = [path] if os.path.isabs(path) else [os.path.join(r, path) for r in real_roots]
    for candidate in candidates:
        # Resolve leniently first so that a missing path outside the roots reads as "outside".
        _check_inside(path, os.path.realpath(candidate), real_roots)
        try:
            real = os.path.realpath(candidate, strict=True)
        except OSError:
            continue
        # Checked again: a symlink may have changed between the two resolutions.
        _check_inside(path, real, real_roots)
        return real
    raise PathNotFound(path, f"{path!r} does not exist inside the allowed roots")


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
