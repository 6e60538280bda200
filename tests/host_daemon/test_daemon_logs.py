"""The daemon's text logs: what a client sends cannot forge a log line."""

from __future__ import annotations

import io
import logging
import pathlib
from collections.abc import Iterator

import orjson
import pytest
import trio
from _support.daemon import running_daemon

from host_daemon._cli import _TextFormatter
from host_daemon._connection import FramedStream
from host_daemon._protocol import DAEMON_TO_CLIENT, Challenge, ErrorFrame

_FORGED = "ERROR forged line"


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    """The ``host_daemon`` logger's records, formatted as the daemon's text format."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(_TextFormatter())
    logger = logging.getLogger("host_daemon")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield sink
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_newline_from_an_unauthenticated_client_stays_in_its_field(
    tmp_path: pathlib.Path, text_log: io.StringIO
) -> None:
    """A field name with a newline in a refused hello is logged quoted, on one line."""
    hello = {"type": "hello", "protocol_version": 1, "client_nonce": "n", "proof": "p"}
    hello[f"x\n{_FORGED} k=v"] = 1
    async with running_daemon(roots=[tmp_path]) as d:
        stream = await trio.open_tcp_stream(d.host, d.port)
        async with stream:
            conn = FramedStream(stream, DAEMON_TO_CLIENT, max_frame_bytes=1 << 16)
            assert isinstance(await conn.receive(), Challenge)
            await stream.send_all(orjson.dumps(hello) + b"\n")
            error = await conn.receive()
    assert isinstance(error, ErrorFrame)
    lines = text_log.getvalue().splitlines()
    refused = [line for line in lines if line.startswith("WARNING request refused")]
    assert len(refused) == 1
    assert "\\n" + _FORGED in refused[0]
    assert not any(line.startswith(_FORGED) for line in lines)
