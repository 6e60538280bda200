"""Hostile run requests over a real daemon connection: each is refused with a clear error frame.

NUL characters in any string that reaches argv, the environment or a path, and model names or
session ids that a CLI could read as options, get ``invalid_request`` naming the field; the
handler does not crash (no ``internal error`` in the log) and the daemon serves the next client.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import AsyncIterator

import orjson
import pytest
import trio
from _support.daemon import RunningDaemon, install_stand_in_agent, running_daemon

import host_daemon
from host_daemon._connection import FramedStream, client_handshake
from host_daemon._protocol import DAEMON_TO_CLIENT, ErrorFrame, ProbeInfo


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "root"
    (path / "project").mkdir(parents=True)
    return path


@pytest.fixture
async def daemon(root: pathlib.Path, tmp_path: pathlib.Path) -> AsyncIterator[RunningDaemon]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {
        "CLAUDE_PATH": install_stand_in_agent(bin_dir, "claude"),
        "CODEX_PATH": install_stand_in_agent(bin_dir, "codex"),
        "GEMINI_PATH": install_stand_in_agent(bin_dir, "gemini"),
    }
    async with running_daemon(roots=[root], env=env, handshake_timeout_s=5.0) as d:
        yield d


async def _send_run(daemon: RunningDaemon, fields: dict[str, object]) -> list[object]:
    """Send one raw run frame after the handshake; every frame the daemon answers, to the end."""
    stream = await trio.open_tcp_stream(daemon.host, daemon.port)
    conn = FramedStream(stream, DAEMON_TO_CLIENT, max_frame_bytes=1 << 24)
    async with stream:
        await client_handshake(conn, daemon.token)
        await stream.send_all(orjson.dumps({"type": "run", **fields}) + b"\n")
        frames: list[object] = []
        while (frame := await conn.receive()) is not None:
            frames.append(frame)
    return frames


_VALID = {"agent": "claude", "prompt": "hello", "cwd": "project"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", "hello\0world"),
        ("cwd", "project\0"),
        ("model", "opus\0"),
        ("resume_session_id", "\0abc"),
        ("permission_mode", "acceptEdits\0"),
    ],
)
async def test_nul_in_a_string_field_is_an_invalid_request(
    daemon: RunningDaemon, caplog: pytest.LogCaptureFixture, field: str, value: str
) -> None:
    """A NUL in any string field gets one ``invalid_request`` naming it, then a clean close."""
    caplog.set_level(logging.INFO, logger="host_daemon")
    frames = await _send_run(daemon, {**_VALID, field: value})
    assert len(frames) == 1, frames
    error = frames[0]
    assert isinstance(error, ErrorFrame)
    assert error.code == "invalid_request"
    assert f"@ $.{field}" in error.message
    assert "NUL" in error.message
    assert "internal error" not in caplog.text
    assert isinstance(await host_daemon.probe(daemon.host, daemon.port, daemon.token), ProbeInfo)


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini"])
@pytest.mark.parametrize(
    "model",
    [
        "--allowed-tools=run_shell_command",
        "--yolo",
        "-y",
        "--sandbox=false",
        "opus=x",
        "opus --yolo",
        "",
        "x" * 200,
        "opus\n",
    ],
)
async def test_model_that_is_no_plain_name_is_an_invalid_request(
    daemon: RunningDaemon, caplog: pytest.LogCaptureFixture, agent: str, model: str
) -> None:
    """A model that is not a plain name (option-like, spaces, ``=``, too long) is refused."""
    caplog.set_level(logging.INFO, logger="host_daemon")
    frames = await _send_run(daemon, {**_VALID, "agent": agent, "model": model})
    assert len(frames) == 1, frames
    error = frames[0]
    assert isinstance(error, ErrorFrame)
    assert error.code == "invalid_request"
    assert "@ $.model" in error.message
    assert "internal error" not in caplog.text


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini"])
@pytest.mark.parametrize("session", ["--last", "-", "a b", "a=b", ""])
async def test_session_id_that_is_no_plain_id_is_an_invalid_request(
    daemon: RunningDaemon, agent: str, session: str
) -> None:
    """A resume session id that a CLI could read as an option (or that is empty) is refused."""
    frames = await _send_run(daemon, {**_VALID, "agent": agent, "resume_session_id": session})
    assert len(frames) == 1, frames
    error = frames[0]
    assert isinstance(error, ErrorFrame)
    assert error.code == "invalid_request"
    assert "@ $.resume_session_id" in error.message


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini"])
async def test_plain_model_and_session_reach_the_cli_as_one_word_each(
    daemon: RunningDaemon, agent: str
) -> None:
    """A plain model name and session id are accepted and passed bound to their options."""
    frames = await _send_run(
        daemon,
        {
            **_VALID,
            "agent": agent,
            "model": "gemini-2.5-flash",
            "resume_session_id": "0199a213-81c0-7800-8aa1-bbab2a035a53",
        },
    )
    started = frames[0]
    assert isinstance(started, host_daemon.RunStarted)
    assert "--model=gemini-2.5-flash" in started.argv
    assert "-m" not in started.argv
    assert "--model" not in started.argv
