"""Working directories are confined to the configured roots: opened beneath them and held."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from host_daemon._paths import (
    PathNotADirectory,
    PathNotFound,
    PathOutsideRoots,
    PathRefused,
    open_inside_roots,
    resolve_roots,
)


def resolve_inside_roots(path: str, roots: list[str]) -> str:
    """Open ``path`` inside ``roots`` and say where the held directory is."""
    with open_inside_roots(path, roots) as held:
        assert os.path.samestat(os.stat(held.fd), os.stat(held.path))
        return held.path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root with a subdirectory, and a sibling directory outside it."""
    (tmp_path / "root" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "root"


def test_subdirectory_accepted(root: Path) -> None:
    """A directory inside the root resolves to its real path."""
    assert resolve_inside_roots(str(root / "sub"), [str(root)]) == str(root / "sub")


def test_root_itself_accepted(root: Path) -> None:
    """The root itself is inside the root."""
    assert resolve_inside_roots(str(root), [str(root)]) == str(root)


def test_relative_path_taken_from_root(root: Path) -> None:
    """A relative path is resolved against the root, not the daemon's own cwd."""
    assert resolve_inside_roots("sub", [str(root)]) == str(root / "sub")


def test_relative_path_second_root(root: Path, tmp_path: Path) -> None:
    """A relative path that exists only under the second root resolves there."""
    other = tmp_path / "other"
    (other / "only_here").mkdir(parents=True)
    assert resolve_inside_roots("only_here", [str(root), str(other)]) == str(other / "only_here")


def test_dotdot_refused(root: Path) -> None:
    """``..`` climbing out of the root is refused, naming the resolved path."""
    with pytest.raises(PathOutsideRoots, match="outside the allowed roots") as info:
        resolve_inside_roots(str(root / "sub" / ".." / ".." / "outside"), [str(root)])
    assert str(root.parent / "outside") in info.value.message


def test_relative_dotdot_refused(root: Path) -> None:
    """A relative ``../outside`` is refused."""
    with pytest.raises(PathOutsideRoots):
        resolve_inside_roots("../outside", [str(root)])


def test_dotdot_staying_inside_accepted(root: Path) -> None:
    """``..`` that stays inside the root is fine once resolved."""
    assert resolve_inside_roots(str(root / "sub" / ".."), [str(root)]) == str(root)


def test_absolute_elsewhere_refused(root: Path) -> None:
    """An absolute path elsewhere on the machine is refused."""
    with pytest.raises(PathOutsideRoots):
        resolve_inside_roots("/etc", [str(root)])


def test_symlink_out_refused(root: Path) -> None:
    """A symlink inside the root pointing out of it is refused."""
    (root / "escape").symlink_to(root.parent / "outside")
    with pytest.raises(PathOutsideRoots, match="outside"):
        resolve_inside_roots(str(root / "escape"), [str(root)])


def test_symlink_inside_accepted(root: Path) -> None:
    """A symlink that stays inside the root resolves to its target."""
    (root / "link").symlink_to(root / "sub")
    assert resolve_inside_roots(str(root / "link"), [str(root)]) == str(root / "sub")


def test_symlinked_root_accepted(root: Path, tmp_path: Path) -> None:
    """A root given through a symlink still contains its own directories."""
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    assert resolve_inside_roots(str(alias / "sub"), [str(alias)]) == str(root / "sub")


def test_prefix_trick_refused(tmp_path: Path) -> None:
    """``/x/a`` is a root; ``/x/ab`` merely shares its prefix and is refused."""
    (tmp_path / "a").mkdir()
    (tmp_path / "ab").mkdir()
    with pytest.raises(PathOutsideRoots):
        resolve_inside_roots(str(tmp_path / "ab"), [str(tmp_path / "a")])


def test_nonexistent_inside_refused(root: Path) -> None:
    """A path inside the root that does not exist is refused as not found."""
    with pytest.raises(PathNotFound, match="does not exist"):
        resolve_inside_roots(str(root / "missing"), [str(root)])


def test_nonexistent_outside_reads_as_outside(root: Path) -> None:
    """A missing path outside the roots is refused as outside, revealing nothing about it."""
    with pytest.raises(PathOutsideRoots) as info:
        resolve_inside_roots("/nonexistent-elsewhere/x", [str(root)])
    assert not isinstance(info.value, PathNotFound)


def test_symlink_loop_refused(root: Path) -> None:
    """A symlink loop inside the root is refused rather than followed forever."""
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(PathOutsideRoots, match="symlink"):
        resolve_inside_roots(str(root / "loop"), [str(root)])


def test_no_roots_refused(root: Path) -> None:
    """With no roots configured, nothing is allowed."""
    with pytest.raises(PathOutsideRoots, match="no roots"):
        resolve_inside_roots(str(root), [])


@pytest.mark.parametrize("bad", ["", "a\0b"])
def test_invalid_path_refused(root: Path, bad: str) -> None:
    """Empty paths and paths with NUL bytes are refused."""
    with pytest.raises(PathRefused, match="invalid path"):
        resolve_inside_roots(bad, [str(root)])


def test_filesystem_root_contains_everything(root: Path) -> None:
    """A root of ``/`` accepts any existing absolute path (component comparison holds at /)."""
    assert resolve_inside_roots(str(root), [os.sep]) == str(root)


def test_a_file_is_not_a_directory(root: Path) -> None:
    """A regular file inside the root is refused as ``not_a_directory``."""
    (root / "file.txt").write_text("x")
    with pytest.raises(PathNotADirectory) as info:
        resolve_inside_roots("file.txt", [str(root)])
    assert info.value.code == "not_a_directory"


def test_a_symlink_swapped_in_after_resolution_is_refused(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The open follows no symlink: one that the resolution did not see is refused."""
    (root / "escape").symlink_to(root.parent / "outside")
    # As if "escape" had been a directory when it was resolved, and swapped since.
    monkeypatch.setattr(os.path, "realpath", os.path.abspath)
    with pytest.raises(PathOutsideRoots, match="is a symlink"):
        open_inside_roots(str(root / "escape"), [str(root)])


def test_the_held_directory_stays_the_one_that_was_checked(root: Path) -> None:
    """Swapping names after the open does not change what is held (nor its close-on-exec)."""
    (root / "swap").symlink_to(root.parent / "outside")
    checked = os.stat(root / "sub")
    with open_inside_roots("sub", [str(root)]) as held:
        (root / "sub").rename(root / "moved")
        (root / "swap").rename(root / "sub")
        assert os.path.samestat(os.stat(held.fd), checked)
        assert os.path.samestat(os.stat(f"/proc/self/fd/{held.fd}"), checked)
        assert not os.get_inheritable(held.fd)
    assert held.fd == -1


def test_configured_roots_are_real_and_unique(root: Path, tmp_path: Path) -> None:
    """``--root`` values are realpath'd, and two names of one directory count once."""
    (tmp_path / "link").symlink_to(root)
    assert resolve_roots([str(root), str(tmp_path / "link")], {}) == (str(root),)


def test_configured_root_falls_back_to_host_file_root(root: Path) -> None:
    """Without ``--root``, ``$HOST_FILE_ROOT`` names the root."""
    assert resolve_roots(None, {"HOST_FILE_ROOT": str(root)}) == (str(root),)


def test_configured_root_must_exist(tmp_path: Path) -> None:
    """A ``--root`` that is no directory, or none at all, is refused with a clear message."""
    with pytest.raises(ValueError, match="no such directory"):
        resolve_roots([str(tmp_path / "missing")], {})
    with pytest.raises(ValueError, match="at least one --root"):
        resolve_roots(None, {})
