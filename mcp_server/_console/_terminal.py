"""Where the task CLI writes: lines to stdout, and on a terminal a spinner while it waits.

Colours and the spinner need a terminal (``isatty``); ``NO_COLOR`` (any value) and ``TERM=dumb``
turn colours off, the spinner stays. Piped output is plain lines only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TextIO, TypeVar

import trio

from ._render import Style

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
FRAME_S = 0.1
T = TypeVar("T")


def wants_colour(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Colours on a terminal, unless ``NO_COLOR`` is set or ``TERM`` is ``dumb``."""
    return stream.isatty() and "NO_COLOR" not in environ and environ.get("TERM") != "dumb"


class Output:
    """Lines to ``stream``; on a terminal, a spinner line redrawn under them while waiting."""

    def __init__(self, stream: TextIO, *, tty: bool, style: Style) -> None:
        self.stream = stream
        self.tty = tty
        self.style = style
        self._spinning = False
        self._frame = 0

    def line(self, text: str = "") -> None:
        """Write one line (above the spinner, which the next frame redraws)."""
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def spin(self, label: str) -> None:
        """Draw the spinner's next frame with ``label`` (only on a terminal)."""
        if not self.tty:
            return
        frame = self.style.paint(FRAMES[self._frame % len(FRAMES)], "cyan")
        self._frame += 1
        self.stream.write(f"\r\x1b[K{frame} {label}")
        self.stream.flush()
        self._spinning = True

    def clear(self) -> None:
        """Erase the spinner line if one is drawn."""
        if self._spinning:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._spinning = False

    async def waiting(self, label: Callable[[], str] | str, call: Callable[[], Awaitable[T]]) -> T:
        """``await call()``, spinning (on a terminal) with ``label`` and the elapsed seconds.

        An exception from ``call`` comes out as itself, not wrapped in a group.
        """
        if not self.tty:
            return await call()
        started = time.monotonic()

        async def turn() -> None:
            while True:
                text = label() if callable(label) else label
                self.spin(f"{text} {time.monotonic() - started:.0f}s")
                await trio.sleep(FRAME_S)

        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(turn)
            try:
                result = await call()
            except Exception as exc:  # re-raised below, outside the nursery
                failure = exc
            finally:
                nursery.cancel_scope.cancel()
                self.clear()
        if failure is not None:
            raise failure
        return result
