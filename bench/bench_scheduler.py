"""Benchmark: the queue's overhead, through the real daemon and server processes.

    .venv/bin/python bench/bench_scheduler.py [--rounds 20] [--queued 1000]

Starts ``python -m host_daemon --max-runs 1`` and ``python -m mcp_server serve`` on loopback with
the task stand-in ``claude``. Two measurements, each side by side with a reference in the run:

- Slot free -> next start. A task holds the only slot (``waitfile``); a second one, of another
  project, is queued behind it. The file is written: the time from the first run's
  ``run_finished`` event to the queued task's ``run_started`` event (both stamped by the server).
  Reference: the same, but no task is queued; the client waits (``wait_task`` in flight) and
  calls ``create_task`` the moment it returns: the time from ``run_finished`` to that task's
  ``run_started``.
- ``--queued`` tasks queued behind one slot: the server's resident set before and after, and
  the median time of ``check_status`` (which plans the queue and lists its head) with them
  queued; reference: the same tasks after ``end_task`` dequeued them (the same records, no
  queue).
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
import orjson
import trio
from bench_tasks import STAND_IN, Mcp, free_port, stop, wait_until_listening, wait_url


def rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def event_time(state: pathlib.Path, task_id: str, kind: str) -> float:
    """The server's time stamp of the task's first event of ``kind`` (POSIX seconds)."""
    path = state / "tasks" / f"{task_id}.events.ndjson"
    for line in path.read_bytes().splitlines() if path.exists() else []:
        event = orjson.loads(line)
        if event["kind"] == kind:
            return datetime.datetime.fromisoformat(event["time"]).timestamp()
    raise LookupError(f"task {task_id}: no {kind} event yet")


async def written_time(state: pathlib.Path, task_id: str, kind: str) -> float:
    """:func:`event_time`, once the server's flusher wrote the event (it batches writes)."""
    with trio.fail_after(30):
        while True:
            try:
                return event_time(state, task_id, kind)
            except LookupError:
                await trio.sleep(0.05)


async def wait_done(client: Mcp, task_id: str) -> dict[str, Any]:
    while True:
        task = await client.call("wait_task", id=task_id, timeout_s=50)
        if task["status"] not in ("in_progress", "queued"):
            return task


async def latency_round(
    client: Mcp, root: pathlib.Path, state: pathlib.Path, n: int, *, queued: bool
) -> float:
    gate = root / f"gate-{'q' if queued else 'r'}-{n}"
    first = await client.call(
        "create_task", title="slot", instructions=f"waitfile {gate}", project_dir="p0"
    )
    if queued:
        second = await client.call(
            "create_task", title="next", instructions="hello", project_dir="p1"
        )
        assert second["status"] == "queued", second
        gate.write_text("go")
        await wait_done(client, second["task_id"])
    else:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, gate.write_text, "go")
            await wait_done(client, first["task_id"])
        second = await client.call(
            "create_task", title="next", instructions="hello", project_dir="p1"
        )
        assert second["status"] == "in_progress", second
        await wait_done(client, second["task_id"])
    await wait_done(client, first["task_id"])
    started = await written_time(state, second["task_id"], "run_started")
    return started - await written_time(state, first["task_id"], "run_finished")


