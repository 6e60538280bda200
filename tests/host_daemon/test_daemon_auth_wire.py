"""The daemon's token check seen from a raw client: JSON lines on a plain TCP stream.

Nothing of the project's client side is used here (no ``FramedStream``, no ``client_handshake``,
no ``compute_proof``): the frames and the proof are written from the protocol's description, so
the daemon's own check is what decides, not a client that refuses first.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
from _support.daemon import RunningDaemon, running_daemon

DEADLINE = 30.0  # an upper bound only: the machine is shared and loaded
CLIENT_NONCE = "c1" * 32

# A claude stand-in that leaves a mark the moment it runs, then succeeds.
_MARKING_CLI = """\
#!/bin/sh
if [ "$1" = --version ]; then echo '1.0 (marking claude)'; exit 0; fi
echo ran >> '{marker}'
echo '{{"type":"system","subtype":"init","session_id":"s1"}}'
echo '{{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s1"}}'
"""


def proof(token: str, role: str, server_nonce: str, client_nonce: str) -> str:
    """HMAC-SHA256 over ``"coding-agent-daemon/1 " role \\0 server_nonce \\0 client_nonce``."""
    message = b"\0".join(
        (f"coding-agent-daemon/1 {role}".encode(), server_nonce.encode(), client_nonce.encode())
    )
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def frame(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


RUN = {"type": "run", "agent": "claude", "prompt": "hello", "cwd": "project"}
PROBE = {"type": "probe"}


@pytest.fixture
def marker(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "agent-ran"


@pytest.fixture
async def daemon(tmp_path: pathlib.Path, marker: pathlib.Path) -> AsyncIterator[RunningDaemon]:
    root = tmp_path / "root"
    (root / "project").mkdir(parents=True)
    cli = tmp_path / "marking-claude"
    cli.write_text(_MARKING_CLI.format(marker=marker))
    cli.chmod(0o755)
    env = {"CLAUDE_PATH": str(cli)}
    async with running_daemon(roots=[root], env=env, handshake_timeout_s=DEADLINE) as d:
        yield d


class RawClient:
    """One TCP connection to the daemon: send JSON frames, read frames up to the daemon's EOF."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buffer = b""
        self.closed_by_daemon = False

    async def next_frame(self) -> dict[str, Any] | None:
        while b"\n" not in self._buffer:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:  # a reset counts as the daemon closing
                data = b""
            if not data:
                self.closed_by_daemon = True
                return None
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    async def send(self, *frames: dict[str, Any]) -> None:
        """Send frames; a daemon that already closed its side may refuse them (not an error)."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.stream.send_all(b"".join(frame(f) for f in frames))

    async def rest(self) -> list[dict[str, Any]]:
        """Every frame until the daemon closes the connection."""
        frames = []
        while (next_frame := await self.next_frame()) is not None:
            frames.append(next_frame)
        return frames


async def handshake_then(
    d: RunningDaemon, make_proof: Callable[[str], str], *operations: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Challenge, then a hello with ``make_proof(server_nonce)`` and ``operations`` pipelined.

    Returns the challenge, the frames up to the first error (or the end), and what came after
    a second copy of ``operations`` sent once that error had arrived.
    """
    with trio.fail_after(DEADLINE):
        stream = await trio.open_tcp_stream(d.host, d.port)
        async with stream:
            client = RawClient(stream)
            challenge = await client.next_frame()
            assert challenge is not None
            assert challenge["type"] == "challenge"
            hello = {
                "type": "hello",
                "protocol_version": challenge["protocol_version"],
                "client_nonce": CLIENT_NONCE,
                "proof": make_proof(challenge["server_nonce"]),
            }
            await client.send(hello, *operations)
            first: list[dict[str, Any]] = []
            while (received := await client.next_frame()) is not None:
                first.append(received)
                if received["type"] == "error":
                    break
            await client.send(*operations)
            after = await client.rest()
    return challenge, first, after


WRONG_PROOFS: dict[str, Callable[[str, str], str]] = {
    "another token": lambda token, nonce: proof(token + "x", "client", nonce, CLIENT_NONCE),
    "the daemon's own proof reflected": lambda token, nonce: proof(
        token, "server", nonce, CLIENT_NONCE
    ),
    "a proof for another nonce": lambda token, nonce: proof(
        token, "client", "00" * 32, CLIENT_NONCE
    ),
    "an empty proof": lambda token, nonce: "",
}


@pytest.mark.parametrize("wrong", list(WRONG_PROOFS), ids=list(WRONG_PROOFS))
async def test_wrong_proof_gets_auth_failed_and_no_operation_runs(
    daemon: RunningDaemon, marker: pathlib.Path, wrong: str
) -> None:
    """A wrong proof gets one ``auth_failed`` frame, no welcome; pipelined runs never start."""
    make = WRONG_PROOFS[wrong]
    _, first, after = await handshake_then(
        daemon, lambda nonce: make(daemon.token, nonce), RUN, PROBE
    )
    assert first == [{"type": "error", "code": "auth_failed", "message": "authentication failed"}]
    assert after == []
    assert not await trio.Path(marker).exists()


async def test_right_proof_from_the_raw_client_is_served(
    daemon: RunningDaemon, marker: pathlib.Path
) -> None:
    """The same raw client with the right proof gets a welcome and its run (the control case)."""
    challenge, first, _ = await handshake_then(
        daemon, lambda nonce: proof(daemon.token, "client", nonce, CLIENT_NONCE), RUN
    )
    assert first[0] == {
        "type": "welcome",
        "proof": proof(daemon.token, "server", challenge["server_nonce"], CLIENT_NONCE),
    }
    assert [f["type"] for f in first[1:]][:1] == ["run_started"]
    assert first[-1]["type"] == "run_finished"
    assert first[-1]["outcome"] == "success"
    assert await trio.Path(marker).read_text() == "ran\n"
