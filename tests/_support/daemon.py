"""A real host daemon for tests, served in the caller's task on ``127.0.0.1:0``.

    async with running_daemon(roots=[tmp_path], env={"CLAUDE_PATH": agent}) as daemon:
        info = await host_daemon.probe(daemon.host, daemon.port, daemon.token)

``env`` is added to the daemon's environment (agents are found in it and run with it); other
keyword arguments override ``DaemonConfig`` fields (``max_runs=1``, ``grace_s=…``). Leaving the
block cancels the daemon, which kills every run's process group. ``daemon.shutdown.set()``
starts a graceful shutdown instead.

``install_stand_in_agent(directory)`` writes an executable stand-in for the ``claude`` CLI (see
``_support/stand_in_agent.py`` for the prompts it understands) and returns its path.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import secrets
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import attrs
import trio

from host_daemon import DaemonConfig, probe, serve_daemon


@attrs.frozen
class RunningDaemon:
    """Where a test daemon listens, and its secret."""

    host: str
    port: int
    token: str
    config: DaemonConfig
    shutdown: trio.Event


@contextlib.asynccontextmanager
async def running_daemon(
    roots: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningDaemon]:
    """Serve a daemon for the duration of the block (see the module docstring)."""
    token = secrets.token_urlsafe(24)
    config = DaemonConfig(
        token=token,
        roots=tuple(os.fspath(root) for root in roots),
        listen=(("127.0.0.1", 0),),
        environ={**os.environ, **(env or {})},
        **overrides,
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(functools.partial(serve_daemon, config, shutdown=shutdown))
        host, port = addresses[0]
        yield RunningDaemon(host=host, port=port, token=token, config=config, shutdown=shutdown)
        nursery.cancel_scope.cancel()


def install_stand_in_agent(directory: pathlib.Path, name: str = "claude") -> str:
    """Write the stand-in agent as an executable ``directory/name``; returns its path."""
    source = (pathlib.Path(__file__).parent / "stand_in_agent.py").read_text()
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{source}")
    path.chmod(0o755)
    return str(path)


async def wait_detached_runs(
    host: str, port: int, token: str, count: int, timeout: float = 30.0
) -> None:
    """Wait until the daemon's probe reports ``count`` detached runs (polled: a detach has no
    event a client could wait on)."""
    with trio.fail_after(timeout):
        while (await probe(host, port, token)).detached_runs != count:  # noqa: ASYNC110
            await trio.sleep(0.02)
