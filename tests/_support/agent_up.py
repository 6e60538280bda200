"""``coding-agent up`` as a real subprocess for end-to-end tests, and an SDK client for it.

    async with coding_agent_up(state, root, env) as up:
        async with sdk_client(up) as client:
            await client.call_tool("check_status", {})

The process gets ``--port 0`` and a free daemon port; its first stdout lines give the MCP URL and
the bearer token. Leaving the block sends SIGTERM and waits (then SIGKILL); ``up.kill()`` and
``up.terminate()`` let a test do that itself. stderr goes to ``log_path`` for post-mortems.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence

import attrs
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@attrs.define(eq=False)
class Up:
    """A running ``coding-agent up``: its URL, token and process."""

    url: str
    token: str
    daemon: str  # the banner's "Daemon:" line: "HOST:PORT (agents work in ROOT)"
    process: trio.Process
    log_path: pathlib.Path
    banner: str = ""  # what stdout gave until the "Daemon:" line was read (maybe more)

    def kill(self) -> None:
        """SIGKILL the whole process (daemon and server: they are one process)."""
        self.process.kill()

    def terminate(self) -> None:
        """SIGTERM: a graceful shutdown."""
        self.process.send_signal(signal.SIGTERM)

    def log(self) -> str:
        """What the process wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")


async def _read_banner(process: trio.Process) -> tuple[dict[str, str], str]:
    assert process.stdout is not None
    buffer = b""
    received = b""
    fields: dict[str, str] = {}
    with trio.fail_after(STARTUP_TIMEOUT_S):
        while "Daemon" not in fields:
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError("coding-agent up exited before printing its URL")
            buffer += chunk
            received += chunk
            *lines, rest = buffer.split(b"\n")
            buffer = rest
            for line in lines:
                name, _, value = line.decode().partition(": ")
                fields[name] = value
    return fields, received.decode()


def _limit_files(limits: tuple[int, int]) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


@contextlib.asynccontextmanager
async def coding_agent_up(
    state: pathlib.Path,
    root: pathlib.Path,
    env: Mapping[str, str],
    *,
    grace_s: float = 2.0,
    open_files: tuple[int, int] | None = None,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[Up]:
    """Run ``python -m mcp_server up`` with ``env`` (see the module docstring).

    ``open_files`` sets the process's (soft, hard) limit on open files before it starts;
    ``extra_args`` go after ``up``'s own.
    """
    log_path = state.parent / f"{state.name}-up.log"
    with log_path.open("ab") as log:
        process = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "mcp_server",
                "up",
                "--port",
                "0",
                "--state-path",
                str(state),
                "--root",
                str(root),
                "--grace",
                str(grace_s),
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=dict(env),
            preexec_fn=None if open_files is None else functools.partial(_limit_files, open_files),
        )
    try:
        fields, banner = await _read_banner(process)
        yield Up(
            fields["MCP URL"], fields["Bearer token"], fields["Daemon"], process, log_path, banner
        )
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(STOP_TIMEOUT_S):
                    await process.wait()
            if process.returncode is None:
                process.kill()
            await process.wait()
            if process.stdout is not None:
                await process.stdout.aclose()


@contextlib.asynccontextmanager
async def sdk_client(up: Up, mode: str = "legacy") -> AsyncIterator[Client]:
    """The official SDK client, authenticated with the bearer token.

    ``mode="legacy"`` speaks the initialize-handshake era; ``"auto"`` negotiates the newest.
    """
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {up.token}"})
    async with http, Client(streamable_http_client(up.url, http_client=http), mode=mode) as c:
        yield c


def base_env(**extra: str) -> dict[str, str]:
    """A minimal environment for ``up`` plus ``extra`` (agent paths, the model's URL, …)."""
    keep = ("PATH", "LANG", "HOME", "VIRTUAL_ENV", "PYTHONPATH")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.pop("CLAUDE_PROXY_PORT", None)
    return env | extra
