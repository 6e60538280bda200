"""A run's output as lines: splitting the pipes' bytes, capping them, and the buffer's budget."""

from __future__ import annotations

from typing import Final, Literal

import attrs
import trio

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "LINE_OVERHEAD",
    "OUTPUT_BUFFER_BYTES",
    "ByteBudget",
    "LineSplitter",
    "OutputLine",
    "output_limit_marker",
]

DEFAULT_MAX_LINE_BYTES: Final = 8 * 1024 * 1024
OUTPUT_BUFFER_BYTES: Final = 1024 * 1024
"""Bytes of complete lines held for a slow reader before the pumps stop reading the pipes."""
LINE_OVERHEAD: Final = 64  # what an OutputLine costs beyond its data, for the buffer's accounting


@attrs.frozen
class OutputLine:
    """One line of a run's output, without its newline; ``truncated`` if it was cut."""

    stream: Literal["stdout", "stderr"]
    data: bytes
    truncated: bool = False


def output_limit_marker(limit: int) -> bytes:
    """The line produced once a run's output exceeds ``limit`` bytes."""
    return f"[coding-agent: output exceeded {limit} bytes; the rest was discarded]".encode()


class ByteBudget:
    """Bytes of output waiting for the reader; producers park while it is spent."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._lot = trio.lowlevel.ParkingLot()

    async def acquire(self, amount: int) -> None:
        # A single line larger than the budget still passes once the buffer is empty.
        while self._used > 0 and self._used + amount > self._limit:
            await self._lot.park()
        self._used += amount

    def release(self, amount: int) -> None:
        self._used -= amount
        if self._lot:
            self._lot.unpark_all()


class LineSplitter:
    """Split a byte stream into lines, cutting each at ``max_line`` bytes as it arrives."""

    def __init__(self, max_line: int) -> None:
        self._max_line = max_line
        self._line = bytearray()
        self._cut = False  # the current line was cut: discard up to its newline

    def feed(self, chunk: bytes) -> list[tuple[bytes, bool]]:
        """The lines completed (or cut) by ``chunk``, as ``(data, truncated)``."""
        lines: list[tuple[bytes, bool]] = []
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            if 0 <= newline - start <= self._max_line and not self._line and not self._cut:
                lines.append((chunk[start:newline], False))  # the common case: a whole line
                start = newline + 1
                continue
            end = len(chunk) if newline < 0 else newline
            if not self._cut:
                room = self._max_line - len(self._line)
                self._line += chunk[start : start + min(room, end - start)]
                if end - start > room:
                    self._cut = True
                    lines.append((bytes(self._line), True))
                    self._line.clear()
            if newline < 0:
                return lines
            if self._cut:
                self._cut = False
            else:
                lines.append((bytes(self._line), False))
                self._line.clear()
            start = newline + 1

    def flush(self) -> bytes:
        """The unfinished line so far (empty if none), and start afresh."""
        rest = bytes(self._line)
        self._line.clear()
        return rest
