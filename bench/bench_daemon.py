"""Benchmark the host daemon against spawning the same child directly, side by side in one run.

    .venv/bin/python bench/bench_daemon.py [--runs 200] [--stream-mb 200]

1. Run latency: a ``run`` of a trivial stand-in agent through the daemon (connect, handshake,
   spawn, one result line, exit, ``RunFinished``) against ``trio.run_process`` of the same argv.
2. Streaming: a child writing ``--stream-mb`` MB of NDJSON lines, read through the daemon by a
   client (every line parsed and forwarded as an event), against the layers below it: the same
   child writing to /dev/null, read by a bare trio reader, read as lines by ``spawn_group``
   alone, and read by ``spawn_group`` with the daemon's parsing and frame encoding (no socket).
   The CPU time of the daemon and of the client during the stream shows which side is busier;
   on a loaded machine the wall time also counts waiting for a core, which the daemon's
   ``/proc/PID/schedstat`` shows, and "MB per CPU second" is the rate the daemon would reach on
   a core of its own. The daemon's peak RSS (``VmHWM``) is read from ``/proc`` after the stream.

The daemon runs as a subprocess (``python -m host_daemon``) on a loopback port, as in production.
Absolute figures depend on the machine and its load: compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import trio

from host_daemon import DaemonUnavailable, RunFinished, RunRequest, open_run, probe, spawn_group

# The in-process side reproduces the daemon's own path, so it uses the daemon's private parts.
from host_daemon._agents import ADAPTERS
from host_daemon._protocol import encode_frame
from host_daemon._server import _SEND_BATCH_BYTES as _BATCH_BYTES

_RESULT_LINE = (
    '{"type":"result","subtype":"success","is_error":false,"result":"ok",'
    '"session_id":"bench","num_turns":1,"total_cost_usd":0}'
)

_TRIVIAL_AGENT = f"""#!/bin/sh
echo '{_RESULT_LINE}'
"""

# Writes MB megabytes of ~1 KiB assistant-text lines (in 1 MiB writes), then a result line.
_STREAM_AGENT = f"""#!{sys.executable}
import os, sys
if sys.argv[1:] == ["--version"]:
    print("0.0.0 (bench stream agent)")
    raise SystemExit(0)
mb = int(os.environ["BENCH_STREAM_MB"])
line = ('{{"type":"assistant","message":{{"content":[{{"type":"text","text":"'
        + "x" * 960 + '"}}]}}}}\\n').encode()
