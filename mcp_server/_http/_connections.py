"""Descriptors as a bounded resource: a cap on Hypercorn's connections, the process's fd limit.

Hypercorn has no connection limit: every accepted socket is a descriptor until its client lets
go, and a process out of descriptors can neither accept nor open its state files. Connections
beyond the cap are answered ``503`` at once and closed; the cap defaults to half the soft limit
on open files, leaving the other half to the state store, the daemon connections and the daemon
itself (``coding-agent up`` runs it in this process).
"""

from __future__ import annotations

import logging
import resource
from typing import Final

import orjson
import trio
from hypercorn.config import Config
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio.tcp_server import TCPServer

logger = logging.getLogger("mcp_server.http")

#: Connections the kernel queues for ``accept`` (Hypercorn's default is 100): past it a burst's
#: connections are dropped and retried for seconds, instead of being answered (503 past the cap).
LISTEN_BACKLOG: Final = 1024
#: How long the ``503`` of a connection beyond the cap may take to be written.
_REFUSE_S: Final = 1.0
_BUSY_BODY: Final = orjson.dumps(
    {"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": "Too many connections"}}
)
_BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n\r\n" + _BUSY_BODY
)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to the hard one; return the new soft one.

    The soft limit is often 1,024 while the hard one is far higher: each client connection is a
    descriptor, so a server should take what it is allowed.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. a hard limit above the kernel's nr_open
            logger.warning("cannot raise the open files limit from %d to %d: %s", soft, hard, exc)
            return soft
        soft = hard
    return soft


def connection_cap(max_connections: int) -> int:
    """``max_connections``, but at most half the soft limit on open files (at least 1)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft // 2))


class ConnectionGate:
    """Counts a server's open connections against ``cap``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0
        self._full_logged = False

    def enter(self) -> bool:
        """Take a place; ``False`` when all ``cap`` are taken."""
        if self.open >= self.cap:
            if not self._full_logged:
                self._full_logged = True
                logger.warning("%d connections open, the limit: refusing more with 503", self.cap)
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1
        if self.open < self.cap:
            self._full_logged = False


class GatedConfig(Config):
    """Hypercorn's ``Config`` carrying the gate of the server it configures."""

    def __init__(self, gate: ConnectionGate) -> None:
        super().__init__()
        self.connection_gate = gate


class GatedTCPServer(TCPServer):
    """Hypercorn's per-connection server, refusing connections beyond its config's gate."""

    async def run(self) -> None:
        gate = getattr(self.config, "connection_gate", None)
        if gate is None:
            await super().run()
        elif gate.enter():
            try:
                await super().run()
            finally:
                gate.leave()
        else:
            await _refuse(self.stream)


async def _refuse(stream: trio.abc.Stream) -> None:
    """A ``503`` and a closed connection, without reading what the client sent."""
    try:
        with trio.move_on_after(_REFUSE_S):
            await stream.send_all(_BUSY)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


def install() -> None:
    """Make Hypercorn's trio worker (in this process) use ``GatedTCPServer``."""
    # Replaces the name ``worker_serve`` builds each connection's server with.
    setattr(hypercorn_run, "TCPServer", GatedTCPServer)  # noqa: B010 (not re-exported: mypy rejects the plain assignment)
