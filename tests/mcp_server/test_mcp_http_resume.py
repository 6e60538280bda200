"""``Last-Event-ID`` resumption against the fixture server running in its own process.

A resume request that made the server spin would freeze a server sharing the test's event loop
(and the test with it), so these tests start ``tests/conformance/server.py`` as a subprocess and
bound every answer by the client's timeout.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from _support.mcp_http import open_session, read_events, rpc

from mcp_server._http._streams import EventStream

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSWER_BOUND_S = 10.0
"""Upper bound for any answer here; a spinning server never answers at all."""


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    """The fixture server's base URL; killed at the end if SIGTERM does not stop it."""
    argv = [sys.executable, "tests/conformance/server.py", "--port", "0"]
    process = await trio.lowlevel.open_process(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE)
    assert process.stdout is not None
    try:
        banner = b""
        with trio.fail_after(60):
            while b"\n" not in banner:
                chunk = await process.stdout.receive_some()
                assert chunk, "server.py exited before announcing its URL"
                banner += chunk
        yield banner.decode().split("\n")[0].removeprefix("serving ").strip()
    finally:
        process.terminate()
        with trio.move_on_after(20):
            await process.wait()
        if process.returncode is None:
            process.kill()  # a spinning event loop never handles SIGTERM
            await process.wait()
        await process.stdout.aclose()


def refusal(response: httpx.Response) -> str:
    """The JSON-RPC error message of a 400 answer (fails on any other status)."""
    assert response.status_code == 400, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == -32600
    message: str = error["message"]
    return message


async def test_last_event_id_past_the_get_stream_is_400_and_the_server_stays_up(
    base_url: str,
) -> None:
    """A GET resuming the session stream after an event never sent is 400; /healthz answers."""
    url = f"{base_url}/mcp"
    async with httpx.AsyncClient(timeout=ANSWER_BOUND_S) as client:
        headers = await open_session(client, url)
        past = await client.get(url, headers={**headers, "last-event-id": "g:1000"})
        assert "g:1000" in refusal(past)
        async with client.stream("GET", url, headers={**headers, "last-event-id": "g:0"}) as held:
            assert held.headers["content-type"] == "text/event-stream"
            health = await client.get(f"{base_url}/healthz")
    assert health.status_code == 200


async def test_last_event_id_past_a_request_stream_is_400_and_the_server_stays_up(
    base_url: str,
) -> None:
    """Resuming an in-flight request's stream past its last event is 400; /healthz answers."""
    url = f"{base_url}/mcp"
    async with httpx.AsyncClient(timeout=ANSWER_BOUND_S) as client:
        headers = await open_session(client, url, {"elicitation": {}})
        call = rpc(7, "tools/call", {"name": "test_elicitation", "arguments": {"message": "?"}})
        event_id = None
        async with client.stream("POST", url, headers=headers, json=call) as response:
            async for sent_id, message in read_events(response):
                if message is not None and message.get("method") == "elicitation/create":
                    event_id = sent_id
                    break
        assert event_id is not None
        key, _, seq = event_id.rpartition(":")
        past = await client.get(url, headers={**headers, "last-event-id": f"{key}:1000"})
        assert f"{key}:1000" in refusal(past)
        resume = {**headers, "last-event-id": event_id}
        async with client.stream("GET", url, headers=resume) as held:
            assert held.headers["content-type"] == "text/event-stream"
            health = await client.get(f"{base_url}/healthz")
        cancel = rpc(None, "notifications/cancelled", {"requestId": 7})
        assert (await client.post(url, headers=headers, json=cancel)).status_code == 202
    assert health.status_code == 200
    assert int(seq) < 1000


@pytest.mark.parametrize(
    "sequence",
    [
        b"\xb2",  # "²" in latin-1: str.isdigit() accepts it, int() does not
        b"\xb9",  # "¹"
        b"9" * 5000,  # past int()'s digit limit
    ],
)
async def test_last_event_id_sequence_must_be_ascii_digits(base_url: str, sequence: bytes) -> None:
    """A Last-Event-ID sequence in anything but ASCII digits is 400, never a 500."""
    url = f"{base_url}/mcp"
    async with httpx.AsyncClient(timeout=ANSWER_BOUND_S) as client:
        headers = await open_session(client, url)
        raw = [(name.encode(), value.encode()) for name, value in headers.items()]
        response = await client.get(url, headers=[*raw, (b"last-event-id", b"g:" + sequence)])
    assert "Last-Event-ID" in refusal(response)


def test_event_stream_reports_a_sequence_it_never_reached_as_a_gap() -> None:
    """A reader positioned past the last event sees a gap (it cannot continue), not 'wait'."""
    stream = EventStream("g", 4)
    stream.push(b"1")
    stream.push(b"2")
    assert stream.after(2) == ([], False)
    assert stream.after(5) == ([], True)