block = line * ((1 << 20) // len(line))
out = sys.stdout.buffer
for _ in range(mb * (1 << 20) // len(block)):
    out.write(block)
out.write(b'{_RESULT_LINE}\\n')
out.flush()
"""


def _executable(directory: pathlib.Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _vm_hwm_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/PID/status")


class Daemon:
    """The daemon as a subprocess, with its agent found through ``CLAUDE_PATH``."""

    def __init__(self, root: pathlib.Path, agent: str) -> None:
        self.root = root
        self.agent = agent
        self.token = secrets.token_urlsafe(32)
        self.port = _free_port()
        self.process: trio.Process | None = None

    async def start(self) -> None:
        env = dict(os.environ, DAEMON_TOKEN=self.token, CLAUDE_PATH=self.agent)
        argv = [sys.executable, "-m", "host_daemon", "--listen", f"127.0.0.1:{self.port}"]
        argv += ["--root", str(self.root), "--state-dir", str(self.root / ".state")]
        argv += ["--log-level", "warning"]
        self.process = await trio.lowlevel.open_process(argv, env=env, stdin=subprocess.DEVNULL)
        with trio.fail_after(30):
            while True:
                try:
                    await probe("127.0.0.1", self.port, self.token, timeout=2)
                except DaemonUnavailable:
                    await trio.sleep(0.05)
                else:
                    return

    async def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            with trio.CancelScope(shield=True):
                await self.process.wait()

    async def run(self, prompt: str) -> tuple[int, RunFinished]:
        request = RunRequest(agent="claude", prompt=prompt, cwd=str(self.root))
        events = 0
        async with open_run("127.0.0.1", self.port, self.token, request) as stream:
            async for event in stream:
                events += 1
                if isinstance(event, RunFinished):
                    return events, event
        raise RuntimeError("the run stream ended without RunFinished")


def _argv(agent: str, root: pathlib.Path, prompt: str) -> list[str]:
    adapter = ADAPTERS["claude"]
    request = RunRequest(agent="claude", prompt=prompt, cwd=str(root))
    return adapter.build_argv(agent, request, adapter.default_permission_mode)


async def bench_latency(root: pathlib.Path, runs: int) -> list[str]:
    agent = _executable(root, "trivial-agent", _TRIVIAL_AGENT)
    daemon = Daemon(root, agent)
    argv = _argv(agent, root, "hello")
    via_daemon: list[float] = []
    direct: list[float] = []
    try:
        await daemon.start()
        for _ in range(5):  # warm up both paths
            await daemon.run("hello")
            await trio.run_process(argv, stdin=b"", capture_stdout=True, cwd=root)
        for _ in range(runs):  # interleaved, so that load changes hit both sides alike
            start = time.perf_counter()
            _, finished = await daemon.run("hello")
            via_daemon.append(time.perf_counter() - start)
            assert finished.outcome == "success", finished.error
            start = time.perf_counter()
            await trio.run_process(argv, stdin=b"", capture_stdout=True, cwd=root)
            direct.append(time.perf_counter() - start)
    finally:
        await daemon.stop()

    def row(name: str, values: list[float]) -> str:
        mean, p50, p99 = (
            statistics.fmean(values),
            _percentile(values, 0.5),
            _percentile(values, 0.99),
        )
        return f"{name:<34} {mean * 1e3:>9.2f} {p50 * 1e3:>9.2f} {p99 * 1e3:>9.2f}"

    ratio = [
        statistics.fmean(via_daemon) / statistics.fmean(direct),
        _percentile(via_daemon, 0.5) / _percentile(direct, 0.5),
        _percentile(via_daemon, 0.99) / _percentile(direct, 0.99),
    ]
    return [
        f"1. run of a trivial agent, {runs} runs each (ms)",
        f"{'':<34} {'mean':>9} {'p50':>9} {'p99':>9}",
        row("through the daemon (run)", via_daemon),
        row("trio.run_process directly", direct),
        f"{'ratio daemon / direct':<34} {ratio[0]:>8.2f}x {ratio[1]:>8.2f}x {ratio[2]:>8.2f}x",
    ]


async def bench_streaming(root: pathlib.Path, megabytes: int) -> list[str]:
    os.environ["BENCH_STREAM_MB"] = str(megabytes)
    agent = _executable(root, "stream-agent", _STREAM_AGENT)
    daemon = Daemon(root, agent)
    argv = _argv(agent, root, "stream")
    try:
        await daemon.start()
        assert daemon.process is not None
        idle_rss = _vm_hwm_kib(daemon.process.pid)
        daemon_cpu, client_cpu = _cpu_seconds(daemon.process.pid), time.process_time()
        daemon_waited = _run_queue_seconds(daemon.process.pid)
        start = time.perf_counter()
        events, finished = await daemon.run("stream")
        through = time.perf_counter() - start
        daemon_cpu = _cpu_seconds(daemon.process.pid) - daemon_cpu
        client_cpu = time.process_time() - client_cpu
        daemon_waited = _run_queue_seconds(daemon.process.pid) - daemon_waited
        assert finished.outcome == "success", finished.error
        assert not finished.output_truncated
        peak_rss = _vm_hwm_kib(daemon.process.pid)
    finally:
        await daemon.stop()
    start = time.perf_counter()
    await trio.run_process(argv, stdin=b"", stdout=subprocess.DEVNULL, cwd=root)
    direct = time.perf_counter() - start
    start = time.perf_counter()
    read = await _read_all(argv, root)
    piped = time.perf_counter() - start
    assert read > megabytes * 1_000_000
    start = time.perf_counter()
    lines = await _read_lines(argv, root)
    grouped = time.perf_counter() - start
    assert lines + 2 == events  # RunStarted and RunFinished: one event per line between
    start = time.perf_counter()
    parsed = await _parse_lines(argv, root)
    parsing = time.perf_counter() - start
    assert parsed > megabytes * 1_000_000
    return [
        f"2. streaming {megabytes} MB of NDJSON ({events} events through the daemon)",
        f"{'':<34} {'seconds':>9} {'MB/s':>9}",
        f"{'through the daemon to a client':<34} {through:>9.2f} {megabytes / through:>9.1f}",
        f"{'child piped to /dev/null':<34} {direct:>9.2f} {megabytes / direct:>9.1f}",
        f"{'child piped to a trio reader':<34} {piped:>9.2f} {megabytes / piped:>9.1f}",
        f"{'spawn_group lines, no daemon':<34} {grouped:>9.2f} {megabytes / grouped:>9.1f}",
        f"{'spawn_group + parse + encode':<34} {parsing:>9.2f} {megabytes / parsing:>9.1f}",
        f"{'ratio daemon / direct (time)':<34} {through / direct:>8.2f}x",
        f"CPU during the stream: daemon {daemon_cpu:.2f} s, client {client_cpu:.2f} s; "
        f"the daemon waited {daemon_waited:.2f} s for a free core",
        f"{'daemon MB per CPU second':<34} {'':>9} {megabytes / daemon_cpu:>9.1f}",
        f"daemon peak RSS (VmHWM): {peak_rss / 1024:.1f} MiB "
        f"(after start: {idle_rss / 1024:.1f} MiB)",
    ]


async def _read_all(argv: list[str], root: pathlib.Path) -> int:
    """Run ``argv`` with its stdout on a pipe that trio reads and discards; bytes read."""
    total = 0
    process = await trio.lowlevel.open_process(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, cwd=root
    )
    try:
        assert process.stdout is not None
        while chunk := await process.stdout.receive_some(1 << 16):
            total += len(chunk)
    finally:
        with trio.CancelScope(shield=True):
            await process.wait()
    return total


async def _read_lines(argv: list[str], root: pathlib.Path) -> int:
    """Run ``argv`` through ``spawn_group`` alone and take its lines as the daemon does."""
    count = 0
    async with spawn_group(argv, cwd=str(root)) as proc:
        while batch := await proc.next_batch(_BATCH_BYTES):
            count += len(batch)
        await proc.wait()
    return count


async def _parse_lines(argv: list[str], root: pathlib.Path) -> int:
    """As ``_read_lines``, plus the daemon's per-line work: parse into events, encode frames."""
    parser = ADAPTERS["claude"].new_parser()
    framed = 0
    async with spawn_group(argv, cwd=str(root)) as proc:
        while batch := await proc.next_batch(_BATCH_BYTES):
            for line in batch:
                text = line.data.decode("utf-8", errors="replace").rstrip("\r\n")
                for event in parser.feed(text, truncated=line.truncated):
                    framed += len(encode_frame(event))
        await proc.wait()
    return framed


def _run_queue_seconds(pid: int) -> float:
    """How long ``pid``'s main thread has been runnable but waiting for a CPU (schedstat)."""
    return int(pathlib.Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(root: pathlib.Path, runs: int, megabytes: int) -> None:
    lines = await bench_latency(root, runs)
    lines.append("")
    lines += await bench_streaming(root, megabytes)
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per side (default 200)")
    parser.add_argument("--stream-mb", type=int, default=200, help="MB to stream (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        trio.run(main, pathlib.Path(os.path.realpath(tmp)), args.runs, args.stream_mb)
