"""``run_server`` with configured hosts: tasks go to them, and the dashboard shows a task's host."""

from __future__ import annotations

import pathlib
from pathlib import PurePosixPath

import httpx
import trio
from _support.daemon import running_daemon
from _support.dashboard import TOKEN
from _support.task_server import Client, install_agent, wait_done

from mcp_server._cli import run_server
from mcp_server._config import ServerConfig
from mcp_server._tasks import DaemonEndpoint, Host, Workspace


async def test_run_server_routes_to_its_hosts_and_the_task_page_names_the_host(
    tmp_path: pathlib.Path,
) -> None:
    """A server configured with hosts laptop and build (their own roots, not the workspace) runs
    a task on laptop; the task's page shows ``Host: laptop``, the board's search finds it by
    host, and the status page lists both hosts."""
    root = tmp_path / "laptop-src"
    (root / "p").mkdir(parents=True)
    build_root = tmp_path / "build-src"
    build_root.mkdir()
    agent = install_agent(tmp_path / "bin")
    async with (
        running_daemon(roots=[root], env={"CLAUDE_PATH": agent}) as daemon,
        running_daemon(roots=[build_root], env={"CLAUDE_PATH": agent}) as build,
    ):
        endpoint = DaemonEndpoint(host=daemon.host, port=daemon.port, token=daemon.token)
        build_endpoint = DaemonEndpoint(host=build.host, port=build.port, token=build.token)
        build_roots = (Workspace(PurePosixPath(build_root), PurePosixPath(build_root)),)
        elsewhere = PurePosixPath(tmp_path / "workspace")
        config = ServerConfig(
            host="127.0.0.1",
            port=0,
            state_path=tmp_path / "state",
            workspace=Workspace(elsewhere, elsewhere),
            daemon=endpoint,
            hosts=(
                Host("laptop", endpoint, (Workspace(PurePosixPath(root), PurePosixPath(root)),)),
                Host("build", build_endpoint, build_roots),
            ),
            auth_token=TOKEN,
            http_graceful_s=2.0,
        )
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                lambda task_status: run_server(config, shutdown=shutdown, task_status=task_status)
            )
            base = urls[0].replace("127.0.0.1", "localhost")
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(timeout=60, headers=headers) as http:
                mcp = Client(http, base + "/mcp")
                await mcp.initialize()
                created = await mcp.ok(
                    "create_task", title="t", instructions="hello", project_dir=str(root / "p")
                )
                assert created["host"] == "laptop"
                assert (await wait_done(mcp, created["task_id"]))["status"] == "waiting"
            async with httpx.AsyncClient(base_url=base) as browser:
                await browser.post("/login", data={"token": TOKEN}, headers={"Origin": base})
                page = (await browser.get(f"/tasks/{created['task_id']}")).text
                assert '<dt>Host</dt><dd id="task-host">laptop</dd>' in page
                found = (await browser.get("/", params={"q": "laptop"})).text
                assert created["task_id"] in found
                missed = (await browser.get("/", params={"q": "desktop"})).text
                assert created["task_id"] not in missed
                status = (await browser.get("/status")).text
                for name, where in (("laptop", daemon), ("build", build)):
                    assert (
                        f'<li id="host-{name}"><strong>{name}</strong> 127.0.0.1:{where.port} '
                        in status
                    )
                assert f"roots <code>{build_root}</code>" in status
            shutdown.set()
