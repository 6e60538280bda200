"""The repository stands alone: no tracked file points at notes kept outside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Files outside the repository that comments once pointed at (spelled in pieces so that this
#: file does not match itself).
OUTSIDE_POINTERS = ("facts" + "/", "design" + ".md", "../" + "shared")
#: The changelog may record history, including where a fact once came from.
ALLOWED = {"CHANGELOG.md"}


def tracked_files() -> list[Path]:
    """The files git tracks in this checkout (CI runs on a clean clone)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    return [REPO_ROOT / name for name in listing.decode().split("\0") if name]


def test_no_tracked_file_points_outside_the_repository() -> None:
    """No tracked file but the changelog mentions one of ``OUTSIDE_POINTERS``."""
    found = []
    for path in tracked_files():
        if path.relative_to(REPO_ROOT).as_posix() in ALLOWED or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            found += [
                f"{path.relative_to(REPO_ROOT)}:{number}: {pointer}"
                for pointer in OUTSIDE_POINTERS
                if pointer in line
            ]
    assert found == []
