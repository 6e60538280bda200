"""Hypercorn's HTTP/1.1 protocol, writing a complete answer in one socket write.

Hypercorn 0.18 writes a response's head, its body and the (empty, with ``content-length``)
end-of-message as three socket writes, each behind a lock: six trio scheduler passes per
request. For a response that declares ``content-length`` (its body follows at once), the head
is held until the body and written with it, and an empty end-of-message writes nothing. Chunked
and SSE responses are untouched: their head still goes out at once.
"""

from __future__ import annotations

from itertools import chain

import h11
from hypercorn import protocol as hypercorn_protocol
from hypercorn.events import RawData
from hypercorn.protocol.events import Body, EndBody, Response
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import H11SendableEvent


class CoalescingH11Protocol(H11Protocol):
    """``H11Protocol`` that holds a ``content-length`` response's head until its body."""

    _held: bytes | None = None

    def _encode(self, event: H11SendableEvent) -> bytes:
        """``event``'s bytes; none when the peer already broke the protocol (as Hypercorn)."""
        try:
            return self.connection.send(event) or b""
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return b""

    async def stream_send(self, event: StreamEvent) -> None:
        if (
            isinstance(event, Response)
            and event.status_code >= 200
            and any(name.lower() == b"content-length" for name, _ in event.headers)
        ):
            headers = list(chain(event.headers, self.config.response_headers("h11")))
            if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                headers.append((b"connection", b"close"))
            self._held = self._encode(h11.Response(headers=headers, status_code=event.status_code))
            return
        held, self._held = self._held or b"", None
        if isinstance(event, Body):
            await self.send(RawData(data=held + self._encode(h11.Data(data=event.data))))
        elif isinstance(event, EndBody):
            data = held + self._encode(h11.EndOfMessage())
            if data:
                await self.send(RawData(data=data))
        else:
            if held:
                await self.send(RawData(data=held))
            await super().stream_send(event)


def install() -> None:
    """Make Hypercorn's connections (in this process) use ``CoalescingH11Protocol``."""
    # Replaces the name ``ProtocolWrapper`` instantiates for each HTTP/1.1 connection.
    setattr(hypercorn_protocol, "H11Protocol", CoalescingH11Protocol)  # noqa: B010 (not re-exported: mypy rejects the plain assignment)
