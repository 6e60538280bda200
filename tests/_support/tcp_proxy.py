"""A TCP forwarder on loopback that a test can cut: a network blip between server and daemon.

    async with tcp_proxy("127.0.0.1", daemon.port) as proxy:
        endpoint = DaemonEndpoint("127.0.0.1", proxy.port, daemon.token)
        ...
        proxy.sever()            # every connection through it drops (both ends see EOF/reset)
        proxy.refusing = True    # new connections are closed at once (the daemon "unreachable")

Each accepted connection is forwarded to the target in a task of the proxy's nursery.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import attrs
import trio


@attrs.define(eq=False)
class TcpProxy:
    """Where the proxy listens, and its switches."""

    port: int
    refusing: bool = False
    accepted: int = 0
    """Connections forwarded so far."""
    _scopes: set[trio.CancelScope] = attrs.field(factory=set)

    def sever(self) -> None:
        """Drop every connection through the proxy now."""
        for scope in list(self._scopes):
            scope.cancel()


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        async for chunk in source:
            await sink.send_all(chunk)
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await sink.send_eof()


@contextlib.asynccontextmanager
async def tcp_proxy(host: str, port: int) -> AsyncIterator[TcpProxy]:
    """Forward ``127.0.0.1:<proxy.port>`` to ``host:port`` for the duration of the block."""
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        proxy = TcpProxy(port=listeners[0].socket.getsockname()[1])

        async def forward(client: trio.SocketStream) -> None:
            async with client:
                if proxy.refusing:
                    return
                proxy.accepted += 1
                with trio.CancelScope() as scope:
                    proxy._scopes.add(scope)
                    try:
                        upstream = await trio.open_tcp_stream(host, port)
                        async with upstream, trio.open_nursery() as pumps:
                            pumps.start_soon(_pump, client, upstream)
                            pumps.start_soon(_pump, upstream, client)
                    finally:
                        proxy._scopes.discard(scope)

        nursery.start_soon(trio.serve_listeners, forward, listeners)
        yield proxy
        nursery.cancel_scope.cancel()
