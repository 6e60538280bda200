"""The web dashboard through a real ``serve()``, a real daemon and the task stand-in agent.

    async with dashboard_server(tmp_path) as web:
        browser = await web.logged_in()          # an httpx client holding the login cookie
        task = await web.mcp.ok("create_task", title="t", instructions="hello")
        page = await browser.get(f"/tasks/{task['task_id']}")

``web.base`` is the server's base URL (``http://localhost:PORT``), ``web.token`` the bearer token
typed on ``/login``, ``web.mcp`` an initialized MCP client with that token, ``web.runner`` the
runner behind both. ``clock`` gives the dashboard's logins a monotonic clock a test moves;
``daemon_env``/``daemon_config`` set the daemon's environment and :class:`DaemonConfig` fields
(``state_dir`` gives it worktrees).

``live_dashboard(tmp_path, model)`` is the same server whose daemon runs the real Claude Code CLI
(``_support.claude_cli``, live: permission requests relayed) against the scripted ``model``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import re
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

import attrs
import httpx
import trio

from _support.claude_cli import claude_env, claude_executable
from _support.daemon import running_daemon
from _support.scripted_model import ScriptedModel
from _support.task_server import Client, install_agent
from mcp_server import HttpSettings, Registry, serve
from mcp_server._oauth import OAuthService, oauth_blueprint
from mcp_server._tasks import (
    DaemonEndpoint,
    TaskNotices,
    TaskRunner,
    TaskStore,
    Workspace,
    register_tasks,
)
from mcp_server._web import BoardHub, DashboardSettings, FanOut, dashboard_blueprint

TOKEN = "dashboard-test-token-0123456789"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = _CSRF.search(html)
    assert match is not None, "no CSRF field in the page"
    return match[1]


@attrs.frozen
class Web:
    base: str
    token: str
    mcp: Client
    runner: TaskRunner
    root: pathlib.Path
    exits: contextlib.AsyncExitStack
    shutdown: trio.Event
    """Set it to start the server's graceful drain (as a signal would)."""

    def browser(self, **kwargs: Any) -> httpx.AsyncClient:
        """A fresh cookie jar on the dashboard (closed with the server)."""
        kwargs.setdefault("timeout", 60)
        client = httpx.AsyncClient(base_url=self.base, **kwargs)
        self.exits.push_async_callback(client.aclose)
        return client

    async def logged_in(self) -> httpx.AsyncClient:
        """A browser that logged in with the right token."""
        browser = self.browser()
        response = await browser.post(
            "/login", data={"token": self.token, "next": "/"}, headers={"Origin": self.base}
        )
        assert response.status_code == 303, response.text
        return browser

    async def post_form(
        self, browser: httpx.AsyncClient, path: str, page: str, **fields: str
    ) -> httpx.Response:
        """POST a form of ``page`` (its CSRF token) the way the browser sends it."""
        listing = await browser.get(page)
        data = {"csrf": csrf_of(listing.text), **fields}
        return await browser.post(path, data=data, headers={"Origin": self.base})


