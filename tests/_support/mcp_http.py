"""A live MCP server for tests: ``async with serving(registry, **settings) as url``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from mcp_server import HttpSettings, Registry, serve


@asynccontextmanager
async def serving(registry: Registry, **settings: Any) -> AsyncIterator[str]:
    """Yield the ``/mcp`` URL of a server on 127.0.0.1:0; on exit, drain it and wait for it.

    ``settings`` override ``HttpSettings`` fields (auth is off unless ``auth_token`` is given).
    The server runs in a nursery this context owns; the URL uses ``localhost``.
    """
    settings.setdefault("port", 0)
    settings.setdefault("graceful_timeout_s", 2.0)
    config = HttpSettings(**settings)
    shutdown = trio.Event()
    stopped = trio.Event()

    async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(registry, config, shutdown=shutdown, task_status=task_status)
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(run)
        url = urls[0].replace("127.0.0.1", "localhost") + "/mcp"
        try:
            yield url
        finally:
            shutdown.set()
            with trio.move_on_after(config.graceful_timeout_s + 10):
                await stopped.wait()
            nursery.cancel_scope.cancel()
