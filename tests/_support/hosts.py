"""One MCP server driving several real host daemons on loopback, each with roots of its own.

    async with hosts_server(tmp_path, {"a": {}, "b": {"max_runs": 1}}) as env:
        created = await env.client.ok("create_task", ..., project_dir=str(env.roots["b"] / "p"))
        await env.stop("b")  # host b's daemon stops (its port closes): the host is down

Each host ``NAME`` gets a root ``tmp_path/root-NAME`` (served by its daemon and configured as its
host's root) and its own copy of the task stand-in agent in ``tmp_path/bin-NAME`` (a run's
``run_started`` argv names the daemon that ran it). A host's dict overrides its daemon's
``DaemonConfig`` fields; ``roots`` (a list of paths) replaces its default root.

The daemons may outlive a server: ``async with host_daemons(tmp_path, hosts, proxied={"b"})``
runs them (host b reached through a :class:`TcpProxy` the test can cut), and each
``hosts_server(tmp_path, daemons)`` block is one server lifetime on the same state directory.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import attrs
import httpx
import trio

from _support.daemon import RunningDaemon, running_daemon
from _support.mcp_http import serving
from _support.task_server import Client, install_agent
from _support.tcp_proxy import TcpProxy, tcp_proxy
from mcp_server import Registry
from mcp_server._tasks import (
    DaemonEndpoint,
    Host,
    TaskNotices,
    TaskRunner,
    TaskStore,
    Workspace,
    register_tasks,
)


@attrs.define
class HostDaemons:
    """The hosts' daemons (and proxies), their roots and agents."""

    roots: dict[str, pathlib.Path]
    served: dict[str, list[pathlib.Path]]
    agents: dict[str, str]
    """Each host's agent path (``argv[0]`` of the runs its daemon starts)."""
    daemons: dict[str, RunningDaemon]
    proxies: dict[str, TcpProxy]
    _scopes: dict[str, trio.CancelScope]
    _stopped: dict[str, trio.Event]

    async def stop(self, name: str) -> None:
        """Stop host ``name``'s daemon (its runs are killed, its port closes) and wait for it."""
        self._scopes[name].cancel()
        await self._stopped[name].wait()

    def table(self) -> list[Host]:
        """The hosts as the server is configured with them (a proxied one: its proxy's port)."""
        hosts = []
        for name, daemon in self.daemons.items():
            proxy = self.proxies.get(name)
            port = daemon.port if proxy is None else proxy.port
            roots = tuple(
                Workspace(PurePosixPath(os.fspath(r)), PurePosixPath(os.fspath(r)))
                for r in self.served[name]
            )
            hosts.append(Host(name, DaemonEndpoint("127.0.0.1", port, daemon.token), roots))
        return hosts


@attrs.define
class HostsEnv:
    client: Client
    runner: TaskRunner
    hosts: HostDaemons

    @property
    def roots(self) -> dict[str, pathlib.Path]:
        return self.hosts.roots

    @property
    def agents(self) -> dict[str, str]:
        return self.hosts.agents

    @property
    def daemons(self) -> dict[str, RunningDaemon]:
        return self.hosts.daemons

    async def stop(self, name: str) -> None:
        await self.hosts.stop(name)


async def _serve(
    roots: Sequence[pathlib.Path],
    env: Mapping[str, str],
    config: Mapping[str, Any],
    scope: trio.CancelScope,
    stopped: trio.Event,
    *,
    task_status: trio.TaskStatus[RunningDaemon],
) -> None:
    try:
        with scope:
            async with running_daemon(roots=roots, env=env, **config) as daemon:
                task_status.started(daemon)
                await trio.sleep_forever()
    finally:
        stopped.set()


@contextlib.asynccontextmanager
async def host_daemons(
    tmp_path: pathlib.Path,
    hosts: Mapping[str, Mapping[str, Any]],
    proxied: Collection[str] = (),
) -> AsyncIterator[HostDaemons]:
    """The daemons of ``hosts`` (in order); those ``proxied`` behind a :class:`TcpProxy`."""
    roots: dict[str, pathlib.Path] = {}
    agents: dict[str, str] = {}
    served: dict[str, list[pathlib.Path]] = {}
    for name, given in hosts.items():
        roots[name] = tmp_path / f"root-{name}"
        served[name] = [pathlib.Path(p) for p in given.get("roots", [roots[name]])]
        for root in served[name]:
            root.mkdir(parents=True, exist_ok=True)
        agents[name] = install_agent(tmp_path / f"bin-{name}")
    scopes = {name: trio.CancelScope() for name in hosts}
    stopped = {name: trio.Event() for name in hosts}
    async with trio.open_nursery() as nursery:
        async with contextlib.AsyncExitStack() as proxies_stack:
            daemons: dict[str, RunningDaemon] = {}
            proxies: dict[str, TcpProxy] = {}
            for name, given in hosts.items():
                config = {k: v for k, v in given.items() if k != "roots"}
                daemons[name] = await nursery.start(
                    _serve,
                    served[name],
                    {"CLAUDE_PATH": agents[name]},
                    config,
                    scopes[name],
                    stopped[name],
                )
                if name in proxied:
                    daemon = daemons[name]
                    proxy = tcp_proxy(daemon.host, daemon.port)
                    proxies[name] = await proxies_stack.enter_async_context(proxy)
            yield HostDaemons(roots, served, agents, daemons, proxies, scopes, stopped)
        nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def hosts_server(
    tmp_path: pathlib.Path, hosts: Mapping[str, Mapping[str, Any]] | HostDaemons
) -> AsyncIterator[HostsEnv]:
    """A runner with one host per daemon, and an MCP client; ``hosts``: the daemons to start
    for this block, or daemons that outlive it (:func:`host_daemons`)."""
    async with contextlib.AsyncExitStack() as stack:
        if not isinstance(hosts, HostDaemons):
            hosts = await stack.enter_async_context(host_daemons(tmp_path, hosts))
        table = hosts.table()
        registry = Registry()
        runner = TaskRunner(
            functools.partial(TaskStore, tmp_path / "state"),
            table[0].daemon,
            table[0].roots[0],
            listener=TaskNotices(registry),
            hosts=table,
        )
        await runner.store.load()
        register_tasks(registry, runner)
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            async with serving(registry) as url, httpx.AsyncClient(timeout=60) as http:
                client = Client(http, url)
                await client.initialize()
                yield HostsEnv(client, runner, hosts)
            nursery.cancel_scope.cancel()
