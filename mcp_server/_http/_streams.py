"""Bounded event streams: what a request or session sends, buffered for the writer and for replay.

Pushing never blocks: each stream keeps at most ``limit`` events (the oldest are dropped). A
writer that falls behind the buffer (a slow or vanished client) sees a gap and its connection is
closed; a client that resumes with ``Last-Event-ID`` gets what is still buffered. So a slow
client costs at most ``limit`` events per stream, never unbounded memory.
"""

from __future__ import annotations

from collections import deque

import trio


class EventStream:
    """One SSE stream's events, numbered from 1; ``key`` names the stream in event ids."""

    __slots__ = ("_events", "_wakeup", "closed", "delivered", "detached", "key", "seq", "status")

    def __init__(self, key: str, limit: int) -> None:
        self.key = key
        self.seq = 0
        self.delivered = 0
        """The last event some connection was sent: a fresh GET continues from there."""
        self.closed = False
        self.detached = 0
        """Bumped by ``detach``: the writer attached before ends, the stream lives on."""
        self.status = 200
        """HTTP status of a JSON answer (400 for the errors the 2026-07-28 leg maps so)."""
        self._events: deque[tuple[int, bytes]] = deque(maxlen=limit)
        self._wakeup = trio.Event()

    def push(self, data: bytes, *, final: bool = False) -> None:
        """Append one JSON-RPC message (already serialized); ``final`` closes the stream."""
        if self.closed:
            return
        self.seq += 1
        self._events.append((self.seq, data))
        if final:
            self.closed = True
        self.wake()

    def detach(self) -> None:
        """End the current writer's connection; a later GET + ``Last-Event-ID`` resumes."""
        self.detached += 1
        self.wake()

    def wake(self) -> None:
        """Wake writers (new event, close, or drain)."""
        self._wakeup.set()
        self._wakeup = trio.Event()

    async def wait(self) -> None:
        """Until the next ``wake``."""
        await self._wakeup.wait()

    def after(self, seq: int) -> tuple[list[tuple[int, bytes]], bool]:
        """Events numbered above ``seq``, and whether they fail to continue right after ``seq``.

        A gap is events already dropped, or a ``seq`` this stream never reached: either way a
        writer cannot continue from there (and must not wait for what it cannot get).
        """
        events = [e for e in self._events if e[0] > seq]
        first = events[0][0] if events else self.seq + 1
        return events, first != seq + 1

    def only_message(self) -> bytes | None:
        """The single final message, when the stream carried nothing else (JSON answer)."""
        if self.closed and self.seq == 1 and self._events:
            return self._events[0][1]
        return None
