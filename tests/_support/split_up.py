"""The host daemon and the MCP server as two real subprocesses, the way a container deployment
runs them: either can be killed, stopped or restarted while the other goes on.

    async with daemon_process(tmp_path / "daemon", root, env, detach_grace_s=60) as daemon:
        async with serve_process(tmp_path / "server", root, daemon, env) as up:
            async with sdk_client(up) as client:
                ...
            up.kill()  # the server dies; the daemon keeps its runs

The daemon listens on a port chosen up front (``port=``: the same one again after a restart);
each process writes its log to ``<dir>.log`` beside its state dir. Leaving a block sends
SIGTERM, waits, then SIGKILLs.
"""

from __future__ import annotations

import contextlib
import pathlib
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping

import attrs
import trio

from _support.agent_up import STARTUP_TIMEOUT_S, STOP_TIMEOUT_S, Up
from host_daemon import DaemonError, probe

MCP_TOKEN = "split-up-test-token-0123456789abcdef"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define(eq=False)
class DaemonProcess:
    """A running ``python -m host_daemon``: where it listens, its token, its process."""

    host: str
    port: int
    token: str
    process: trio.Process
    log_path: pathlib.Path

    def kill(self) -> None:
        self.process.kill()

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def _stop(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(STOP_TIMEOUT_S):
                await process.wait()
        if process.returncode is None:
            process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def daemon_process(
    state: pathlib.Path,
    root: pathlib.Path,
    env: Mapping[str, str],
    *,
    detach_grace_s: float,
    port: int | None = None,
    grace_s: float = 5.0,
) -> AsyncIterator[DaemonProcess]:
    """``python -m host_daemon`` serving ``root`` from the state dir ``state`` (its token file
    there), with ``--detach-grace detach_grace_s``; yields once it answers a probe."""
    await trio.Path(state).mkdir(parents=True, exist_ok=True)
    port = free_port() if port is None else port
    token_file = state / "daemon.token"
    argv = [sys.executable, "-m", "host_daemon", "--listen", f"127.0.0.1:{port}"]
    argv += ["--root", str(root), "--state-dir", str(state), "--token-file", str(token_file)]
    argv += ["--grace", str(grace_s), "--detach-grace", str(detach_grace_s)]
    log_path = state.parent / f"{state.name}.log"
    clean = {k: v for k, v in env.items() if not k.startswith("DAEMON_TOKEN")}
    with log_path.open("ab") as log:
        process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=clean
        )
    try:
        with trio.fail_after(STARTUP_TIMEOUT_S):
            while not token_file.exists():  # noqa: ASYNC110 (a file another process writes)
                await trio.sleep(0.05)
        token = token_file.read_text().strip()

        async def answers() -> bool:
            try:
                await probe("127.0.0.1", port, token, timeout=5)
            except (DaemonError, OSError):
                return False
            return True

        with trio.fail_after(STARTUP_TIMEOUT_S):
            while not await answers():
                if process.returncode is not None:
                    raise RuntimeError(f"the daemon exited: {log_path.read_text()[-2000:]}")
                await trio.sleep(0.05)
        yield DaemonProcess("127.0.0.1", port, token, process, log_path)
    finally:
        await _stop(process)


@contextlib.asynccontextmanager
async def serve_process(
    state: pathlib.Path,
    root: pathlib.Path,
    daemon: DaemonProcess,
    env: Mapping[str, str],
    *,
    grace_s: float = 2.0,
) -> AsyncIterator[Up]:
    """``python -m mcp_server serve`` on ``127.0.0.1:0`` with the state dir ``state``, its
    projects in ``root``, driving ``daemon``; yields it as an :class:`Up` (for ``sdk_client``)."""
    log_path = state.parent / f"{state.name}.log"
    argv = [sys.executable, "-m", "mcp_server", "serve", "--port", "0"]
    argv += ["--state-path", str(state), "--grace", str(grace_s)]
    argv += ["--daemon-host", daemon.host, "--daemon-port", str(daemon.port)]
    server_env = dict(env) | {
        "DAEMON_TOKEN": daemon.token,
        "MCP_AUTH_TOKEN": MCP_TOKEN,
        "PROJECTS_PATH": str(root),
    }
    with log_path.open("ab") as log:
        process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=server_env
        )
    try:
        assert process.stdout is not None
        buffer = b""
        with trio.fail_after(STARTUP_TIMEOUT_S):
            while b"MCP URL: " not in buffer or not buffer.endswith(b"\n"):
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError(f"serve exited: {log_path.read_text()[-2000:]}")
                buffer += chunk
        line = next(x for x in buffer.decode().splitlines() if x.startswith("MCP URL: "))
        url = line.removeprefix("MCP URL: ")
        yield Up(url, MCP_TOKEN, f"{daemon.host}:{daemon.port}", process, log_path)
    finally:
        await _stop(process)
        if process.stdout is not None:
            await process.stdout.aclose()