@contextlib.asynccontextmanager
async def dashboard_server(
    tmp_path: pathlib.Path,
    *,
    clock: Callable[[], float] | None = None,
    settings: DashboardSettings | None = None,
    daemon_env: Mapping[str, str] | None = None,
    daemon_config: Mapping[str, Any] | None = None,
    public_urls: tuple[str, ...] = (),
    oauth: OAuthService | None = None,
) -> AsyncIterator[Web]:
    """Daemon + runner + MCP server with the dashboard on loopback (see the module docstring);
    ``oauth`` adds the built-in authorization server (its routes and the ``/clients`` page)."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    agent = install_agent(tmp_path / "bin")
    async with running_daemon(
        roots=[root], env={"CLAUDE_PATH": agent, **(daemon_env or {})}, **(daemon_config or {})
    ) as daemon:
        registry = Registry()
        hub = BoardHub()
        runner = TaskRunner(
            functools.partial(TaskStore, tmp_path / "state"),
            DaemonEndpoint(host=daemon.host, port=daemon.port, token=daemon.token),
            Workspace(PurePosixPath(root), PurePosixPath(root)),
            listener=FanOut([TaskNotices(registry), hub]),
        )
        await runner.store.load()
        tools = register_tasks(registry, runner)
        http = HttpSettings(
            port=0,
            auth_token=TOKEN,
            graceful_timeout_s=2.0,
            public_urls=public_urls,
            access_tokens=None if oauth is None else oauth.verify,
        )
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        blueprint = dashboard_blueprint(tools, hub, http, settings, oauth=oauth, **extra)
        blueprints = [blueprint] if oauth is None else [oauth_blueprint(oauth, http), blueprint]
        shutdown = trio.Event()
        stopped = trio.Event()

        async def run_http(*, task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                await serve(
                    registry,
                    http,
                    shutdown=shutdown,
                    blueprints=blueprints,
                    on_drain=[hub.drain],
                    task_status=task_status,
                )
            finally:
                stopped.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            urls = await nursery.start(run_http)
            base = urls[0].replace("127.0.0.1", "localhost")
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with (
                contextlib.AsyncExitStack() as exits,
                httpx.AsyncClient(timeout=60, headers=headers) as http_client,
            ):
                mcp = Client(http_client, base + "/mcp")
                await mcp.initialize()
                yield Web(base, TOKEN, mcp, runner, root, exits, shutdown)
            shutdown.set()
            with trio.move_on_after(http.graceful_timeout_s + 10):
                await stopped.wait()
            nursery.cancel_scope.cancel()


async def wait_task_done(web: Web, task_id: str) -> dict[str, Any]:
    """wait_task over MCP until the task's run ended; its view."""
    with trio.fail_after(60):
        while True:
            task: dict[str, Any] = await web.mcp.ok("wait_task", id=task_id, timeout_s=20)
            if task["status"] != "in_progress":
                return task


@attrs.frozen
class SseEvent:
    event: str
    data: str
    id: str | None


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """The SSE messages of a streaming response, as they come (comments skipped)."""
    event, data, event_id = "message", [], None
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield SseEvent(event, "\n".join(data), event_id)
            event, data, event_id = "message", [], None
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("id:"):
            event_id = line[3:].strip()


GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
"""A fixed git identity and no user or system config, for the tests' git and the daemon's."""


async def git(repo: pathlib.Path, *args: str) -> str:
    """Run git in ``repo``; its stdout."""
    done = await trio.run_process(
        ["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, capture_stdout=True
    )
    return done.stdout.decode()


@contextlib.asynccontextmanager
async def worktree_dashboard(tmp_path: pathlib.Path, **options: Any) -> AsyncIterator[Web]:
    """``dashboard_server`` whose daemon makes worktrees; its root is a git repository on
    ``main`` with one commit (``README`` holding ``hello``)."""
    async with dashboard_server(
        tmp_path,
        daemon_env=GIT_ENV,
        daemon_config={"state_dir": str(tmp_path / "daemon")},
        **options,
    ) as web:
        await git(web.root, "init", "-q", "-b", "main")
        (web.root / "README").write_text("hello\n")
        await git(web.root, "add", "README")
        await git(web.root, "commit", "-q", "-m", "first")
        yield web


@contextlib.asynccontextmanager
async def live_dashboard(
    tmp_path: pathlib.Path, model: ScriptedModel, **options: Any
) -> AsyncIterator[Web]:
    """``dashboard_server`` whose daemon runs the real Claude CLI live against ``model``."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    (home / ".claude" / "settings.json").write_text("{}")
    env = dict(claude_env(model.base_url, home), CLAUDE_PATH=claude_executable())
    async with dashboard_server(tmp_path, daemon_env=env, **options) as web:
        yield web
