"""Waiting on what offers no event to wait on: ``/proc``, files, other processes."""

from __future__ import annotations

from collections.abc import Callable

import trio

POLL_INTERVAL_S = 0.02


async def eventually(
    condition: Callable[[], bool],
    what: str = "the condition",
    detail: Callable[[], str] = str,
    *,
    timeout: float = 30.0,
) -> None:
    """Poll ``condition`` until it holds; at the deadline fail naming ``what`` and ``detail()``."""
    with trio.move_on_after(timeout):
        # Polling is the point: what is watched here has no event to wait on.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(POLL_INTERVAL_S)
        return
    extra = detail()
    message = f"timed out after {timeout} s waiting for {what}"
    raise AssertionError(f"{message}: {extra}" if extra else message)
