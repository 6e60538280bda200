"""A TCP forwarder on loopback that a test can cut: a network blip between server and daemon.

    async with tcp_proxy("127.0.0.1", daemon.port) as proxy:
        endpoint = DaemonEndpoint("127.0.0.1", proxy.port, daemon.token)
        ...
        proxy.refusing = True    # it stops listening: connecting is refused (the daemon is
                                 # "unreachable"); False listens on the same port again
        proxy.sever()            # every connection through it drops (both ends see EOF)

Each accepted connection is forwarded to the target in a task of the proxy's nursery.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

import attrs
import trio


@attrs.define(eq=False)
class TcpProxy:
    """Where the proxy listens, and its switches."""

    port: int
    _nursery: trio.Nursery
    _target: tuple[str, int]
    accepted: int = 0
    """Connections forwarded so far."""
    _listening: trio.CancelScope | None = None
    _scopes: set[trio.CancelScope] = attrs.field(factory=set)

    @property
    def refusing(self) -> bool:
        return self._listening is None

    @refusing.setter
    def refusing(self, refuse: bool) -> None:
        if refuse and self._listening is not None:
            self._listening.cancel()
            self._listening = None
        elif not refuse and self._listening is None:
            self._listening = trio.CancelScope()
            self._nursery.start_soon(self._listen, self._listening)

    def sever(self) -> None:
        """Drop every connection through the proxy now."""
        for scope in list(self._scopes):
            scope.cancel()

    async def _listen(self, scope: trio.CancelScope) -> None:
        with scope:
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await sock.bind(("127.0.0.1", self.port))
            sock.listen()
            await trio.serve_listeners(self._forward, [trio.SocketListener(sock)])

    async def _forward(self, client: trio.SocketStream) -> None:
        async with client:
            self.accepted += 1
            with trio.CancelScope() as scope:
                self._scopes.add(scope)
                try:
                    upstream = await trio.open_tcp_stream(*self._target)
                    async with upstream, trio.open_nursery() as pumps:
                        pumps.start_soon(_pump, client, upstream)
                        pumps.start_soon(_pump, upstream, client)
                finally:
                    self._scopes.discard(scope)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        async for chunk in source:
            await sink.send_all(chunk)
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await sink.send_eof()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def tcp_proxy(host: str, port: int) -> AsyncIterator[TcpProxy]:
    """Forward ``127.0.0.1:<proxy.port>`` to ``host:port`` for the duration of the block."""
    async with trio.open_nursery() as nursery:
        proxy = TcpProxy(_free_port(), nursery, (host, port))
        proxy.refusing = False
        await _until_listening(proxy.port)
        yield proxy
        nursery.cancel_scope.cancel()


async def _until_listening(port: int) -> None:
    with trio.fail_after(10):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.01)
                continue
            await stream.aclose()
            return


__all__ = ["TcpProxy", "tcp_proxy"]
