"""container/healthcheck.py against a real HTTP responder on loopback."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import trio

HEALTHCHECK = pathlib.Path(__file__).resolve().parents[2] / "container" / "healthcheck.py"


async def responder(status: int, *, task_status: trio.TaskStatus[int]) -> None:
    """Answer each request on 127.0.0.1 with `status` for /healthz and 404 for anything else."""

    async def answer(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = await stream.receive_some()
            if not chunk:
                return
            request += chunk
        path = request.split(b" ", 2)[1]
        code = status if path == b"/healthz" else 404
        await stream.send_all(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(answer, listeners)


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    """The responder in a nursery this fixture owns, answering with the parametrized status."""
    async with trio.open_nursery() as nursery:
        yield await nursery.start(responder, request.param)
        nursery.cancel_scope.cancel()


async def probe(port: int) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, str(HEALTHCHECK)],
        env={"PORT": str(port)},
        capture_stderr=True,
        check=False,
    )


@pytest.mark.parametrize("server", [200], indirect=True)
async def test_healthcheck_passes_on_200(server: int) -> None:
    """A 200 from /healthz is healthy (exit 0)."""
    assert (await probe(server)).returncode == 0


@pytest.mark.parametrize("server", [503], indirect=True)
async def test_healthcheck_fails_on_error_status(server: int) -> None:
    """A 503 from /healthz is unhealthy (exit 1), with the reason on stderr."""
    result = await probe(server)
    assert result.returncode == 1
    assert b"503" in result.stderr


async def test_healthcheck_fails_when_nothing_listens() -> None:
    """No server on the port is unhealthy (exit 1)."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = await probe(port)  # bound but not listening: connection refused
    assert result.returncode == 1
    assert b"unhealthy" in result.stderr
