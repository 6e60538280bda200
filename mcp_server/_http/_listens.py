"""The open 2026-07-28 ``subscriptions/listen`` streams, and the fan-out of events to them."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from .._core import ListenFilter, McpTaskRecord, RegistryEvent
from ._asgi import dumps
from ._streams import EventStream


@attrs.define(eq=False)
class ListenStream:
    """One listen stream: the core's filter and its buffer."""

    filter: ListenFilter
    stream: EventStream


class ListenStreams:
    """The open listen streams. Called with an MCP task record, it is the core's task listener
    (given to ``Core`` at construction): each stream whose filter names the task hears of it."""

    def __init__(self) -> None:
        self._open: set[ListenStream] = set()

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[ListenStream]:
        return iter(self._open)

    def add(self, listen: ListenStream) -> None:
        """Fan events out to ``listen`` from now on."""
        self._open.add(listen)

    def discard(self, listen: ListenStream) -> None:
        """``listen`` ended."""
        self._open.discard(listen)

    def __call__(self, record: McpTaskRecord, /) -> None:
        for listen in self._open:
            message = listen.filter.on_task(record)
            if message is not None:
                listen.stream.push(dumps(message))

    def on_registry(self, event: RegistryEvent) -> None:
        """Push ``event`` to the streams that asked for it."""
        for listen in self._open:
            message = listen.filter.on_registry(event)
            if message is not None:
                listen.stream.push(dumps(message))
