"""A live turn's side of permission requests: the turn's connection, its pending requests.

``LiveTurn`` is what the session's output pump, the approval timers and the client reader share
for one turn: the connection (sends serialized), the requests asked of the client and not yet
answered, and the turn's end.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from ._connection import FrameSink
from ._live_driver import PermissionAsk
from ._protocol import encode_frame
from ._records import ApprovalBehavior, DecidedBy, PermissionResolved, RunFinished

__all__ = ["LiveTurn", "PendingAsk", "resolved_frame"]


@attrs.define(eq=False)
class PendingAsk:
    """A permission request the client was asked: what it asked, and its timer's scope."""

    ask: PermissionAsk
    timer: trio.CancelScope


@attrs.define(eq=False)
class LiveTurn:
    """One turn in flight: its client's connection and how it ends."""

    #: The turn's connection, or its detachable run (which numbers, spools and forwards).
    conn: FrameSink
    approval_timeout_s: float
    #: Tasks of the turn (permission timers) run here; the turn's handler owns it.
    nursery: trio.Nursery
    #: Serializes the frames of the pump, the timers and the client reader.
    send_lock: trio.Lock = attrs.field(factory=trio.Lock)
    pending: dict[str, PendingAsk] = attrs.field(factory=dict)
    finished: RunFinished | None = None
    done: trio.Event = attrs.field(factory=trio.Event)
    client_gone: bool = False
    #: Called when the client is found gone while sending (cancels the turn).
    on_client_gone: Callable[[], None] | None = None

    async def send(self, frames: bytes | bytearray) -> None:
        """Send encoded frames to the client; a client that is gone ends the turn."""
        if self.client_gone or not frames:
            return
        async with self.send_lock:
            try:
                await self.conn.send_frames(frames)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.client_gone = True
                if self.on_client_gone is not None:
                    self.on_client_gone()

    def finish(self, finished: RunFinished) -> None:
        """The turn ended; requests still pending stay for ``closing_frames``."""
        for pending in self.pending.values():
            pending.timer.cancel()
        if self.finished is None:
            self.finished = finished
            self.done.set()

    def closing_frames(self) -> bytes:
        """``permission_resolved (closed)`` for each request the turn's end left pending."""
        frames = b"".join(
            encode_frame(resolved_frame(p.ask, "deny", "closed", message="the turn ended"))
            for p in self.pending.values()
        )
        self.pending.clear()
        return frames


def resolved_frame(
    ask: PermissionAsk,
    behavior: ApprovalBehavior,
    decided_by: DecidedBy,
    *,
    message: str | None = None,
    rule: str | None = None,
    decider: str | None = None,
) -> PermissionResolved:
    """The ``permission_resolved`` frame for ``ask``."""
    return PermissionResolved(
        request_id=ask.request_id,
        tool_name=ask.tool_name,
        input=ask.input,
        behavior=behavior,
        decided_by=decided_by,
        message=message,
        rule=rule,
        decider=decider,
    )
