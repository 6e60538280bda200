"""The trio implementation of ``McpTaskGroup``: the only module of the core that imports trio."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import trio

from ._concurrency import McpCancelScope, McpEvent


class TrioMcpTaskGroup:
    """MCP protocol tasks in a nursery that ``run`` owns until cancelled."""

    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery that task handlers run in, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    @property
    def running(self) -> bool:
        """True between ``run``'s start and its end."""
        return self._nursery is not None

    def spawn(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run ``fn(*args)`` in the nursery."""
        if self._nursery is None:
            raise RuntimeError("the MCP task group is not running")
        self._nursery.start_soon(fn, *args)

    def event(self) -> McpEvent:
        """A ``trio.Event``."""
        return trio.Event()

    def cancel_scope(self) -> McpCancelScope:
        """A ``trio.CancelScope``."""
        return trio.CancelScope()

    async def wait(self, event: McpEvent, timeout_s: float) -> None:
        """Wait for ``event`` at most ``timeout_s``."""
        with trio.move_on_after(timeout_s):
            await event.wait()

    async def park(self) -> NoReturn:
        """Sleep until cancelled."""
        await trio.sleep_forever()