async def timed(client: Mcp, name: str, times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await client.call(name)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def measure_latency(
    client: Mcp, root: pathlib.Path, state: pathlib.Path, rounds: int, row: dict[str, Any]
) -> None:
    queue_s, direct_s = [], []
    for n in range(rounds):  # interleaved, so load drifts hit both alike
        queue_s.append(await latency_round(client, root, state, n, queued=True))
        direct_s.append(await latency_round(client, root, state, n, queued=False))
    row["queue_ms"] = statistics.median(queue_s) * 1000
    row["direct_ms"] = statistics.median(direct_s) * 1000
    row["queue_p90_ms"] = statistics.quantiles(queue_s, n=10)[-1] * 1000
    row["direct_p90_ms"] = statistics.quantiles(direct_s, n=10)[-1] * 1000


async def measure_queue(
    client: Mcp, root: pathlib.Path, pid: int, queued: int, row: dict[str, Any]
) -> None:
    gate = root / "gate-hold"
    holder = await client.call(
        "create_task", title="hold", instructions=f"waitfile {gate}", project_dir="p0"
    )
    row["rss_before_mib"] = rss_mib(pid)
    row["status_empty_ms"] = await timed(client, "check_status", 20) * 1000
    ids = []
    for n in range(queued):
        task = await client.call(
            "create_task", title=f"q{n}", instructions="hello", project_dir="p2"
        )
        assert task["status"] == "queued", task
        ids.append(task["task_id"])
    row["rss_queued_mib"] = rss_mib(pid)
    status = await client.call("check_status")
    assert status["queue"]["length"] == queued, status["queue"]["length"]
    row["status_queued_ms"] = await timed(client, "check_status", 20) * 1000
    for task_id in ids:
        await client.call("end_task", id=task_id)
    assert (await client.call("check_status"))["queue"]["length"] == 0
    row["status_dequeued_ms"] = await timed(client, "check_status", 20) * 1000
    row["rss_dequeued_mib"] = rss_mib(pid)
    gate.write_text("go")
    await wait_done(client, holder["task_id"])


async def bench(rounds: int, queued: int, work: pathlib.Path) -> dict[str, Any]:
    root = work / "root"
    for project in ("p0", "p1", "p2"):
        (root / project).mkdir(parents=True)
    agent = work / "claude"
    agent.write_text(f"#!{sys.executable}\n{STAND_IN.read_text()}")
    agent.chmod(0o755)
    token_file = work / "daemon.token"
    state = work / "state"
    daemon_port, mcp_port = free_port(), free_port()
    env = dict(os.environ, CLAUDE_PATH=str(agent))
    env.pop("DAEMON_TOKEN", None)
    mcp_token = secrets.token_urlsafe(16)
    listen, auth = ["--listen", f"127.0.0.1:{daemon_port}"], ["--token-file", str(token_file)]
    # Its own state dir: the default one is locked by any daemon already running here.
    auth += ["--state-dir", str(work / "daemon-state")]
    limits = ["--max-runs", "1", "--log-level", "error"]
    daemon = await trio.lowlevel.open_process(
        [sys.executable, "-m", "host_daemon", *listen, "--root", str(root), *auth, *limits],
        env=env,
    )
    server_env = dict(
        env,
        CLAUDE_PROXY_HOST="127.0.0.1",
        CLAUDE_PROXY_PORT=str(daemon_port),
        DAEMON_TOKEN_FILE=str(token_file),
        STATE_PATH=str(state),
        PROJECTS_PATH=str(root),
        MCP_AUTH_TOKEN=mcp_token,
        PORT=str(mcp_port),
    )
    row: dict[str, Any] = {}
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
            async with httpx.AsyncClient(timeout=300) as http:
                client = Mcp(http, base + "/mcp", mcp_token)
                await client.initialize()
                await measure_latency(client, root, state, rounds, row)
                await measure_queue(client, root, server.pid, queued, row)
        finally:
            await stop(server)
    finally:
        await stop(daemon)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--queued", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as work:
        r = trio.run(bench, args.rounds, args.queued, pathlib.Path(work))
    print(f"| slot free -> next run started ({args.rounds} rounds) | median | p90 |")
    print("|---|---:|---:|")
    print(
        f"| queued (the scheduler starts it) | {r['queue_ms']:.1f} ms | "
        f"{r['queue_p90_ms']:.1f} ms |"
    )
    print(
        f"| reference: client waits, then create_task | {r['direct_ms']:.1f} ms | "
        f"{r['direct_p90_ms']:.1f} ms |"
    )
    print(f"ratio queued/direct (median): {r['queue_ms'] / r['direct_ms']:.2f}x")
    print()
    n = args.queued
    print(f"| {n} tasks | server VmRSS | check_status median |")
    print("|---|---:|---:|")
    rows = [
        ("none queued (1 run in flight)", "rss_before_mib", "status_empty_ms"),
        (f"{n} queued", "rss_queued_mib", "status_queued_ms"),
        (f"the same {n}, dequeued (end_task)", "rss_dequeued_mib", "status_dequeued_ms"),
    ]
    for label, rss, status in rows:
        print(f"| {label} | {r[rss]:.1f} MiB | {r[status]:.1f} ms |")


if __name__ == "__main__":
    main()
