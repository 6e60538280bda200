"""What wakes the dashboard's live streams: the board's changes and the server's drain.

:class:`BoardHub` is a :class:`~mcp_server._tasks.Listener` of the runner's changes (beside the
MCP notices): it holds no task state, only events that streams wait on and then re-read the
runner.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import trio

from mcp_server._tasks import Listener, TaskChange


class BoardHub:
    """Wakes board streams when a task is created, changes status or is deleted; wakes every
    stream when the server drains (they then end, so shutdown is not held)."""

    def __init__(self) -> None:
        self._board = trio.Event()
        self.draining = trio.Event()

    def __call__(self, change: TaskChange) -> None:
        """Take one runner change (output alone does not change the board)."""
        if change.kind != "output":
            self._board.set()
            self._board = trio.Event()

    def board_changed(self) -> trio.Event:
        """An event set at the board's next change."""
        return self._board

    def drain(self) -> None:
        """Tell every stream to end (``serve()``'s drain callback)."""
        self.draining.set()


async def wait_any(*events: trio.Event) -> None:
    """Return once any of ``events`` is set (the waiting tasks end with it)."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)


@attrs.frozen
class FanOut:
    """One runner listener that tells several (the MCP notices and the dashboard's hub)."""

    listeners: Sequence[Listener[TaskChange]]

    def __call__(self, change: TaskChange) -> None:
        for listener in self.listeners:
            listener(change)
