"""A real daemon on 127.0.0.1:0 with a stand-in agent: probe, runs, refusals, cancellation."""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import sys
from collections.abc import AsyncIterator

import pytest
import trio
from _support.daemon import RunningDaemon, install_stand_in_agent, running_daemon
from _support.polling import eventually

import host_daemon
from host_daemon import (
    AgentEvent,
    AuthenticationFailed,
    DaemonBusy,
    DaemonUnavailable,
    RequestRejected,
    RunFinished,
    RunRequest,
    RunStarted,
    open_run,
)
from host_daemon._auth import compute_proof
from host_daemon._connection import FramedStream, client_handshake
from host_daemon._proc import read_stat
from host_daemon._protocol import DAEMON_TO_CLIENT, Challenge, ErrorFrame, Hello, ProbeInfo

DEADLINE = 30.0  # generous: the machine is shared and loaded


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "root"
    (path / "project").mkdir(parents=True)
    return path


@pytest.fixture
def agent_env(tmp_path: pathlib.Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return {
        "CLAUDE_PATH": install_stand_in_agent(bin_dir),
        "CODEX_PATH": str(tmp_path / "no-codex"),
        "GEMINI_PATH": str(tmp_path / "no-gemini"),
    }


@pytest.fixture
async def daemon(root: pathlib.Path, agent_env: dict[str, str]) -> AsyncIterator[RunningDaemon]:
    async with running_daemon(roots=[root], env=agent_env, handshake_timeout_s=5.0) as d:
        yield d


def request(prompt: str, **fields: object) -> RunRequest:
    return RunRequest(agent="claude", prompt=prompt, cwd="project", **fields)  # type: ignore[arg-type]


async def collect(d: RunningDaemon, req: RunRequest) -> list[host_daemon.RunEvent]:
    async with open_run(d.host, d.port, d.token, req) as stream:
        return [event async for event in stream]


def gone(pid: int) -> bool:
    stat = read_stat(pid)
    return stat is None or not stat.alive


async def wait_gone(*pids: int) -> None:
    with trio.fail_after(DEADLINE):
        # /proc offers no event to wait on: poll it.
        while not all(gone(pid) for pid in pids):  # noqa: ASYNC110
            await trio.sleep(0.05)


async def raw_authenticated(d: RunningDaemon) -> FramedStream:
    stream = await trio.open_tcp_stream(d.host, d.port)
    conn = FramedStream(stream, DAEMON_TO_CLIENT, max_frame_bytes=1 << 20)
    await client_handshake(conn, d.token)
    return conn


async def test_probe_reports_agents_roots_and_limits(
    daemon: RunningDaemon, root: pathlib.Path
) -> None:
    """Probe names each agent (found with its --version, or why not), the roots and limits."""
    info = await host_daemon.probe(daemon.host, daemon.port, daemon.token)
    by_name = {agent.name: agent for agent in info.agents}
    assert by_name["claude"].version == "9.9.9 (stand-in claude)"
    assert by_name["codex"].path is None
    assert by_name["codex"].error
    assert info.roots == [str(root)]
    assert info.protocol_version == host_daemon.PROTOCOL_VERSION
    assert info.max_concurrent_runs == daemon.config.max_runs
    assert info.active_runs == 0


async def test_probe_remembers_versions_until_the_cli_changes(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """``--version`` (and the live check's ``--help``) run once per CLI file, and again once the
    file is replaced."""
    calls = tmp_path / "calls"
    cli = tmp_path / "versioned-claude"
    script = f'#!/bin/sh\necho "$1" >> {calls}\necho {{}}\n'
    cli.write_text(script.format("1.0"))
    cli.chmod(0o755)
    async with running_daemon(roots=[root], env={"CLAUDE_PATH": str(cli)}) as d:
        for _ in range(3):
            info = await host_daemon.probe(d.host, d.port, d.token)
        assert calls.read_text().splitlines() == ["--version", "--help"]
        replacement = tmp_path / "new-claude"
        replacement.write_text(script.format("2.0"))
        replacement.chmod(0o755)
        replacement.rename(cli)
        info = await host_daemon.probe(d.host, d.port, d.token)
    assert [a.version for a in info.agents if a.name == "claude"] == ["2.0"]
    assert calls.read_text().splitlines() == ["--version", "--help"] * 2


async def test_concurrent_probes_share_one_version_run(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Probes arriving together run a slow ``--version`` once, not once each."""
    calls = tmp_path / "calls"
    cli = tmp_path / "slow-claude"
    cli.write_text(f'#!/bin/sh\necho "$1" >> {calls}\nsleep 2\necho 3.0\n')
    cli.chmod(0o755)
    versions: list[str | None] = []

    async def probe(d: RunningDaemon) -> None:
        info = await host_daemon.probe(d.host, d.port, d.token, timeout=DEADLINE)
        versions.extend(a.version for a in info.agents if a.name == "claude")

    async with (
        running_daemon(roots=[root], env={"CLAUDE_PATH": str(cli)}) as d,
        trio.open_nursery() as nursery,
    ):
        for _ in range(4):
            nursery.start_soon(probe, d)
    assert versions == ["3.0"] * 4
    assert calls.read_text().splitlines().count("--version") == 1


async def test_probe_names_a_hung_cli_before_the_servers_timeout(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """A ``--version`` that hangs is that agent's error, within the MCP server's 5 s probe."""
    env = {}
    for name in ("claude", "codex", "gemini"):
        cli = tmp_path / f"hung-{name}"
        cli.write_text("#!/bin/sh\nexec sleep 600\n")
        cli.chmod(0o755)
        env[f"{name.upper()}_PATH"] = str(cli)
    async with running_daemon(roots=[root], env=env) as d:
        info = await host_daemon.probe(d.host, d.port, d.token, timeout=5.0)
    errors = [agent.error or "" for agent in info.agents]
    assert len(errors) == 3
    assert all("did not answer within" in error for error in errors)


async def test_concurrent_probes_share_a_hung_clis_failure(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Probes waiting on the same hung ``--version`` all get its error within 5 s."""
    calls = tmp_path / "calls"
    cli = tmp_path / "hung-claude"
    cli.write_text(f"#!/bin/sh\necho x >> {calls}\nexec sleep 600\n")
    cli.chmod(0o755)
    errors: list[str | None] = []

    async def probe(d: RunningDaemon) -> None:
        info = await host_daemon.probe(d.host, d.port, d.token, timeout=5.0)
        errors.extend(a.error for a in info.agents if a.name == "claude")

    async with (
        running_daemon(roots=[root], env={"CLAUDE_PATH": str(cli)}) as d,
        trio.open_nursery() as nursery,
    ):
        for _ in range(3):
            nursery.start_soon(probe, d)
    assert len(errors) == 3
    assert all("did not answer within" in (error or "") for error in errors)
    assert calls.read_text().count("x") == 1


async def test_run_streams_started_events_and_finished(
    daemon: RunningDaemon, root: pathlib.Path
) -> None:
    """A run yields RunStarted, the agent's events (raw lines kept), then one RunFinished."""
    events = await collect(daemon, request("hello"))
    started, *middle, finished = events
    assert isinstance(started, RunStarted)
    assert started.cwd == str(root / "project")
    assert started.argv[-1] == "hello"
    assert all(isinstance(e, AgentEvent) for e in middle)
    kinds = [e.kind for e in middle if isinstance(e, AgentEvent)]
    assert kinds[0] == "init"
    assert "text" in kinds
    assert any(isinstance(e, AgentEvent) and '"type": "result"' in e.raw for e in middle)
    assert isinstance(finished, RunFinished)
    assert finished.outcome == "success"
    assert finished.final_text == "done"
    assert finished.exit_code == 0


async def test_stderr_lines_become_events(daemon: RunningDaemon) -> None:
    """What the CLI writes to stderr arrives as ``stderr`` events."""
    events = await collect(daemon, request("stderr"))
    stderr = [e for e in events if isinstance(e, AgentEvent) and e.kind == "stderr"]
    assert [e.text for e in stderr] == ["a warning on stderr"]


async def test_many_lines_arrive_complete_and_in_order(daemon: RunningDaemon) -> None:
    """Two thousand 1 KiB events all arrive, then the final event."""
    events = await collect(daemon, request("lines 2000"))
    texts = [e for e in events if isinstance(e, AgentEvent) and e.kind == "text"]
    assert len(texts) == 2000
    assert isinstance(events[-1], RunFinished)
    assert events[-1].outcome == "success"


async def test_wrong_token_refused(daemon: RunningDaemon) -> None:
    """A wrong token raises AuthenticationFailed carrying the daemon's refusal, not the client's."""
    with pytest.raises(AuthenticationFailed) as caught:
        await host_daemon.probe(daemon.host, daemon.port, "not-the-token")
    assert (caught.value.code, caught.value.message) == ("auth_failed", "authentication failed")


async def test_daemon_must_prove_the_token_too(daemon: RunningDaemon) -> None:
    """A daemon that cannot prove the token is refused by the client (mutual auth)."""
    async with (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0] as fake:
        port = fake.socket.getsockname()[1]

        async def impostor() -> None:
            stream = await fake.accept()
            async with stream:
                conn = FramedStream(
                    stream, host_daemon._protocol.CLIENT_TO_DAEMON, max_frame_bytes=1 << 16
                )
                await conn.send(Challenge(protocol_version=1, server_nonce="00"))
                await conn.receive()
                await conn.send(host_daemon._protocol.Welcome(proof="0" * 64))
                await conn.receive()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(impostor)
            with pytest.raises(AuthenticationFailed):
                await host_daemon.probe("127.0.0.1", port, daemon.token)


async def test_silent_client_dropped_after_the_deadline(root: pathlib.Path) -> None:
    """A client that never answers the challenge is disconnected after the handshake timeout."""
    async with running_daemon(roots=[root], handshake_timeout_s=0.3) as d:
        stream = await trio.open_tcp_stream(d.host, d.port)
        async with stream:
            conn = FramedStream(stream, DAEMON_TO_CLIENT, max_frame_bytes=1 << 16)
            assert isinstance(await conn.receive(), Challenge)
            with trio.fail_after(DEADLINE):
                assert await conn.receive() is None


async def test_malformed_frame_gets_error_then_daemon_serves_next(daemon: RunningDaemon) -> None:
    """A non-object frame gets an error frame and a closed connection; the next client is served."""
    conn = await raw_authenticated(daemon)
    async with conn.stream:
        await conn.stream.send_all(b"[1, 2]\n")
        error = await conn.receive()
        assert isinstance(error, ErrorFrame)
        assert error.code == "not_an_object"
        assert await conn.receive() is None
    info = await host_daemon.probe(daemon.host, daemon.port, daemon.token)
    assert isinstance(info, ProbeInfo)


async def test_garbage_instead_of_hello_gets_error(daemon: RunningDaemon) -> None:
    """Invalid UTF-8 in place of the hello is refused with an error frame."""
    stream = await trio.open_tcp_stream(daemon.host, daemon.port)
    async with stream:
        conn = FramedStream(stream, DAEMON_TO_CLIENT, max_frame_bytes=1 << 16)
        assert isinstance(await conn.receive(), Challenge)
        await stream.send_all(b"\xff\xfe\n")
        error = await conn.receive()
        assert isinstance(error, ErrorFrame)
        assert error.code == "invalid_utf8"


async def test_other_protocol_version_refused(daemon: RunningDaemon) -> None:
    """A hello with a protocol version the daemon does not speak gets ``unsupported_version``."""
    stream = await trio.open_tcp_stream(daemon.host, daemon.port)
    async with stream:
        conn = FramedStream(stream, DAEMON_TO_CLIENT, max_frame_bytes=1 << 16)
        challenge = await conn.receive()
        assert isinstance(challenge, Challenge)
        proof = compute_proof(daemon.token, "client", challenge.server_nonce, "n")
        await conn.send(Hello(protocol_version=99, client_nonce="n", proof=proof))
        error = await conn.receive()
    assert isinstance(error, ErrorFrame)
    assert error.code == "unsupported_version"
    assert "$.protocol_version" in error.message


async def test_oversized_request_refused(root: pathlib.Path, agent_env: dict[str, str]) -> None:
    """A request larger than the daemon's frame limit gets ``frame_too_large``."""
    async with running_daemon(roots=[root], env=agent_env, max_request_bytes=4096) as d:
        with pytest.raises(host_daemon.ProtocolError) as caught:
            await collect(d, request("x" * 10_000))
        assert caught.value.code == "frame_too_large"


async def test_wrong_field_type_names_the_field(daemon: RunningDaemon) -> None:
    """A run frame with a string ``max_turns`` is refused naming ``$.max_turns``."""
    conn = await raw_authenticated(daemon)
    async with conn.stream:
        frame = (
            b'{"type":"run","agent":"claude","prompt":"hello","cwd":"project","max_turns":"3"}\n'
        )
        await conn.stream.send_all(frame)
        error = await conn.receive()
    assert error == ErrorFrame(
        code="invalid_request", message="expected int, got str @ $.max_turns"
    )


@pytest.mark.parametrize(
    ("cwd", "code"),
    [("..", "path_outside_root"), ("/etc", "path_outside_root"), ("missing", "path_not_found")],
)
async def test_cwd_outside_roots_refused(daemon: RunningDaemon, cwd: str, code: str) -> None:
    """A working directory outside the roots (or missing) is refused before anything runs."""
    with pytest.raises(RequestRejected) as caught:
        await collect(daemon, RunRequest(agent="claude", prompt="hello", cwd=cwd))
    assert caught.value.code == code
    assert "$.cwd" in caught.value.message


async def test_symlink_out_of_root_refused(daemon: RunningDaemon, root: pathlib.Path) -> None:
    """A symlink inside a root that points out of it is refused."""
    (root / "escape").symlink_to(root.parent)
    with pytest.raises(RequestRejected) as caught:
        await collect(daemon, RunRequest(agent="claude", prompt="hello", cwd="escape"))
    assert caught.value.code == "path_outside_root"


async def test_agent_not_found_refused(daemon: RunningDaemon) -> None:
    """An agent whose CLI is not installed is refused with ``agent_not_found``."""
    with pytest.raises(RequestRejected) as caught:
        await collect(daemon, RunRequest(agent="codex", prompt="hello", cwd="project"))
    assert caught.value.code == "agent_not_found"


async def test_agent_that_cannot_start_refused_and_daemon_serves_on(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """An agent whose exec fails (bad interpreter) gets ``spawn_failed``; the daemon lives on."""
    broken = tmp_path / "broken-claude"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    async with running_daemon(roots=[root], env={"CLAUDE_PATH": str(broken)}) as d:
        with pytest.raises(RequestRejected) as caught:
            await collect(d, request("hello"))
        assert caught.value.code == "spawn_failed"
        info = await host_daemon.probe(d.host, d.port, d.token)
        assert info.active_runs == 0


async def test_permission_mode_beyond_the_default_refused(daemon: RunningDaemon) -> None:
    """A permission mode the daemon was not told to allow is refused."""
    with pytest.raises(RequestRejected) as caught:
        await collect(daemon, request("hello", permission_mode="plan"))
    assert caught.value.code == "permission_mode_not_allowed"


async def test_allowed_permission_mode_reaches_the_cli(
    root: pathlib.Path, agent_env: dict[str, str]
) -> None:
    """A mode allowed by the configuration is passed to the CLI."""
    async with running_daemon(
        roots=[root], env=agent_env, extra_permission_modes=(("claude", "plan"),)
    ) as d:
        events = await collect(d, request("hello", permission_mode="plan"))
    started = events[0]
    assert isinstance(started, RunStarted)
    assert "--permission-mode=plan" in started.argv
    assert isinstance(events[-1], RunFinished)


async def test_default_permission_mode_is_the_adapters(daemon: RunningDaemon) -> None:
    """Without a mode in the request the adapter's safe default is used."""
    started = (await collect(daemon, request("hello")))[0]
    assert isinstance(started, RunStarted)
    assert "--permission-mode=acceptEdits" in started.argv


async def test_empty_prompt_refused(daemon: RunningDaemon) -> None:
    """An empty prompt is an invalid request."""
    with pytest.raises(RequestRejected) as caught:
        await collect(daemon, request("  "))
    assert caught.value.code == "invalid_request"


async def test_busy_beyond_the_limit(root: pathlib.Path, agent_env: dict[str, str]) -> None:
    """With max_runs=1, a second run while one is in flight gets DaemonBusy."""
    async with running_daemon(roots=[root], env=agent_env, max_runs=1) as d:
        async with open_run(d.host, d.port, d.token, request("hang")) as first:
            assert isinstance(await first.__anext__(), RunStarted)
            with pytest.raises(DaemonBusy):
                await collect(d, request("hello"))
        with trio.fail_after(DEADLINE):
            while True:
                info = await host_daemon.probe(d.host, d.port, d.token)
                if info.active_runs == 0:
                    break
                await trio.sleep(0.05)
        assert isinstance((await collect(d, request("hello")))[-1], RunFinished)


async def hang_pids(stream: host_daemon.RunStream) -> tuple[int, int]:
    async for event in stream:
        if isinstance(event, AgentEvent) and event.text and event.text.startswith("pids "):
            leader, child = event.text.split()[1:]
            return int(leader), int(child)
    raise AssertionError("the stand-in never reported its pids")


async def test_authenticated_connections_beyond_the_limit_refused_busy(root: pathlib.Path) -> None:
    """Authenticated clients fill ``max_connections``; the next gets busy; a freed slot works."""
    async with running_daemon(roots=[root], max_connections=2, handshake_timeout_s=DEADLINE) as d:
        idle = [await raw_authenticated(d) for _ in range(2)]
        with pytest.raises(DaemonBusy):
            await host_daemon.probe(d.host, d.port, d.token)
        await idle.pop().stream.aclose()
        with trio.fail_after(DEADLINE):
            while True:  # the daemon frees the slot once it has read the EOF
                try:
                    await host_daemon.probe(d.host, d.port, d.token)
                    break
                except DaemonBusy:
                    await trio.sleep(0.05)
        await idle.pop().stream.aclose()


async def _read_to_eof(stream: trio.SocketStream, closed: list[trio.SocketStream]) -> None:
    """Read ``stream`` until the daemon closes it, then record it in ``closed``."""
    with contextlib.suppress(trio.BrokenResourceError):
        while await stream.receive_some(4096):
            pass
    closed.append(stream)


@contextlib.asynccontextmanager
async def silent_clients(d: RunningDaemon, count: int) -> AsyncIterator[list[trio.SocketStream]]:
    """``count`` connections that never send a byte, all closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(await trio.open_tcp_stream(d.host, d.port))
            for _ in range(count)
        ]
        yield streams


async def test_unauthenticated_flood_does_not_starve_authenticated_clients(
    root: pathlib.Path,
) -> None:
    """Silent clients beyond every limit are pushed out; an authenticated one is served at once."""
    config = host_daemon.DaemonConfig(token="x", roots=(str(root),))
    flood = config.max_connections + 16
    async with (
        running_daemon(roots=[root], handshake_timeout_s=DEADLINE) as d,
        silent_clients(d, flood) as silent,
    ):
        closed: list[trio.SocketStream] = []
        async with trio.open_nursery() as nursery:
            for stream in silent:
                nursery.start_soon(_read_to_eof, stream, closed)
            # Bounded by the silent clients' deadline (DEADLINE), not by the budget: fail first.
            with trio.fail_after(DEADLINE / 2):
                info = await host_daemon.probe(d.host, d.port, d.token)
            assert isinstance(info, ProbeInfo)
            await eventually(
                lambda: len(closed) >= flood - config.max_unauthenticated,
                "the silent clients beyond the unauthenticated budget to be closed",
                lambda: f"{len(closed)} of {flood} closed",
                timeout=DEADLINE / 2,
            )
            nursery.cancel_scope.cancel()


async def test_unauthenticated_flood_logs_once_not_per_client(
    root: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood past the unauthenticated budget logs its start and its count, not every client."""
    config = host_daemon.DaemonConfig(token="x", roots=(str(root),))
    flood = config.max_unauthenticated * 4
    caplog.set_level(logging.WARNING, logger="host_daemon")
    async with running_daemon(roots=[root], handshake_timeout_s=DEADLINE) as d:
        async with silent_clients(d, flood):
            await eventually(
                lambda: (
                    "too many unauthenticated connections, dropping the oldest" in caplog.messages
                ),
                "the daemon to start dropping the oldest handshakes",
                timeout=DEADLINE / 2,
            )
        await eventually(
            lambda: "unauthenticated connections dropped" in caplog.messages,
            "the flood's summary once every handshake has ended",
            timeout=DEADLINE,
        )
    assert caplog.messages.count("too many unauthenticated connections, dropping the oldest") == 1
    [summary] = [
        r for r in caplog.records if r.getMessage() == "unauthenticated connections dropped"
    ]
    assert summary.fields == {"count": flood - config.max_unauthenticated}  # type: ignore[attr-defined]


async def test_idle_unauthenticated_client_closed_within_a_few_seconds(
    root: pathlib.Path,
) -> None:
    """With the default deadline a silent client is dropped well before the former 10 s."""
    async with running_daemon(roots=[root]) as d:
        stream = await trio.open_tcp_stream(d.host, d.port)
        async with stream:
            conn = FramedStream(stream, DAEMON_TO_CLIENT, max_frame_bytes=1 << 16)
            assert isinstance(await conn.receive(), Challenge)
            # An upper bound only: the deadline is 3 s, a loaded machine adds its own delay.
            with trio.fail_after(9.0):
                assert await conn.receive() is None


async def test_leaving_the_run_early_kills_the_group(daemon: RunningDaemon) -> None:
    """Closing the connection mid-run kills the agent and its grandchild (checked in /proc)."""
    async with open_run(daemon.host, daemon.port, daemon.token, request("hang")) as stream:
        leader, child = await hang_pids(stream)
        assert not gone(leader)
        assert not gone(child)
    await wait_gone(leader, child)


async def test_cancelling_the_caller_kills_the_group(daemon: RunningDaemon) -> None:
    """A cancelled caller scope closes the run, and the daemon kills the whole group."""
    pids: list[int] = []
    with trio.CancelScope() as scope:
        async with open_run(daemon.host, daemon.port, daemon.token, request("hang")) as stream:
            pids.extend(await hang_pids(stream))
            scope.cancel()
            await trio.sleep_forever()
    await wait_gone(*pids)


async def test_timeout_reports_timed_out(daemon: RunningDaemon) -> None:
    """A run that outlives its timeout ends with ``timed_out`` and leaves nothing behind."""
    async with open_run(
        daemon.host, daemon.port, daemon.token, request("hang", timeout_s=1.0)
    ) as stream:
        leader, child = await hang_pids(stream)
        rest = [event async for event in stream]
    finished = rest[-1]
    assert isinstance(finished, RunFinished)
    assert finished.outcome == "timed_out"
    await wait_gone(leader, child)


async def test_exit_without_result_is_an_error(daemon: RunningDaemon) -> None:
    """An agent that exits 7 before its result is reported as an error with its code."""
    finished = (await collect(daemon, request("exit 7")))[-1]
    assert isinstance(finished, RunFinished)
    assert finished.outcome == "error"
    assert finished.exit_code == 7


async def test_unreachable_daemon_is_unavailable() -> None:
    """Connecting to a port nobody listens on raises DaemonUnavailable."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    with pytest.raises(DaemonUnavailable):
        await host_daemon.probe("127.0.0.1", port, "token", timeout=DEADLINE)


async def test_graceful_shutdown_lets_a_run_finish(
    root: pathlib.Path, agent_env: dict[str, str]
) -> None:
    """Setting ``shutdown`` stops accepting but lets a run in flight complete within grace."""
    async with running_daemon(roots=[root], env=agent_env, grace_s=DEADLINE) as d:
        async with open_run(d.host, d.port, d.token, request("sleep 1")) as stream:
            assert isinstance(await stream.__anext__(), RunStarted)
            d.shutdown.set()
            events = [event async for event in stream]
        assert isinstance(events[-1], RunFinished)
        assert events[-1].outcome == "success"
        with pytest.raises(DaemonUnavailable):
            await host_daemon.probe(d.host, d.port, d.token)


async def test_shutdown_after_grace_kills_runs(
    root: pathlib.Path, agent_env: dict[str, str]
) -> None:
    """A run still going when the grace period ends is killed and reported as ``killed``."""
    async with running_daemon(roots=[root], env=agent_env, grace_s=0.5) as d:
        async with open_run(d.host, d.port, d.token, request("hang")) as stream:
            leader, child = await hang_pids(stream)
            d.shutdown.set()
            events = [event async for event in stream]
        finished = events[-1]
        assert isinstance(finished, RunFinished)
        assert finished.outcome == "killed"
        await wait_gone(leader, child)


def written_bytes(pid: int) -> int:
    io = pathlib.Path(f"/proc/{pid}/io").read_text()
    return next(int(line.split()[1]) for line in io.splitlines() if line.startswith("wchar:"))


async def test_slow_client_blocks_the_agent(daemon: RunningDaemon) -> None:
    """A client that stops reading stops the agent: its writes stall at a bounded total."""
    async with open_run(daemon.host, daemon.port, daemon.token, request("flood")) as stream:
        started = await stream.__anext__()
        assert isinstance(started, RunStarted)
        await stream.__anext__()
        previous = -1
        with trio.fail_after(DEADLINE):
            while (current := written_bytes(started.pid)) != previous:
                previous = current
                await trio.sleep(0.5)
        # Pipe, the runner's 1 MiB buffer and the loopback socket buffers: far below 64 MiB.
        assert current < 64 * 1024 * 1024
        events = 0
        async for _ in stream:
            events += 1
            if events == 1000:
                break
        assert written_bytes(started.pid) > current


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_no_fd_leaks_across_many_operations(daemon: RunningDaemon) -> None:
    """Runs, early exits, refusals and probes return every descriptor (``/proc/self/fd``)."""
    await collect(daemon, request("hello"))
    await host_daemon.probe(daemon.host, daemon.port, daemon.token)
    baseline = open_fds()
    for _ in range(15):
        await collect(daemon, request("hello"))
        with pytest.raises(RequestRejected):
            await collect(daemon, RunRequest(agent="claude", prompt="hello", cwd="/"))
        await host_daemon.probe(daemon.host, daemon.port, daemon.token)
    for _ in range(2):
        async with open_run(daemon.host, daemon.port, daemon.token, request("hang")) as stream:
            pids = await hang_pids(stream)
        await wait_gone(*pids)
    with trio.fail_after(DEADLINE):
        # The daemon's handlers close their side just after the client's: wait for them.
        while open_fds() > baseline:  # noqa: ASYNC110
            await trio.sleep(0.05)


# A claude stand-in that succeeds and exits, leaving a background shell in its group that
# ignores SIGTERM (it notes the signal in the file named by its prompt) until SIGKILL.
_LINGERING_CLI = """\
import json, subprocess, sys
note = sys.argv[-1]
for event in (
    {"type": "system", "subtype": "init", "session_id": "s1"},
    {"type": "result", "subtype": "success", "is_error": False, "result": "done",
     "session_id": "s1", "num_turns": 1},
):
    print(json.dumps(event), flush=True)
subprocess.Popen(
    ["sh", "-c", f"trap 'echo term >> {note}' TERM; while :; do sleep 0.1; done"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
"""


async def test_shutdown_while_stragglers_die_keeps_a_finished_runs_outcome(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """A run whose agent already exited is reported as it ended, not ``killed``, at shutdown."""
    cli = tmp_path / "lingering-claude"
    cli.write_text(f"#!{sys.executable}\n{_LINGERING_CLI}")
    cli.chmod(0o755)
    note = tmp_path / "term-note"
    req = RunRequest(agent="claude", prompt=str(note), cwd="project")
    env = {"CLAUDE_PATH": str(cli)}
    async with (
        running_daemon(roots=[root], env=env, grace_s=0.0, kill_grace_s=1.0) as d,
        open_run(d.host, d.port, d.token, req) as stream,
    ):
        with trio.fail_after(DEADLINE):
            # The leader exited and the daemon is terminating its group: poll for the note.
            while not await trio.Path(note).exists():  # noqa: ASYNC110
                await trio.sleep(0.05)
        d.shutdown.set()
        events = [event async for event in stream]
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    assert (finished.outcome, finished.exit_code) == ("success", 0)
