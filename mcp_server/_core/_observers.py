"""The one observer shape of the core: a callable that hears an event and returns at once."""

from __future__ import annotations

from typing import Protocol, TypeVar

EventT_contra = TypeVar("EventT_contra", contravariant=True)


class McpListener(Protocol[EventT_contra]):
    """An observer of core events (a registry change, an MCP task's new state), given at
    construction. Not the coding-task side's listener: this one hears protocol events only."""

    def __call__(self, event: EventT_contra, /) -> None:
        """Hear one event; must not block or raise."""
