"""The coding-task surface through a real ``serve()``, a real daemon and the task stand-in agent.

    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hello")
        task = await wait_done(env.client, created["task_id"])

``Client`` is a minimal legacy-era MCP client (JSON or SSE answers); ``store=`` lets a test give
the server its own :class:`TaskStore` (a clock), as the factory the runner calls with its
listener. ``up_client(tmp_path, state)`` is the same client of a real ``coding-agent up``
subprocess running the ``_support/stand_in_agent.py`` agent.
"""

from __future__ import annotations

import contextlib
import functools
import json
import pathlib
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import attrs
import httpx
import trio

from _support.agent_up import Up, base_env, coding_agent_up
from _support.daemon import RunningDaemon, install_stand_in_agent, running_daemon
from _support.mcp_http import serving
from mcp_server import Registry
from mcp_server._notify import Notifier, NotifyConfig, check_notify_url
from mcp_server._tasks import (
    DaemonEndpoint,
    Spending,
    StoreFactory,
    TaskNotices,
    TaskRunner,
    TaskStore,
    Workspace,
    register_tasks,
)
from mcp_server._tasks._holds import HoldPolicy
from mcp_server._web import FanOut

VERSION = "2025-11-25"
STAND_IN = pathlib.Path(__file__).parents[1] / "e2e" / "stand_in_claude.py"


