"""The concurrency the core needs, passed in as protocols (as hypercorn passes its TaskGroup).

MCP protocol tasks outlive the request that started them, wait for client input and can be
cancelled; the core asks for exactly that and no more, so it imports no I/O library.
``_trio.TrioMcpTaskGroup`` is the implementation the server runs with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, NoReturn, Protocol


class McpEvent(Protocol):
    """A one-shot flag that tasks can wait for."""

    def set(self) -> None:
        """Wake every waiter, now and later."""

    def is_set(self) -> bool:
        """True once set."""

    async def wait(self) -> None:
        """Return once set."""


class McpCancelScope(Protocol):
    """A region of a task that someone else may cancel."""

    def cancel(self) -> None:
        """Cancel the region (at once, or when it is entered)."""

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None: ...


class McpTaskGroup(Protocol):
    """Runs MCP protocol tasks beside the requests that start them, for the server's lifetime."""

    def spawn(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run ``fn(*args)`` in the group; fails when the group is not running."""

    @property
    def running(self) -> bool:
        """True while tasks can be spawned."""

    def event(self) -> McpEvent:
        """A new event."""

    def cancel_scope(self) -> McpCancelScope:
        """A new cancel scope."""

    async def wait(self, event: McpEvent, timeout_s: float) -> None:
        """Return when ``event`` is set or ``timeout_s`` has passed, whichever comes first."""

    async def park(self) -> NoReturn:
        """Wait until cancelled."""
