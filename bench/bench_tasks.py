"""Benchmark: many coding tasks at once through the real daemon and server processes.

    .venv/bin/python bench/bench_tasks.py [--tasks 50] [--events 10000]

Starts ``python -m host_daemon`` and ``python -m mcp_server serve`` on loopback (separate
processes, so the server's peak RSS is its own), with a stand-in ``claude`` that prints
``--events`` assistant texts per run. Creates ``--tasks`` tasks at once over MCP, waits for all
of them with ``wait_task``, then checks that every task ended ``waiting`` and that every event
log on disk holds seq 1..N without a gap. Prints events per second and the server's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
import trio

STAND_IN = pathlib.Path(__file__).parents[1] / "tests" / "e2e" / "stand_in_claude.py"
VERSION = "2025-11-25"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def peak_rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Mcp:
    """Just enough of an MCP client: initialize, then tools/call with JSON or SSE answers."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self.http = http
        self.url = url
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
        }
        self.next_id = 0

    async def initialize(self) -> None:
        answer = await self.http.post(
            self.url,
            headers=self.headers,
            json={
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"},
                },
            },
        )
        answer.raise_for_status()
        self.headers |= {
            "Mcp-Session-Id": answer.headers["mcp-session-id"],
            "MCP-Protocol-Version": VERSION,
        }
        await self.http.post(
            self.url,
            headers=self.headers,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )

    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        self.next_id += 1
        rid = self.next_id
        body = {
            "jsonrpc": "2.0",
            "id": rid,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }
        answer = await self.http.post(self.url, headers=self.headers, json=body)
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            messages = [
                json.loads(line[5:])
                for line in answer.text.splitlines()
                if line.startswith("data:") and line[5:].strip()
            ]
        else:
            messages = [answer.json()]
        [message] = [m for m in messages if m.get("id") == rid]
        result: dict[str, Any] = message["result"]
        if result.get("isError"):
            raise RuntimeError(f"{name} failed: {result['content'][0]['text']}")
        value: dict[str, Any] = result["structuredContent"]["result"]
        return value


async def wait_url(url: str, deadline_s: float = 60) -> None:
    async with httpx.AsyncClient() as http:
        with trio.fail_after(deadline_s):
            while True:
                try:
                    await http.get(url)
                except httpx.TransportError:
                    await trio.sleep(0.1)
                else:
                    return


def check_logs(tasks_dir: pathlib.Path, task_ids: list[str]) -> int:
    """Every log holds seq 1..N in order; returns the total number of events."""
    total = 0
    for task_id in task_ids:
        with (tasks_dir / f"{task_id}.events.ndjson").open("rb") as log:
            for expected, line in enumerate(log, start=1):
                seq = json.loads(line)["seq"]
                assert seq == expected, f"task {task_id}: seq {seq} where {expected} belongs"
                total += 1
    return total


async def bench(tasks: int, events: int, work: pathlib.Path) -> dict[str, Any]:
    root = work / "root"
    root.mkdir()
    agent = work / "claude"
    agent.write_text(f"#!{sys.executable}\n{STAND_IN.read_text()}")
    agent.chmod(0o755)
    token_file = work / "daemon.token"
    daemon_port, mcp_port = free_port(), free_port()
    env = dict(os.environ, CLAUDE_PATH=str(agent))
    env.pop("DAEMON_TOKEN", None)
    mcp_token = secrets.token_urlsafe(16)
    daemon = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "host_daemon",
            "--listen",
            f"127.0.0.1:{daemon_port}",
            "--root",
            str(root),
            "--token-file",
            str(token_file),
            # Its own state dir: the default one is locked by any daemon already running here.
            "--state-dir",
            str(token_file.parent / "daemon-state"),
            "--max-runs",
            str(tasks),
            "--log-level",
            "error",
        ],
        env=env,
    )
    server_env = dict(
        env,
        CLAUDE_PROXY_HOST="127.0.0.1",
        CLAUDE_PROXY_PORT=str(daemon_port),
        DAEMON_TOKEN_FILE=str(token_file),
        STATE_PATH=str(work / "state"),
        PROJECTS_PATH=str(root),
        MCP_AUTH_TOKEN=mcp_token,
        PORT=str(mcp_port),
    )
    try:
        await wait_until_listening(daemon_port)
        server = await trio.lowlevel.open_process(
            [sys.executable, "-m", "mcp_server", "serve"],
            env=server_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{mcp_port}"
            await wait_url(base + "/healthz")
            async with httpx.AsyncClient(timeout=120) as http:
                client = Mcp(http, base + "/mcp", mcp_token)
                await client.initialize()
                ids: list[str] = []
                started = time.perf_counter()

                async def create(n: int) -> None:
                    task = await client.call(
                        "create_task", title=f"bench {n}", instructions=f"lines {events}"
                    )
                    ids.append(task["task_id"])

                async with trio.open_nursery() as nursery:
                    for n in range(tasks):
                        nursery.start_soon(create, n)
                statuses: dict[str, str] = {}

                async def wait(task_id: str) -> None:
                    while True:
                        task = await client.call("wait_task", id=task_id, timeout_s=50)
                        if task["status"] != "in_progress":
                            statuses[task_id] = task["status"]
                            return

                async with trio.open_nursery() as nursery:
                    for task_id in ids:
                        nursery.start_soon(wait, task_id)
                elapsed = time.perf_counter() - started
            rss = peak_rss_mib(server.pid)
        finally:
            await stop(server)
    finally:
        await stop(daemon)
    assert all(s == "waiting" for s in statuses.values()), statuses
    total = check_logs(work / "state" / "tasks", ids)
    return {
        "tasks": tasks,
        "events": total,
        "seconds": elapsed,
        "events_per_s": total / elapsed,
        "peak_rss_mib": rss,
    }


async def stop(process: trio.Process) -> None:
    """SIGTERM, then SIGKILL after a minute."""
    with trio.CancelScope(shield=True):
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(60):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_until_listening(port: int, deadline_s: float = 60) -> None:
    with trio.fail_after(deadline_s):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.1)
            else:
                await stream.aclose()
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tasks-") as work:
        row = trio.run(bench, args.tasks, args.events, pathlib.Path(work))
    print("| tasks | events (all contiguous) | seconds | events/s | server peak RSS |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {row['tasks']} | {row['events']} | {row['seconds']:.1f} | "
        f"{row['events_per_s']:.0f} | {row['peak_rss_mib']:.0f} MiB |"
    )


if __name__ == "__main__":
    main()
