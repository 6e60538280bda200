"""The client library against a real daemon, and against a scripted peer that misbehaves."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
from _support.daemon import RunningDaemon, install_stand_in_agent, running_daemon

from host_daemon import (
    AuthenticationFailed,
    CommitDone,
    DaemonBusy,
    DaemonError,
    DaemonUnavailable,
    ProtocolError,
    RequestRejected,
    RunFinished,
    RunRequest,
    RunStarted,
    WorktreeMerge,
    WorktreeSweep,
    merge_worktree,
    open_run,
    probe,
    sweep_worktrees,
)
from host_daemon._client import error_from_code
from host_daemon._connection import FramedStream, server_handshake
from host_daemon._protocol import CLIENT_TO_DAEMON

TOKEN = "client-test-token"
REQUEST = RunRequest(agent="claude", prompt="hello", cwd="project")


@pytest.fixture
async def daemon(tmp_path: pathlib.Path) -> AsyncIterator[RunningDaemon]:
    (tmp_path / "project").mkdir()
    agent = install_stand_in_agent(tmp_path)
    async with running_daemon(roots=[tmp_path], env={"CLAUDE_PATH": agent}) as d:
        yield d


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("auth_failed", AuthenticationFailed),
        ("busy", DaemonBusy),
        ("path_outside_root", RequestRejected),
        ("unknown_agent", RequestRejected),
        ("agent_not_found", RequestRejected),
        ("invalid_request", RequestRejected),
        ("permission_mode_not_allowed", RequestRejected),
        ("not_an_object", ProtocolError),
        ("connection_lost", DaemonUnavailable),
    ],
)
def test_error_codes_map_to_classes(code: str, cls: type[DaemonError]) -> None:
    """Each error frame code becomes its DaemonError subclass, keeping code and message."""
    error = error_from_code(code, "why")
    assert type(error) is cls
    assert (error.code, error.message) == (code, "why")


async def test_stream_ends_after_run_finished(daemon: RunningDaemon) -> None:
    """After the one RunFinished, iteration stops and stays stopped."""
    async with open_run(daemon.host, daemon.port, daemon.token, REQUEST) as stream:
        events = [event async for event in stream]
        assert [event async for event in stream] == []
    assert isinstance(events[0], RunStarted)
    assert sum(isinstance(event, RunFinished) for event in events) == 1
    assert stream.finished is events[-1]


async def test_event_larger_than_client_limit_is_a_protocol_error(daemon: RunningDaemon) -> None:
    """An event frame above the client's own limit raises ProtocolError (frame_too_large)."""
    request = RunRequest(agent="claude", prompt="lines 3", cwd="project")
    with pytest.raises(ProtocolError) as caught:
        async with open_run(
            daemon.host, daemon.port, daemon.token, request, max_frame_bytes=512
        ) as stream:
            _ = [event async for event in stream]
    assert caught.value.code == "frame_too_large"


async def serve_once(
    behaviour: Callable[[FramedStream], Awaitable[None]],
) -> tuple[int, Callable[[], Awaitable[None]]]:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def peer() -> None:
        async with listener:
            stream = await listener.accept()
            async with stream:
                conn = FramedStream(stream, CLIENT_TO_DAEMON, max_frame_bytes=1 << 20)
                await server_handshake(conn, TOKEN)
                await behaviour(conn)

    return listener.socket.getsockname()[1], peer


async def test_daemon_vanishing_mid_run_is_unavailable() -> None:
    """A daemon that closes the connection before RunFinished raises DaemonUnavailable."""

    async def start_then_vanish(conn: FramedStream) -> None:
        await conn.receive()
        await conn.send(RunStarted(pid=1, argv=["x"], cwd="/"))

    port, peer = await serve_once(start_then_vanish)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer)
        with pytest.raises(DaemonUnavailable) as caught:
            async with open_run("127.0.0.1", port, TOKEN, REQUEST) as stream:
                _ = [event async for event in stream]
    assert caught.value.code == "connection_lost"


async def test_wrong_answer_to_probe_is_a_protocol_error() -> None:
    """A daemon answering a probe with a run event is a protocol error."""

    async def answer_wrongly(conn: FramedStream) -> None:
        await conn.receive()
        await conn.send(RunStarted(pid=1, argv=["x"], cwd="/"))

    port, peer = await serve_once(answer_wrongly)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer)
        with pytest.raises(ProtocolError):
            await probe("127.0.0.1", port, TOKEN)


async def test_a_peer_closing_before_its_challenge_is_unavailable() -> None:
    """A peer that accepts and closes at once (a daemon going down, a proxy with no upstream)
    is a daemon gone away (``closed``: worth retrying), not a protocol error."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        port = listener.socket.getsockname()[1]
        async with trio.open_nursery() as nursery:

            async def close_at_once() -> None:
                stream = await listener.accept()
                await stream.aclose()

            nursery.start_soon(close_at_once)
            with pytest.raises(DaemonUnavailable) as caught:
                await probe("127.0.0.1", port, TOKEN, timeout=30.0)
    assert caught.value.code in ("closed", "connection_lost")


async def test_silent_daemon_times_out() -> None:
    """A peer that accepts but never challenges makes the client give up after its timeout."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        port = listener.socket.getsockname()[1]
        async with trio.open_nursery() as nursery:

            async def hold() -> None:
                stream = await listener.accept()
                async with stream:
                    await trio.sleep_forever()

            nursery.start_soon(hold)
            with pytest.raises(DaemonUnavailable) as caught:
                await probe("127.0.0.1", port, TOKEN, timeout=0.3)
            nursery.cancel_scope.cancel()
    assert caught.value.code == "timeout"


async def test_wrong_reply_to_a_worktree_operation_is_a_protocol_error() -> None:
    """A daemon answering a merge with another operation's reply is ``unexpected_message``."""

    async def answer_wrongly(conn: FramedStream) -> None:
        await conn.receive()
        await conn.send(CommitDone(commit=None, files=[]))

    port, peer = await serve_once(answer_wrongly)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer)
        with pytest.raises(ProtocolError) as caught:
            await merge_worktree("127.0.0.1", port, TOKEN, WorktreeMerge(key="t1"))
    assert caught.value.code == "unexpected_message"
    assert caught.value.message == "the daemon answered the worktree_merge with CommitDone"


async def test_worktree_operation_without_an_answer_times_out() -> None:
    """A daemon that takes a worktree request and never answers makes the client give up."""

    async def never_answer(conn: FramedStream) -> None:
        await conn.receive()
        await trio.sleep_forever()

    port, peer = await serve_once(never_answer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer)
        with pytest.raises(DaemonUnavailable) as caught:
            await sweep_worktrees("127.0.0.1", port, TOKEN, WorktreeSweep(keep=[]), timeout=0.5)
        nursery.cancel_scope.cancel()
    assert caught.value.code == "timeout"
    assert caught.value.message == "the daemon did not answer the worktree_sweep within 0.5 s"
