"""Benchmark approvals: from an agent's permission request to the decision reaching the agent.

    .venv/bin/python bench/bench_approvals.py [--requests 100] [--turns 2] [--idle-sessions 7]

The time is taken where it is real, in the agent: a stand-in live ``claude``
(``bench/stand_in_live_claude.py``, speaking Claude Code's stream-json control protocol) writes
a ``can_use_tool`` control request, one after another, and measures with its own monotonic clock
until it reads the ``control_response``. The daemon (``python -m host_daemon``) and the MCP
server (``python -m mcp_server serve``) run as processes on loopback, as in production; every
request goes to the client (no policy rule matches). Three deciders, side by side in one run,
their turns interleaved so that load changes hit all three alike:

1. ``approve`` tool: an MCP client without elicitation (the official ``mcp`` SDK, legacy era)
   calls ``wait_task``, which returns ``input_required`` with the pending requests, answers each
   with ``approve``, and calls ``wait_task`` again.
2. elicitation: an MCP client of the legacy era declaring the elicitation capability (the same
   SDK) keeps one ``wait_task`` in flight; the server asks with ``elicitation/create`` and the
   client accepts ``allow`` at once.
3. the reference, without MCP: the daemon's own client (``RunStream.decide``) answering the
   ``PermissionRequest`` frame on the turn's connection.

``--requests`` requests per decider (median and p99 over them) are split over ``--turns``
turns of one live session per decider (the MCP tasks' later turns are ``update_task``
follow-ups into the same live agent); a warm-up turn per decider comes first and is not
counted. The first request of each turn also includes the client's start of the turn (a new
``wait_task`` after ``create_task``/``update_task``; the direct client is reading already), so
the table also shows the median without those.

Then ``--idle-sessions`` live sessions are opened and left idle, and the daemon's resident set
(``VmRSS``) is read before and after: the daemon's extra memory per idle live session (the
agent's own process is not counted: a real Claude Code idles at about 190 MiB of its own).
Absolute times depend on the machine and its load: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import ElicitResult, TextContent

from host_daemon import (
    DaemonUnavailable,
    PermissionDecision,
    PermissionRequest,
    RunFinished,
    RunRequest,
    close_session,
    open_run,
    probe,
)

STAND_IN = pathlib.Path(__file__).with_name("stand_in_live_claude.py")
HOST = "127.0.0.1"
#: Requests in each decider's warm-up turn (not counted).
WARM_UP_REQUESTS = 5
#: The daemon's default ``--max-live-sessions``.
DAEMON_MAX_LIVE_SESSIONS = 8
#: Upper bound for one turn, however loaded the machine: a bound, never a pace.
TURN_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def vm_rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


async def stop(process: trio.Process) -> None:
    """SIGTERM, then SIGKILL after a minute."""
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with trio.move_on_after(60):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_until_listening(port: int) -> None:
    with trio.fail_after(60):
        while True:
            try:
                stream = await trio.open_tcp_stream(HOST, port)
            except OSError:
                await trio.sleep(0.05)
            else:
                await stream.aclose()
                return


class Services:
    """The daemon and the MCP server as processes on loopback, the agent being the stand-in."""

    def __init__(self, work: pathlib.Path) -> None:
        self.work = work
        self.root = work / "root"
        self.root.mkdir()
        agent = work / "claude"
        agent.write_text(f"#!{sys.executable}\n{STAND_IN.read_text()}")
        agent.chmod(0o755)
        self.daemon_token = secrets.token_urlsafe(32)
        self.mcp_token = secrets.token_urlsafe(32)
        self.daemon_port, self.mcp_port = free_port(), free_port()
        self.env = dict(os.environ, CLAUDE_PATH=str(agent))
        self.env.pop("DAEMON_TOKEN", None)  # it would win over the token file both read
        self.daemon: trio.Process | None = None
        self.server: trio.Process | None = None

    @property
    def mcp_url(self) -> str:
        return f"http://{HOST}:{self.mcp_port}/mcp"

    async def start(self, live_sessions: int) -> None:
        """Start both; the daemon may hold ``live_sessions`` at once (default limit: 8)."""
        token_file = self.work / "daemon.token"
        token_file.write_text(self.daemon_token)
        token_file.chmod(0o600)
        self.daemon = await trio.lowlevel.open_process(
            [
                *(sys.executable, "-m", "host_daemon", "--listen", f"{HOST}:{self.daemon_port}"),
                *("--root", str(self.root), "--state-dir", str(self.work / "daemon-state")),
                *("--token-file", str(token_file), "--log-level", "error"),
                *(
                    ("--max-live-sessions", str(live_sessions))
                    if live_sessions > DAEMON_MAX_LIVE_SESSIONS
                    else ()
                ),
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
        )
        with trio.fail_after(60):
            while True:
                try:
                    info = await probe(HOST, self.daemon_port, self.daemon_token, timeout=2)
                except DaemonUnavailable:
                    await trio.sleep(0.05)
                else:
                    break
        [claude] = [agent for agent in info.agents if agent.name == "claude"]
        if not claude.live:
            raise RuntimeError(f"the daemon does not run the stand-in live: {claude.live_note}")
        self.server = await trio.lowlevel.open_process(
            [sys.executable, "-m", "mcp_server", "serve"],
            env=self.env
            | {
                "CLAUDE_PROXY_HOST": HOST,
                "CLAUDE_PROXY_PORT": str(self.daemon_port),
                "DAEMON_TOKEN_FILE": str(token_file),
                "STATE_PATH": str(self.work / "server-state"),
                "PROJECTS_PATH": str(self.root),
                "MCP_AUTH_TOKEN": self.mcp_token,
                "PORT": str(self.mcp_port),
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await wait_until_listening(self.mcp_port)

    async def stop(self) -> None:
        for process in (self.server, self.daemon):
            if process is not None:
                await stop(process)


@asynccontextmanager
async def mcp_client(services: Services, *, elicit: bool) -> AsyncIterator[Client]:
    """The official SDK client of the legacy era; declares elicitation (answering allow at once)
    when ``elicit``."""

    async def allow(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"decision": "allow"})

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {services.mcp_token}"})
    transport = streamable_http_client(services.mcp_url, http_client=http)
    async with (
        http,
        Client(transport, mode="legacy", elicitation_callback=allow if elicit else None) as client,
    ):
        yield client


async def call(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    """A tool call that must succeed; its ``result``."""
    answer = await client.call_tool(name, arguments)
    text = " ".join(b.text for b in answer.content if isinstance(b, TextContent))
    if answer.is_error or answer.structured_content is None:
        raise RuntimeError(f"{name} failed: {text}")
    result: dict[str, Any] = answer.structured_content["result"]
    return result


class McpDecider:
    """One task, one live session: its turns are create_task, then update_task follow-ups."""

    def __init__(self, client: Client, name: str, *, eliciting: bool) -> None:
        self.client = client
        self.name = name
        self.eliciting = eliciting
        self.task_id: str | None = None

    async def turn(self, prompt: str) -> None:
        if self.task_id is None:
            task = await call(
                self.client,
                "create_task",
                title=f"bench approvals: {self.name}",
                instructions=prompt,
                isolation="none",
                live=True,
            )
            self.task_id = task["task_id"]
        else:
            await call(self.client, "update_task", id=self.task_id, instructions=prompt)
        approved: set[str] = set()
        while True:
            task = await call(self.client, "wait_task", id=self.task_id, timeout_s=50)
            status = task["status"]
            if status == "input_required" and self.eliciting:
                raise RuntimeError(f"{self.name}: wait_task returned undecided requests: {task}")
            if status == "input_required":
                for request in task["pending_approvals"]:
                    if request["request_id"] not in approved:
                        approved.add(request["request_id"])
                        await call(
                            self.client,
                            "approve",
                            id=self.task_id,
                            request_id=request["request_id"],
                            decision="allow",
                        )
            elif status != "in_progress":
                if status != "waiting":
                    raise RuntimeError(f"{self.name}: the turn ended {status}: {task}")
                return

    async def close(self) -> None:
        """End the task, and so its live session."""
        if self.task_id is not None:
            await call(self.client, "end_task", id=self.task_id)


class DirectDecider:
    """The daemon's own client: ``RunStream.decide`` on the turn's connection, no MCP."""

    name = "RunStream.decide (no MCP)"
    key = "bench-approvals-direct"

    def __init__(self, services: Services) -> None:
        self.services = services

    async def close(self) -> None:
        services = self.services
        await close_session(HOST, services.daemon_port, services.daemon_token, self.key)

    async def turn(self, prompt: str) -> None:
        request = RunRequest(
            agent="claude",
            prompt=prompt,
            cwd=str(self.services.root),
            live=True,
            session_key=self.key,
        )
        port, token = self.services.daemon_port, self.services.daemon_token
        async with open_run(HOST, port, token, request) as stream:
            async for event in stream:
                if isinstance(event, PermissionRequest):
                    await stream.decide(
                        PermissionDecision(
                            request_id=event.request_id, behavior="allow", decider="bench"
                        )
                    )
                elif isinstance(event, RunFinished) and event.outcome != "success":
                    raise RuntimeError(f"the direct turn ended {event.outcome}: {event.error}")


def read_samples(path: pathlib.Path) -> list[list[float]]:
    """Per turn, the round trips the stand-in measured (seconds)."""
    turns = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["denied"]:
            raise RuntimeError(f"{record['denied']} requests were denied in {path.name}")
        turns.append([ns / 1e9 for ns in record["samples_ns"]])
    return turns


async def bench_latency(services: Services, requests: int, turns: int) -> list[str]:
    async with (
        mcp_client(services, elicit=False) as plain,
        mcp_client(services, elicit=True) as eliciting,
    ):
        approving = McpDecider(plain, "approve", eliciting=False)
        elicited = McpDecider(eliciting, "elicit", eliciting=True)
        direct = DirectDecider(services)
        deciders: list[tuple[str, McpDecider | DirectDecider]] = [
            ("approve tool (wait_task + approve)", approving),
            ("elicitation (wait_task in flight)", elicited),
            (direct.name, direct),
        ]
        files = [services.work / f"samples-{n}.ndjson" for n in range(len(deciders))]
        warm_up = services.work / "warm-up.ndjson"
        for _, decider in deciders:
            with trio.fail_after(TURN_TIMEOUT_S):
                await decider.turn(f"approvals {WARM_UP_REQUESTS} {warm_up}")
        per_turn = [requests // turns + (n < requests % turns) for n in range(turns)]
        for count in per_turn:
            for (_, decider), path in zip(deciders, files, strict=True):
                with trio.fail_after(TURN_TIMEOUT_S):
                    await decider.turn(f"approvals {count} {path}")
        for _, decider in deciders:
            await decider.close()
    results = [(name, read_samples(path)) for (name, _), path in zip(deciders, files, strict=True)]
    _, reference = results[-1]
    ref_all = [s for t in reference for s in t]
    lines = [
        f"Permission request to decision in the agent, {requests} requests per decider in "
        f"{turns} turns (ms)",
        "",
        "| decider | median | p99 | median without each turn's first | ratio to reference "
        "(median, p99) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, samples in results:
        every = [s for t in samples for s in t]
        rest = [s for t in samples for s in t[1:]] or every
        assert len(every) == requests, (name, len(every))
        median, p99 = statistics.median(every), percentile(every, 0.99)
        lines.append(
            f"| {name} | {median * 1e3:.2f} | {p99 * 1e3:.2f} | "
            f"{statistics.median(rest) * 1e3:.2f} | "
            f"{median / statistics.median(ref_all):.1f}x, {p99 / percentile(ref_all, 0.99):.1f}x |"
        )
    return lines


async def bench_idle_memory(services: Services, sessions: int) -> list[str]:
    """The daemon's resident set before and after ``sessions`` idle live sessions."""
    assert services.daemon is not None
    pid = services.daemon.pid
    port, token = services.daemon_port, services.daemon_token

    async def open_session(key: str) -> None:
        request = RunRequest(
            agent="claude", prompt="hello", cwd=str(services.root), live=True, session_key=key
        )
        async with open_run(HOST, port, token, request) as stream:
            async for event in stream:
                if isinstance(event, RunFinished) and not event.session_open:
                    raise RuntimeError(f"session {key} did not stay open: {event}")

    await open_session("bench-idle-warm-up")  # the live code paths are loaded and run once
    before = vm_rss_kib(pid)
    for n in range(sessions):
        await open_session(f"bench-idle-{n}")
    info = await probe(HOST, port, token)
    after = vm_rss_kib(pid)
    if info.live_sessions != sessions + 1:
        raise RuntimeError(f"expected {sessions + 1} live sessions open, got {info.live_sessions}")
    return [
        f"Idle live sessions: {info.live_sessions} open; the daemon's VmRSS "
        f"{before / 1024:.1f} MiB with 1, {after / 1024:.1f} MiB with {sessions + 1}: "
        f"{(after - before) / sessions:.0f} KiB per idle session",
    ]


