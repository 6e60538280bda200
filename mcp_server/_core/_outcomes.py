"""What the core makes of one incoming message, for the transport to carry out.

``Core.receive`` takes a parsed message and the ``Incoming`` facts of its HTTP request and
returns one of these; the transport turns it into bytes, an HTTP status, a stream or a session
and never decides protocol meaning itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs

from ._context import Peer, SessionState
from ._errors import McpError
from ._jsonrpc import ErrorResponse, RequestId, Response
from ._listen import ListenFilter
from ._registry import JSON
from ._versions import Era


@attrs.frozen
class Incoming:
    """What the transport knows of the request that carried a message."""

    protocol_version: str | None
    """The ``MCP-Protocol-Version`` header, stripped; None when absent."""
    mcp_headers: Sequence[tuple[str, str]]
    """The request's ``Mcp-*`` headers, for the 2026-07-28 routing checks."""
    session_id: str | None = None
    """The ``Mcp-Session-Id`` header."""
    session: SessionState | None = None
    """The session that header names, when the transport holds one."""
    draining: bool = False
    """The server is shutting down: no new sessions."""


@attrs.frozen
class Reply:
    """A response message, and the HTTP status a plain JSON answer carries."""

    message: JSON
    status: int = 200


@attrs.frozen
class Refuse:
    """Answer at once with ``error`` under ``status``; nothing runs."""

    error: McpError
    status: int
    rid: RequestId | None = None


@attrs.frozen
class Accepted:
    """A notification taken in: ``202`` with no body."""


@attrs.frozen
class CancelRequest:
    """``notifications/cancelled``: cancel the session's request ``rid`` (then ``202``)."""

    session: SessionState
    rid: RequestId


@attrs.frozen
class DeliverResponse:
    """The client answered a server→client request of ``session`` (then ``202``)."""

    session: SessionState
    message: Response | ErrorResponse


@attrs.frozen
class OpenSession:
    """A legacy ``initialize`` succeeded: keep ``state`` and answer ``reply``."""

    state: SessionState
    reply: JSON


@attrs.frozen
class OpenListen:
    """A 2026-07-28 ``subscriptions/listen``: stream ``ack``, then matching events, then
    ``final`` when the server drains."""

    listen: ListenFilter
    ack: JSON
    final: JSON


@attrs.frozen
class Call:
    """A request to run: await ``run(peer)`` in a task the transport owns.

    A legacy call belongs to ``session`` (``notifications/cancelled`` and ending the session
    cancel it); a 2026-07-28 call is cancelled when its response stream closes.
    """

    era: Era
    rid: RequestId
    session: SessionState | None
    run: Callable[[Peer], Awaitable[Reply]]


Outcome = Refuse | Accepted | CancelRequest | DeliverResponse | OpenSession | OpenListen | Call