def install_agent(directory: pathlib.Path) -> str:
    """The task stand-in as an executable ``claude``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "claude"
    path.write_text(f"#!{sys.executable}\n{STAND_IN.read_text()}")
    path.chmod(0o755)
    return str(path)


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [
            json.loads(line[5:])
            for line in response.text.splitlines()
            if line.startswith("data:") and line[5:].strip()
        ]
    return [response.json()]


@attrs.define
class Client:
    """A minimal legacy-era MCP client over Streamable HTTP (JSON or SSE answers)."""

    http: httpx.AsyncClient
    url: str
    session: str | None = None
    next_id: int = 0

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream"}
        if self.session:
            headers |= {"Mcp-Session-Id": self.session, "MCP-Protocol-Version": VERSION}
        return headers

    async def initialize(self) -> None:
        response = await self.http.post(
            self.url,
            headers=self.headers(),
            json={
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"},
                },
            },
        )
        response.raise_for_status()
        self.session = response.headers["mcp-session-id"]
        await self.http.post(
            self.url,
            headers=self.headers(),
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )

    async def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        response = await self.http.post(self.url, headers=self.headers(), json=body)
        answer = [m for m in _messages(response) if m.get("id") == self.next_id]
        assert answer, response.text
        return answer[0]

    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        answer = await self.rpc("tools/call", {"name": name, "arguments": arguments})
        result: dict[str, Any] = answer["result"]
        return result

    async def ok(self, name: str, **arguments: Any) -> dict[str, Any]:
        result = await self.call(name, **arguments)
        assert not result.get("isError"), result
        assert result["structuredContent"]["status"] == "success"
        value: dict[str, Any] = result["structuredContent"]["result"]
        return value

    async def error_code(self, name: str, **arguments: Any) -> str:
        result = await self.call(name, **arguments)
        assert result.get("isError") is True, result
        structured = result.get("structuredContent")
        return "schema" if structured is None else str(structured["error"]["code"])

    async def read(self, uri: str) -> Any:
        answer = await self.rpc("resources/read", {"uri": uri})
        assert "result" in answer, answer
        return json.loads(answer["result"]["contents"][0]["text"])


@attrs.frozen
class Env:
    client: Client
    runner: TaskRunner
    root: pathlib.Path
    state: pathlib.Path
    notifier: Notifier | None = None


@contextlib.asynccontextmanager
async def task_server(
    tmp_path: pathlib.Path,
    *,
    token: str | None = None,
    port: int | None = None,
    store: StoreFactory | None = None,
    daemon_env: Mapping[str, str] | None = None,
    daemon_config: Mapping[str, Any] | None = None,
    sweep_interval_s: float = 600.0,
    client_root: str | None = None,
    hold_policy: HoldPolicy | None = None,
    spending: Spending | None = None,
    notify: NotifyConfig | None = None,
    daemon: RunningDaemon | None = None,
    detach_grace_s: float | None = None,
) -> AsyncIterator[Env]:
    """Daemon + runner + MCP server on loopback; ``token``/``port`` override the server's view,
    ``daemon_env``/``daemon_config`` the daemon's environment and :class:`DaemonConfig` fields
    (a ``state_dir`` gives it worktrees); ``client_root`` is where clients see the root (as
    ``/workspace`` in the container; default: the root's own path); ``spending`` the runner's
    ledger and budgets (default: a ledger in the state dir, no day budgets); ``notify`` runs a
    :class:`Notifier` with these settings beside the runner; ``daemon`` one that outlives the
    block (made with :func:`task_daemon`), else the block has its own; ``detach_grace_s`` the
    runner's idea of the daemon's detach grace until it probes."""
    root = tmp_path / "root"
    async with contextlib.AsyncExitStack() as stack:
        if daemon is None:
            config = daemon_config or {}
            daemon = await stack.enter_async_context(task_daemon(tmp_path, daemon_env, **config))
        endpoint = DaemonEndpoint(
            host=daemon.host,
            port=daemon.port if port is None else port,
            token=daemon.token if token is None else token,
        )
        registry = Registry()
        notifier = None if notify is None else Notifier(notify, tmp_path / "state")
        runner = TaskRunner(
            store or functools.partial(TaskStore, tmp_path / "state"),
            endpoint,
            Workspace(PurePosixPath(client_root or root), PurePosixPath(root)),
            listener=TaskNotices(registry)
            if notifier is None
            else FanOut([TaskNotices(registry), notifier]),
            sweep_interval_s=sweep_interval_s,
            hold_policy=hold_policy,
            spending=spending,
            **({} if detach_grace_s is None else {"detach_grace_s": detach_grace_s}),
        )
        await runner.store.load()
        if notifier is None:
            register_tasks(registry, runner)
        else:
            register_tasks(
                registry,
                runner,
                status_sections={"notifications": notifier.status_view},
                check_notify_url=functools.partial(check_notify_url, config=notifier.config),
            )
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            if notifier is not None:
                await nursery.start(notifier.run, runner.tasks)
            async with serving(registry) as url, httpx.AsyncClient(timeout=60) as http:
                client = Client(http, url)
                await client.initialize()
                yield Env(client, runner, root, tmp_path / "state", notifier)
            nursery.cancel_scope.cancel()


def task_daemon(
    tmp_path: pathlib.Path, daemon_env: Mapping[str, str] | None = None, **config: Any
) -> contextlib.AbstractAsyncContextManager[RunningDaemon]:
    """The daemon of :func:`task_server` (root ``tmp_path/root``, the task stand-in agent)."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    agent = install_agent(tmp_path / "bin")
    return running_daemon(roots=[root], env={"CLAUDE_PATH": agent, **(daemon_env or {})}, **config)


async def wait_done(client: Client, task_id: str) -> dict[str, Any]:
    """wait_task until the run ended."""
    with trio.fail_after(60):
        while True:
            task = await client.ok("wait_task", id=task_id, timeout_s=20)
            if task["status"] != "in_progress":
                return task


async def all_events(client: Client, task_id: str) -> list[dict[str, Any]]:
    """Every event of a task, following the pages."""
    events: list[dict[str, Any]] = []
    uri: str | None = f"task://{task_id}/logs"
    while uri is not None:
        page = await client.read(uri)
        events += page["events"]
        uri = page["next"]
    return events


@contextlib.asynccontextmanager
async def up_client(
    tmp_path: pathlib.Path, state: pathlib.Path, extra_args: Sequence[str] = ()
) -> AsyncIterator[tuple[Up, Client]]:
    """``coding-agent up`` on ``state`` with the stand-in agent, and an initialized client of it
    (``extra_args`` go to ``up``)."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    agent = install_stand_in_agent(tmp_path)
    async with coding_agent_up(
        state, root, base_env(CLAUDE_PATH=agent), extra_args=extra_args
    ) as up:
        headers = {"Authorization": f"Bearer {up.token}"}
        async with httpx.AsyncClient(timeout=120, headers=headers) as http:
            client = Client(http, up.url)
            await client.initialize()
            yield up, client
