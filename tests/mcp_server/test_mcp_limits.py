"""Descriptors under attack: slow bodies, connection floods, the limit on open files.

The flood tests run ``coding-agent up`` in a subprocess whose hard limit on open files is small
(``LIMIT``), and count its descriptors in ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from _support.agent_up import Up, base_env, coding_agent_up
from _support.mcp_http import serving

from mcp_server import Registry

DEADLINE = 30.0  # generous: the machine is shared and loaded
#: The hard limit on open files of the server under test; its soft one starts lower.
LIMIT = 256
FLOOD = LIMIT + 150
CONNECT_S = 5.0
TOKEN = "s3cret"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
}


def slow_body(port: int, token: str | None) -> bytes:
    """A POST's complete headers announcing 1,000 bytes of body, and the first 10 of them."""
    auth = f"authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST /mcp HTTP/1.1\r\nhost: localhost:{port}\r\ncontent-type: application/json\r\n"
        f"accept: application/json, text/event-stream\r\ncontent-length: 1000\r\n{auth}\r\n"
        "0123456789"
    ).encode()


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    """What the server sends until it closes the connection."""
    data = b""
    with contextlib.suppress(trio.BrokenResourceError):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


def open_files(pid: int) -> tuple[int, int]:
    """The (soft, hard) limit on open files of process ``pid``."""
    for line in pathlib.Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open files limit in /proc/{pid}/limits")


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def initialize(url: str, token: str) -> int:
    """The status of an authenticated ``initialize`` on a fresh connection."""
    headers = {"accept": "application/json, text/event-stream", "authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=DEADLINE) as client:
        response = await client.post(url, headers=headers, json=INITIALIZE)
    return response.status_code


@pytest.fixture
async def small_up(tmp_path: pathlib.Path) -> AsyncIterator[Up]:
    """``coding-agent up`` started with open files limited to 64 (soft) and ``LIMIT`` (hard)."""
    root = tmp_path / "root"
    root.mkdir()
    async with coding_agent_up(tmp_path / "state", root, base_env(), open_files=(64, LIMIT)) as up:
        yield up


async def flood(
    port: int, request: bytes, outcomes: list[bytes | None], sent: trio.Event | None = None
) -> None:
    """``FLOOD`` connections at once, each sending ``request``; each outcome is what the server
    sent before closing, or ``None`` when it could not connect or still held it at the deadline.
    ``sent`` is set once every connection was made (or given up) and its request sent.
    """
    pending = FLOOD

    def one_sent() -> None:
        nonlocal pending
        pending -= 1
        if pending == 0 and sent is not None:
            sent.set()

    async def one() -> None:
        stream = None
        # A connect the full backlog dropped retries its SYN after 1, 3, 7… s: give up early.
        with trio.move_on_after(CONNECT_S), contextlib.suppress(OSError):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        if stream is None:
            one_sent()
            outcomes.append(None)
            return
        with trio.move_on_after(DEADLINE):
            async with stream:
                with contextlib.suppress(trio.BrokenResourceError):
                    await stream.send_all(request)
                one_sent()
                outcomes.append(await read_to_eof(stream))
                return
        outcomes.append(None)

    async with trio.open_nursery() as nursery:
        for _ in range(FLOOD):
            nursery.start_soon(one)


async def test_up_raises_the_open_files_limit_to_the_hard_one(small_up: Up) -> None:
    """``up`` raises its soft limit on open files to the hard one at start."""
    assert open_files(small_up.process.pid) == (LIMIT, LIMIT)


async def test_unauthenticated_slow_bodies_refused_without_reading_them(small_up: Up) -> None:
    """More unauthenticated slow bodies than the fd limit are answered (401, or 503 past the cap)
    and closed, none held; an authenticated client is served meanwhile."""
    port = urlsplit(small_up.url).port
    assert port is not None
    outcomes: list[bytes | None] = []
    sent = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood, port, slow_body(port, None), outcomes, sent)
        await sent.wait()
        # Well before the flood's clients give up (DEADLINE) and free what they hold.
        await until_served(small_up.url, small_up.token, DEADLINE / 3)
    answered = [o for o in outcomes if o is not None]
    statuses = {o[:13] for o in answered}
    assert statuses <= {b"HTTP/1.1 401 ", b"HTTP/1.1 503 "}, statuses
    assert b"HTTP/1.1 401 " in statuses
    assert len(answered) > LIMIT, f"{len(answered)} of {FLOOD} answered and closed"


