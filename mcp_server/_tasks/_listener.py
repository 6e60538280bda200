"""The one way the coding-task layer tells an owner what happened: a :class:`Listener`.

Each observer is passed to the constructor of what it observes (the store's to the store, which
the runner builds; the runner's to the runner) and is called with one frozen event record.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

EventT_contra = TypeVar("EventT_contra", contravariant=True)


class Listener(Protocol[EventT_contra]):
    """Told of each event as it happens; must not block (it runs inside the emitter's call)."""

    def __call__(self, event: EventT_contra, /) -> None:
        """Take one event."""
