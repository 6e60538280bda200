"""The client reading a run whose frames arrive many to a write, as the daemon now sends them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from host_daemon import (
    AgentEvent,
    DaemonBusy,
    ProtocolError,
    RunEvent,
    RunFinished,
    RunRequest,
    RunStarted,
    open_run,
)
from host_daemon._connection import FramedStream, server_handshake
from host_daemon._protocol import CLIENT_TO_DAEMON, ErrorFrame, encode_frame

TOKEN = "batch-test-token"
REQUEST = RunRequest(agent="claude", prompt="hello", cwd="project")
STARTED = RunStarted(pid=1, argv=["x"], cwd="/")
EVENTS = [AgentEvent(kind="text", raw=f"line {i}", text=f"text {i}") for i in range(50)]
FINISHED = RunFinished(
    outcome="success",
    exit_code=0,
    signal=None,
    session_id="s",
    final_text="done",
    cost_usd=None,
    num_turns=1,
    usage=None,
    error=None,
)


async def run_against(tail: bytes) -> tuple[list[RunEvent], BaseException | None]:
    """Serve one run whose frames (RunStarted, EVENTS, then ``tail``) go out in one write."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    received: list[RunEvent] = []
    failure: BaseException | None = None

    async def peer(send: Callable[[FramedStream], Awaitable[None]]) -> None:
        async with listener:
            stream = await listener.accept()
            async with stream:
                conn = FramedStream(stream, CLIENT_TO_DAEMON, max_frame_bytes=1 << 20)
                await server_handshake(conn, TOKEN)
                await conn.receive()
                await send(conn)

    async def send_batch(conn: FramedStream) -> None:
        frames = b"".join(encode_frame(message) for message in [STARTED, *EVENTS]) + tail
        await conn.send_frames(frames)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer, send_batch)
        try:
            async with open_run("127.0.0.1", port, TOKEN, REQUEST) as stream:
                async for event in stream:
                    received.append(event)
        except Exception as exc:  # the test inspects what the client raised
            failure = exc
    return received, failure


async def test_batch_ending_with_run_finished_gives_every_event() -> None:
    """Events and RunFinished from one write come out in order, then the stream ends."""
    received, failure = await run_against(encode_frame(FINISHED))
    assert failure is None
    assert received == [STARTED, *EVENTS, FINISHED]


async def test_error_frame_after_buffered_events_raises_after_them() -> None:
    """An error frame behind buffered events: the events first, then its DaemonError."""
    received, failure = await run_against(encode_frame(ErrorFrame(code="busy", message="full")))
    assert received == [STARTED, *EVENTS]
    assert isinstance(failure, DaemonBusy)
    assert failure.message == "full"


async def test_malformed_frame_after_buffered_events_is_a_protocol_error() -> None:
    """A bad frame behind buffered events: the events first, then ProtocolError naming it."""
    received, failure = await run_against(b'{"type":"agent_event","kind":"text"}\n')
    assert received == [STARTED, *EVENTS]
    assert isinstance(failure, ProtocolError)
    assert "$.raw" in failure.message


@pytest.mark.parametrize("cut", [1, 10])
async def test_batch_cut_short_by_the_peer_is_a_protocol_error(cut: int) -> None:
    """A peer closing in the middle of a frame, behind buffered events: events, then an error."""
    received, failure = await run_against(encode_frame(FINISHED)[:-cut])
    assert received == [STARTED, *EVENTS]
    assert isinstance(failure, ProtocolError)
    assert failure.code == "truncated_frame"