async def test_connection_flood_stays_below_the_descriptor_limit(small_up: Up) -> None:
    """Idle connections beyond half the fd limit get 503 at once: the server never runs out."""
    port = urlsplit(small_up.url).port
    assert port is not None
    pid = small_up.process.pid
    outcomes: list[bytes | None] = []
    most = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood, port, b"", outcomes)
        # /proc offers no event to wait on: sample it while the flood lasts.
        while len(outcomes) < FLOOD:
            most = max(most, descriptors(pid))
            await trio.sleep(0.01)
    refused = [o for o in outcomes if o is not None and o.startswith(b"HTTP/1.1 503 ")]
    held = [o for o in outcomes if o == b""]  # closed after the keep-alive timeout, unanswered
    assert most < LIMIT, f"the server held {most} descriptors, its limit is {LIMIT}"
    assert refused, "no connection was refused with 503"
    assert len(held) <= LIMIT // 2
    assert len(refused) + len(held) + outcomes.count(None) == FLOOD
    assert len(refused) + len(held) > LIMIT, f"{outcomes.count(None)} of {FLOOD} not answered"
    await until_served(small_up.url, small_up.token)


async def test_authenticated_slow_body_gets_408_and_a_closed_connection() -> None:
    """A body that stops coming is answered 408 and its connection closed after the deadline."""
    async with serving(Registry(), auth_token=TOKEN, body_timeout_s=0.5) as url:
        port = urlsplit(url).port
        assert port is not None
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(slow_body(port, TOKEN))
            with trio.fail_after(DEADLINE):
                answer = await read_to_eof(stream)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert b"Request body not received within 0.5 s" in answer


async def held_connection(port: int) -> trio.SocketStream:
    """A connection the server took (it answered a health check), now sending a slow body."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(f"GET /healthz HTTP/1.1\r\nhost: localhost:{port}\r\n\r\n".encode())
    answer = b""
    while not answer.endswith(b'{"status":"ok"}'):
        answer += await stream.receive_some(65536)
    await stream.send_all(slow_body(port, TOKEN))
    return stream


async def served(url: str, token: str) -> bool:
    """Whether an authenticated ``initialize`` gets its 200 (not a 503, not a reset)."""
    try:
        return await initialize(url, token) == 200
    except httpx.TransportError:
        return False


async def until_served(url: str, token: str, timeout: float = DEADLINE) -> None:
    """Retry an authenticated ``initialize`` until it gets its 200 (past a 503 or a reset)."""
    with trio.fail_after(timeout):
        # Nothing to wait on but the server's next answer: retry at a gentle pace.
        while not await served(url, token):  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_connections_beyond_the_cap_get_503_until_one_ends() -> None:
    """Past ``max_connections`` a connection gets 503 and is closed; a freed place serves again."""
    async with serving(
        Registry(), auth_token=TOKEN, max_connections=2, body_timeout_s=DEADLINE
    ) as url:
        port = urlsplit(url).port
        assert port is not None
        async with contextlib.AsyncExitStack() as stack:
            held = [await stack.enter_async_context(await held_connection(port)) for _ in range(2)]
            async with await trio.open_tcp_stream("127.0.0.1", port) as extra:
                with trio.fail_after(DEADLINE):
                    answer = await read_to_eof(extra)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:80]
            assert not await served(url, TOKEN)
            await held.pop().aclose()
            await until_served(url, TOKEN)