async def main(requests: int, turns: int, idle_sessions: int, work: pathlib.Path) -> None:
    services = Services(work)
    try:
        # The deciders' three sessions are closed before the idle ones and their warm-up open.
        await services.start(live_sessions=max(3, idle_sessions + 1))
        started = time.perf_counter()
        lines = await bench_latency(services, requests, turns)
        if idle_sessions:
            lines += ["", *await bench_idle_memory(services, idle_sessions)]
        lines.append(f"\n({time.perf_counter() - started:.0f} s)")
    finally:
        await services.stop()
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="per decider (default 100)")
    parser.add_argument("--turns", type=int, default=2, help="turns per decider (default 2)")
    parser.add_argument(
        "--idle-sessions",
        type=int,
        default=DAEMON_MAX_LIVE_SESSIONS - 1,
        help=f"idle live sessions to open (default {DAEMON_MAX_LIVE_SESSIONS - 1}; more than "
        "that starts the daemon with a higher --max-live-sessions)",
    )
    args = parser.parse_args()
    if not 1 <= args.turns <= args.requests:
        parser.error(f"expected 1 <= --turns <= --requests, got {args.turns}")
    with tempfile.TemporaryDirectory(prefix="bench-approvals-") as tmp:
        trio.run(main, args.requests, args.turns, args.idle_sessions, pathlib.Path(tmp))
