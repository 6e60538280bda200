"""A detachable run's spool: its numbered frames, in a file on the host, for replay on attach.

The numbering is plain code over encoded frames (``number_frames``): each frame of a numbered
type (``_protocol.NUMBERED``) gets ``"seq":N`` as its last field, the others (``input_accepted``,
a reply to the client that sent ``turn_input``) pass unnumbered and are not spooled. It relies on
``encode_frame``'s shape: one compact JSON object per line, ``type`` first, no ``seq`` key when
the record's ``seq`` is None. The file (``Spool``) holds exactly the numbered frames as sent,
one per line, so a replay is the file's lines from a number on (``frames_after``).

The spool's size is bounded by the run's own output limit (``--max-output-bytes``): the run is
cut there, as any run is. Its blocking I/O runs in ``trio.to_thread`` (``_detach``).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Generator
from typing import Final

from ._protocol import NUMBERED, type_tag

__all__ = ["Spool", "frames_after", "number_frames", "spool_run_ids"]

#: The start of every numbered frame, as ``encode_frame`` writes it.
_NUMBERED_PREFIXES: Final = tuple(b'{"type":"%s"' % type_tag(cls).encode() for cls in NUMBERED)
_SEQ_KEY: Final = b',"seq":'
#: Bytes read from the file at once when replaying.
_READ_CHUNK: Final = 1024 * 1024
_SPOOL_SUFFIX: Final = ".ndjson"
_RUN_ID: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")


def number_frames(frames: bytes | bytearray, next_seq: int) -> tuple[bytes, bytes, int]:
    """Number the numbered frames among ``frames`` from ``next_seq`` on.

    Returns the frames to send (all of them, in order), the numbered ones to spool, and the
    next number.
    """
    wire = bytearray()
    spooled = bytearray()
    for line in bytes(frames).splitlines():
        if not line:
            continue
        if line.startswith(_NUMBERED_PREFIXES):
            numbered = line[:-1] + _SEQ_KEY + str(next_seq).encode() + b"}\n"
            next_seq += 1
            wire += numbered
            spooled += numbered
        else:
            wire += line + b"\n"
    return bytes(wire), bytes(spooled), next_seq


def frame_seq(frame: bytes) -> int:
    """The number of one spooled frame (its ``seq``, the object's last field)."""
    at = frame.rfind(_SEQ_KEY)
    return int(frame[at + len(_SEQ_KEY) : frame.rindex(b"}")])


def frames_after(lines: bytes, after_seq: int) -> bytes:
    """The spooled frames of ``lines`` (whole lines) numbered above ``after_seq``, in order."""
    return b"".join(
        line + b"\n" for line in lines.splitlines() if line and frame_seq(line) > after_seq
    )


class Spool:
    """The spool file of one run: ``<spool dir>/<run_id>.ndjson``, 0600, appended to in order."""

    def __init__(self, directory: str, run_id: str) -> None:
        self.path = os.path.join(directory, run_id + _SPOOL_SUFFIX)
        self._fd = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600
        )

    def append(self, frames: bytes) -> None:
        """Add numbered frames at the end (blocking: call it in a thread)."""
        view = memoryview(frames)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def chunks_after(self, after_seq: int) -> Generator[bytes]:
        """The spooled frames numbered above ``after_seq``, a chunk of whole lines at a time
        (blocking: each ``next`` in a thread)."""
        with open(self.path, "rb") as file:
            rest = b""
            while data := file.read(_READ_CHUNK):
                data = rest + data
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if chunk := frames_after(data[:cut], after_seq):
                    yield chunk

    def close(self) -> None:
        """Stop writing (the file stays until ``remove``); idempotent."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def remove(self) -> None:
        """Close and delete the file (blocking); a file already gone is fine."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def spool_run_ids(directory: str) -> list[str]:
    """The run ids of the spool files in ``directory`` (a previous daemon's runs)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [
        name.removesuffix(_SPOOL_SUFFIX)
        for name in names
        if name.endswith(_SPOOL_SUFFIX) and _RUN_ID.fullmatch(name.removesuffix(_SPOOL_SUFFIX))
    ]
