"""The trio side of the protocol: a framed stream and the two halves of the handshake."""

from __future__ import annotations

from typing import Any, Final, Protocol

import trio

from . import _auth
from ._errors import DaemonError
from ._protocol import (
    PROTOCOL_VERSION,
    Challenge,
    ErrorFrame,
    FrameDecoder,
    Hello,
    Message,
    ProtocolViolation,
    Welcome,
    encode_frame,
)

#: Bytes to ask for per read: a run streams many frames, and each read costs a trip to the loop.
_RECEIVE_CHUNK: Final = 256 * 1024


class FrameSink(Protocol):
    """Where a run's encoded frames go: its connection, or its ``_detach.DetachableRun``."""

    async def send_frames(self, frames: bytes | bytearray) -> None: ...


class FramedStream:
    """Messages over a trio stream: ``send`` awaits the peer (backpressure), ``receive`` decodes."""

    def __init__(
        self,
        stream: trio.abc.HalfCloseableStream,
        accept: frozenset[type[Any]],
        *,
        max_frame_bytes: int,
    ) -> None:
        self.stream = stream
        self._decoder = FrameDecoder(accept, max_frame_bytes=max_frame_bytes)
        self._eof = False

    async def send(self, message: Message) -> None:
        """Send one frame; returns once the transport has taken it."""
        await self.stream.send_all(encode_frame(message))

    async def send_frames(self, frames: bytes | bytearray) -> None:
        """Send frames already encoded with ``encode_frame``, in one write (a run's batch)."""
        await self.stream.send_all(frames)

    def receive_buffered(self) -> Message | None:
        """The next message if its bytes are here already, else ``None``; never waits."""
        return self._decoder.next_message()

    async def receive(self) -> Message | None:
        """The next message, ``None`` at a clean end of stream; raises ``ProtocolViolation``."""
        while True:
            message = self._decoder.next_message()
            if message is not None:
                return message
            if self._eof:
                return None
            data = await self.stream.receive_some(_RECEIVE_CHUNK)
            if data:
                self._decoder.feed(data)
            else:
                self._eof = True
                self._decoder.feed_eof()


class HandshakeFailed(DaemonError):
    """The peer could not prove it holds the token (``code`` is ``auth_failed``) or misbehaved."""


async def server_handshake(conn: FramedStream, token: str) -> None:
    """Challenge the client; return once it proved the token, after proving it back."""
    server_nonce = _auth.new_nonce()
    await conn.send(Challenge(protocol_version=PROTOCOL_VERSION, server_nonce=server_nonce))
    hello = await conn.receive()
    if hello is None:
        raise HandshakeFailed("closed", "client closed the connection during the handshake")
    if not isinstance(hello, Hello):
        raise ProtocolViolation("unexpected_message", "the first frame must be a hello")
    if hello.protocol_version != PROTOCOL_VERSION:
        raise ProtocolViolation(
            "unsupported_version",
            f"protocol version {hello.protocol_version} is not supported "
            f"(this daemon speaks {PROTOCOL_VERSION}) @ $.protocol_version",
        )
    if not _auth.verify_proof(token, "client", server_nonce, hello.client_nonce, hello.proof):
        raise HandshakeFailed("auth_failed", "authentication failed")
    proof = _auth.compute_proof(token, "server", server_nonce, hello.client_nonce)
    await conn.send(Welcome(proof=proof))


async def client_handshake(conn: FramedStream, token: str) -> None:
    """Answer the daemon's challenge and check its proof; raises on any failure."""
    challenge = await conn.receive()
    if challenge is None:  # gone before a word: down, or shutting down (worth a retry)
        raise HandshakeFailed("closed", "the daemon closed the connection before its challenge")
    if isinstance(challenge, ErrorFrame):
        raise HandshakeFailed(challenge.code, challenge.message)
    if not isinstance(challenge, Challenge):
        raise ProtocolViolation("unexpected_message", "the daemon did not send a challenge")
    if challenge.protocol_version != PROTOCOL_VERSION:
        raise ProtocolViolation(
            "unsupported_version",
            f"the daemon speaks protocol {challenge.protocol_version}, "
            f"this client {PROTOCOL_VERSION}",
        )
    client_nonce = _auth.new_nonce()
    proof = _auth.compute_proof(token, "client", challenge.server_nonce, client_nonce)
    await conn.send(
        Hello(protocol_version=PROTOCOL_VERSION, client_nonce=client_nonce, proof=proof)
    )
    welcome = await conn.receive()
    if isinstance(welcome, ErrorFrame):
        raise HandshakeFailed(welcome.code, welcome.message)
    if welcome is None:
        raise HandshakeFailed("closed", "the daemon closed the connection during the handshake")
    if not isinstance(welcome, Welcome):
        raise ProtocolViolation("unexpected_message", "the daemon did not send a welcome")
    if not _auth.verify_proof(token, "server", challenge.server_nonce, client_nonce, welcome.proof):
        raise HandshakeFailed("auth_failed", "the daemon could not prove it holds the token")
