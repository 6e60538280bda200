"""A real small disk for full-disk tests: a tmpfs of a given size (needs root, as in CI), and a
filler that writes until it is full."""

from __future__ import annotations

import contextlib
import errno
import pathlib
import subprocess
from collections.abc import Iterator
from typing import BinaryIO

import pytest

CHUNK = 16 * 1024


@contextlib.contextmanager
def mounted_tmpfs(mount: pathlib.Path, size: str) -> Iterator[pathlib.Path]:
    """A tmpfs of ``size`` (``1m``, ``256k``) mounted at ``mount`` (made here), unmounted after."""
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a {size} tmpfs at {mount} (this test needs root): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(path: pathlib.Path, leave: int = 0) -> None:
    """Write ``path`` until its disk is full, then give back ``leave`` bytes."""
    with path.open("wb", buffering=0) as handle:
        with pytest.raises(OSError, match="No space left") as raised:
            _write_forever(handle)
        assert raised.value.errno == errno.ENOSPC
        size = handle.tell()
    if leave:
        with path.open("r+b") as handle:
            handle.truncate(max(0, size - leave))


def _write_forever(handle: BinaryIO) -> None:
    while True:
        handle.write(b"f" * CHUNK)
