"""``coding-agent``: ``serve`` (the server alone), ``up`` (daemon + server), ``doctor``, ``token``,
and the task commands (``tasks``, ``show``, ``logs``, ``new``, ``send``, ``approve``,
``interrupt``, ``end``, ``merge``, ``discard``: see :mod:`mcp_server._console`).

Signals: the first SIGTERM/SIGINT drains (MCP requests in flight complete, running tasks get a
grace period, state is flushed, exit 0); a second one exits at once. After the grace ``serve``
detaches from the runs still in flight (the daemon keeps them for its detach grace; the next
server re-attaches), ``up`` records them ``interrupted`` (its daemon stops with it).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import logging
import os
import pathlib
import shlex
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import attrs
import trio

from host_daemon import (
    DAEMON_LOCK,
    DaemonConfig,
    StateLock,
    TokenError,
    become_subreaper,
    load_or_create_token,
    parse_rule,
    read_policy_file,
    resolve_worktrees_dir,
    serve_daemon,
    watch_shutdown_signals,
)
from mcp_server._core import Registry
from mcp_server._http import HttpSettings, raise_open_files_limit, serve
from mcp_server._notify import Notifier, NotifyConfig, check_notify_url

from ._cli_flags import count_flag, grace_flag, notify_flags, port_flag
from ._config import (
    DEFAULT_PORT,
    ConfigError,
    ServerConfig,
    add_budget_flags,
    add_daemon_flag,
    beside_up,
    budgets_config,
    daemon_specs,
    dashboard_settings,
    default_data_dir,
    forget_daemon_address,
    forget_mcp_url,
    mcp_token,
    notifications,
    parse_interval,
    parse_port,
    prepare_state_dir,
    record_daemon_address,
    record_mcp_url,
    serve_config,
    stored_mcp_token,
    tunnel_urls,
    up_hosts,
)
from ._console import COMMANDS as CONSOLE_COMMANDS
from ._console import add_console_commands, console_main
from ._doctor import doctor_main
from ._oauth import OAuthService, StateFileError, oauth_blueprint, oauth_main
from ._tasks import (
    DEFAULT_HOST,
    LIVE_IDLE_S,
    SWEEP_INTERVAL_S,
    Budgets,
    DaemonEndpoint,
    Host,
    Ledger,
    Spending,
    TaskNotices,
    TaskRunner,
    TaskStore,
    Workspace,
    recent_tasks,
    register_tasks,
)
from ._web import BoardHub, DashboardSettings, FanOut, dashboard_blueprint

log = logging.getLogger("mcp_server")


def build_parser() -> argparse.ArgumentParser:
    """The ``coding-agent`` command line."""
    parser = argparse.ArgumentParser(
        prog="coding-agent",
        description="Hand coding work from MCP clients to coding-agent CLIs on your host.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="run the MCP server alone (what the container runs)"
    )
    serve_parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve_parser.add_argument("--port", type=port_flag, help="MCP HTTP port (env PORT, 3000)")
    serve_parser.add_argument("--state-path", type=pathlib.Path, help="env STATE_PATH")
    serve_parser.add_argument("--daemon-host", help="env CLAUDE_PROXY_HOST")
    serve_parser.add_argument("--daemon-port", type=port_flag, help="env CLAUDE_PROXY_PORT")
    add_daemon_flag(
        serve_parser,
        "a host daemon (repeatable; env DAEMONS, ';'-separated); with none, the "
        "--daemon-host/--daemon-port daemon is the host 'default'",
    )
    serve_parser.add_argument(
        "--grace", type=grace_flag, default=5.0, help="seconds running tasks get at shutdown (5)"
    )
    add_budget_flags(serve_parser)
    notify_flags(serve_parser)
    up_parser = commands.add_parser(
        "up", help="run the host daemon and the MCP server together on loopback"
    )
    up_parser.add_argument("--port", type=port_flag, help="MCP HTTP port (env PORT, 3000)")
    up_parser.add_argument(
        "--state-path", type=pathlib.Path, help="state dir (env STATE_PATH, a user data dir)"
    )
    up_parser.add_argument(
        "--root",
        type=pathlib.Path,
        help="the directory agents may work in (default: the current directory)",
    )
    up_parser.add_argument(
        "--grace", type=grace_flag, default=5.0, help="seconds running tasks get at shutdown (5)"
    )
    up_parser.add_argument(
        "--max-runs", type=count_flag, default=8, help="agent runs at once; more wait queued (8)"
    )
    up_parser.add_argument(
        "--worktrees-dir",
        type=pathlib.Path,
        help="where tasks' git worktrees go: inside the root or under the state dir "
        "(default STATE/worktrees)",
    )
    up_parser.add_argument(
        "--allow-rule",
        action="append",
        default=[],
        type=_rule,
        metavar="RULE",
        help="allow an agent's permission request at once, e.g. 'Bash(pytest:*)' (repeatable)",
    )
    up_parser.add_argument(
        "--deny-rule",
        action="append",
        default=[],
        type=_rule,
        metavar="RULE",
        help="deny an agent's permission request at once, e.g. 'Bash(rm:*)' (repeatable)",
    )
    up_parser.add_argument(
        "--policy-file",
        type=pathlib.Path,
        help="TOML with allow = [...] and deny = [...] rules, added to the flags'",
    )
    add_daemon_flag(up_parser, "a host daemon beside up's own 'default' (repeatable; env DAEMONS)")
    add_budget_flags(up_parser)
    notify_flags(up_parser)
    commands.add_parser("doctor", help="check the installation", add_help=False)
    commands.add_parser("oauth", help="OAuth: consent password, granted clients", add_help=False)
    token_parser = commands.add_parser(
        "token", help="print the MCP bearer token (MCP_AUTH_TOKEN, else the state directory's)"
    )
    token_parser.add_argument("--state-path", type=pathlib.Path, help="env STATE_PATH")
    add_console_commands(commands)
    return parser


async def run_server(
    config: ServerConfig,
    *,
    shutdown: trio.Event,
    detach_runs: bool = True,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Load the tasks, serve MCP (and the dashboard at ``/``) until ``shutdown``, then give runs
    their grace, detach from them (the daemon keeps them; ``detach_runs=False``: stop them, as
    ``up`` does, whose daemon stops too) and flush."""
    registry = Registry()
    hub = BoardHub()
    notifier = Notifier(config.notify, config.state_path)
    runner = TaskRunner(
        functools.partial(TaskStore, config.state_path),
        config.daemon,
        config.workspace,
        listener=FanOut([TaskNotices(registry), hub, notifier]),
        sweep_interval_s=config.sweep_interval_s,
        live_idle_s=config.live_idle_s,
        spending=Spending(Ledger(config.state_path), config.budgets),
        hosts=config.hosts,
    )
    await runner.store.load()
    tools = register_tasks(
        registry,
        runner,
        features=config.features,
        status_sections={"notifications": notifier.status_view},
        check_notify_url=functools.partial(check_notify_url, config=config.notify),
    )
    oauth = OAuthService(config.state_path, config.auth_token)
    await oauth.load()
    settings = HttpSettings(
        access_tokens=oauth.verify,
        host=config.host,
        port=config.port,
        auth_token=config.auth_token,
        public_urls=config.public_urls,
        graceful_timeout_s=config.http_graceful_s,
        state_dir=config.state_path,
        instructions=(
            "Create coding tasks with create_task, follow them with wait_task or the "
            "task:// resources, send follow-ups with update_task, close them with end_task. "
            "A task in a git repository works in a worktree of its own: review its "
            "task://{id}/diff, then merge_task or discard_task."
        ),
    )
    dashboard = dashboard_blueprint(tools, hub, settings, config.dashboard, oauth=oauth)
    served = trio.Event()
    http_shutdown = trio.Event()

    async def serve_http(*, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(
                registry,
                settings,
                shutdown=http_shutdown,
                blueprints=[oauth_blueprint(oauth, settings), dashboard],
                on_drain=[hub.drain],
                task_status=task_status,
            )
        finally:
            served.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        await nursery.start(oauth.run)
        urls: list[str] = await nursery.start(serve_http)
        notifier.dashboard_url = (config.public_urls or urls)[0]
        # What changed while no notifier listened: the tasks in memory and those updated in
        # the last day (a task at rest changed before that was heard before it rested).
        since = runner.clock.wall() - datetime.timedelta(days=1)
        changed = await recent_tasks(runner.store, since)
        await nursery.start(notifier.run, lambda: changed)
        task_status.started(urls)
        await shutdown.wait()
        # Runs first: calls waiting on them (wait_task, MCP tasks) then answer before the
        # transport drains, so requests in flight complete.
        await runner.shutdown(config.grace_s, detach=detach_runs)
        await notifier.flush()
        http_shutdown.set()
        await served.wait()
        nursery.cancel_scope.cancel()
    await runner.store.close()  # the index's database, checkpointed


def _print(*lines: str) -> None:
    for line in lines:
        print(line)
    sys.stdout.flush()


def _mcp_url(urls: list[str]) -> str:
    return urls[0].rstrip("/") + "/mcp"


def _dashboard_url(urls: list[str]) -> str:
    return urls[0].rstrip("/") + "/"


async def _serve_main(config: ServerConfig, lock: StateLock) -> int:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(watch_shutdown_signals, shutdown, nursery.cancel_scope, log)
        server = _Service(functools.partial(run_server, config, shutdown=shutdown))
        urls = await nursery.start(server.run)
        lock.record(_mcp_url(urls))
        # doctor and the task CLI beside the server (in its container) find it here.
        local_url = _loopback_url(_mcp_url(urls))
        record_mcp_url(config.state_path, local_url)
        try:
            _print(f"MCP URL: {_mcp_url(urls)}", f"Dashboard: {_dashboard_url(urls)}")
            hosts = config.hosts or (Host(DEFAULT_HOST, config.daemon, (config.workspace,)),)
            for host in hosts:
                log.info("serving; host %s", host.roots_text())
            await server.done.wait()
            nursery.cancel_scope.cancel()
        finally:
            forget_mcp_url(config.state_path, local_url)
    return 0


def _loopback_url(url: str) -> str:
    """``url`` with a wildcard bind address (``0.0.0.0``, ``[::]``) as its loopback twin: the
    address a client on this host reaches and the Host fence admits."""
    parts = urllib.parse.urlsplit(url)
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}  # noqa: S104 (read, not bound)
    host = parts.hostname or ""
    if host not in wildcard:
        return url
    netloc = wildcard[host] + (f":{parts.port}" if parts.port is not None else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _Service:
    """A long-running ``start``-able function whose end the parent can wait for."""

    def __init__(self, run: Callable[..., Awaitable[None]]) -> None:
        self._run = run
        self.done = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._run(task_status=task_status)
        finally:
            self.done.set()


@attrs.frozen
class _UpPlan:
    state: pathlib.Path
    root: pathlib.Path
    daemon_token: str = attrs.field(repr=False)
    daemon_port: int
    port: int
    auth_token: str = attrs.field(repr=False)
    grace_s: float
    max_runs: int
    worktrees_dir: str
    sweep_interval_s: float
    live_idle_s: float
    dashboard: DashboardSettings
    notify: NotifyConfig
    allow_rules: tuple[str, ...] = ()
    deny_rules: tuple[str, ...] = ()
    public_urls: tuple[str, ...] = ()
    budgets: Budgets = attrs.field(factory=Budgets)
    hosts: tuple[Host, ...] = ()
    """The ``--daemon`` hosts beside up's own."""


def _plan_up(args: argparse.Namespace, environ: Mapping[str, str]) -> _UpPlan:
    """Everything ``up`` needs that touches the disk, resolved before the event loop starts."""
    state = prepare_state_dir(
        args.state_path or pathlib.Path(environ.get("STATE_PATH") or default_data_dir(environ))
    )
    root = pathlib.Path(os.path.realpath(args.root or os.getcwd()))
    if not root.is_dir():
        raise ConfigError(f"--root {root} is not a directory")
    token = load_or_create_token(state / "daemon.token")
    return _UpPlan(
        state=state,
        root=root,
        daemon_token=token,
        hosts=up_hosts(daemon_specs(args.daemon, environ), root, token),
        daemon_port=parse_port(environ.get("CLAUDE_PROXY_PORT") or "0", "CLAUDE_PROXY_PORT"),
        port=args.port
        if args.port is not None
        else parse_port(environ.get("PORT", str(DEFAULT_PORT)), "PORT"),
        auth_token=mcp_token(environ, state),
        grace_s=args.grace,
        max_runs=args.max_runs,
        worktrees_dir=_up_worktrees_dir(args.worktrees_dir, state, root),
        sweep_interval_s=parse_interval(environ, "WORKTREE_SWEEP_INTERVAL_S", SWEEP_INTERVAL_S),
        live_idle_s=parse_interval(environ, "LIVE_IDLE_S", LIVE_IDLE_S),
        dashboard=dashboard_settings(environ),
        public_urls=tunnel_urls(environ),
        budgets=budgets_config(environ, args),
        notify=notifications(environ, state, args.webhook_url, args.notify_allowed_host),
        **_up_policy(args),
    )


def _up_policy(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    """The daemon's approval rules from ``--allow-rule``, ``--deny-rule`` and ``--policy-file``."""
    allow, deny = list(args.allow_rule), list(args.deny_rule)
    if args.policy_file is not None:
        try:
            file_allow, file_deny = read_policy_file(args.policy_file)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        allow += file_allow
        deny += file_deny
    return {"allow_rules": tuple(dict.fromkeys(allow)), "deny_rules": tuple(dict.fromkeys(deny))}


def _rule(value: str) -> str:
    """``--allow-rule``/``--deny-rule``: one rule in Claude's syntax, checked now."""
    try:
        parse_rule(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value.strip()


def _up_worktrees_dir(given: pathlib.Path | None, state: pathlib.Path, root: pathlib.Path) -> str:
    try:
        return resolve_worktrees_dir(given, state, (str(root),))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def _up_main(plan: _UpPlan, lock: StateLock) -> int:
    daemon_config = DaemonConfig(
        token=plan.daemon_token,
        roots=(str(plan.root),),
        listen=(("127.0.0.1", plan.daemon_port),),
        grace_s=plan.grace_s,
        max_runs=plan.max_runs,
        state_dir=str(plan.state),
        worktrees_dir=plan.worktrees_dir,
        allow_rules=plan.allow_rules,
        deny_rules=plan.deny_rules,
    )
    shutdown = trio.Event()
    daemon_shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(watch_shutdown_signals, shutdown, nursery.cancel_scope, log)
        daemon = _Service(functools.partial(serve_daemon, daemon_config, shutdown=daemon_shutdown))
        addresses = await nursery.start(daemon.run)
        daemon_host, bound_port = addresses[0]
        config = ServerConfig(
            host="127.0.0.1",
            port=plan.port,
            state_path=plan.state,
            workspace=Workspace(
                client_root=PurePosixPath(plan.root), host_root=PurePosixPath(plan.root)
            ),
            daemon=DaemonEndpoint(host=daemon_host, port=bound_port, token=plan.daemon_token),
            auth_token=plan.auth_token,
            hosts=beside_up(plan.hosts, plan.root, daemon_host, bound_port, plan.daemon_token),
            grace_s=plan.grace_s,
            sweep_interval_s=plan.sweep_interval_s,
            live_idle_s=plan.live_idle_s,
            dashboard=plan.dashboard,
            public_urls=plan.public_urls,
            budgets=plan.budgets,
            notify=plan.notify,
        )
        # The daemon stops with the server: the runs end with it, recorded interrupted at once.
        serve = functools.partial(run_server, config, shutdown=shutdown, detach_runs=False)
        server = _Service(serve)
        urls = await nursery.start(server.run)
        url = _mcp_url(urls)
        # The task CLI finds the server through this file (and the token beside it); doctor
        # the daemon through its address file.
        daemon_address = record_daemon_address(plan.state, daemon_host, bound_port)
        record_mcp_url(plan.state, url)
        lock.record(url)
        try:
            _print(
                f"MCP URL: {url}",
                f"Bearer token: {config.auth_token}",
                f"Dashboard: {_dashboard_url(urls)} (log in with the bearer token)",
                f"Daemon: {daemon_host}:{bound_port} (agents work in {plan.root})",
                f"State: {plan.state}",
                "Add it to Claude Code with:",
                f"  claude mcp add --transport http coding-agent {url} "
                f'--header "Authorization: Bearer {config.auth_token}"',
            )
            await server.done.wait()
        finally:
            forget_mcp_url(plan.state, url)
            forget_daemon_address(plan.state, daemon_address)
        daemon_shutdown.set()
        await daemon.done.wait()
        nursery.cancel_scope.cancel()
    return 0


def _token_main(argv: list[str]) -> int:
    """``coding-agent token``: print the bearer token MCP clients must send; 1 when none yet."""
    args = build_parser().parse_args(["token", *argv])
    try:
        print(stored_mcp_token(os.environ, args.state_path))
    except ConfigError as exc:
        print(f"coding-agent token: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coding-agent`` console script and ``python -m mcp_server``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    tools: dict[str, Callable[[list[str]], int]] = {
        "doctor": doctor_main,
        "token": _token_main,
        "oauth": oauth_main,
    }
    if arguments and arguments[0] in tools:
        return tools[arguments[0]](arguments[1:])
    args = build_parser().parse_args(arguments)
    if args.command in CONSOLE_COMMANDS:
        return console_main(args)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Each connection is a descriptor: take what the hard limit allows (serve and up alike).
    raise_open_files_limit()
    try:
        if args.command == "serve":
            config = serve_config(
                os.environ,
                host=args.host,
                port=args.port,
                state_path=args.state_path,
                daemon_host=args.daemon_host,
                daemon_port=args.daemon_port,
                grace_s=args.grace,
                webhook_urls=args.webhook_url,
                notify_allowed_hosts=args.notify_allowed_host,
                daemons=args.daemon,
            )
            config = attrs.evolve(config, budgets=budgets_config(os.environ, args))
            with StateLock.acquire(config.state_path, _command_line(arguments)) as lock:
                return trio.run(_serve_main, config, lock)
        plan = _plan_up(args, os.environ)
        try:
            # The daemon runs in this process: orphans of a run are reparented here to be killed.
            become_subreaper()
        except OSError as exc:
            log.warning("cannot become a child subreaper: %s", exc)
        # One lock for the server, one for the daemon that runs in this process.
        command = _command_line(arguments)
        with (
            StateLock.acquire(plan.state, command) as lock,
            StateLock.acquire(plan.state, command, DAEMON_LOCK),
        ):
            return trio.run(_up_main, plan, lock)
    except (ConfigError, TokenError, OSError) as exc:
        print(f"coding-agent: {exc}", file=sys.stderr)
        return 2
    except BaseExceptionGroup as group:
        # trio reports a failed start (e.g. the port is taken) as a group: say it in one line.
        found = _first_os_error(group)
        if found is None:
            raise
        print(f"coding-agent: {found}", file=sys.stderr)
        return 2


def _command_line(arguments: list[str]) -> str:
    return shlex.join(["coding-agent", *arguments])


def _first_os_error(error: BaseException) -> OSError | StateFileError | None:
    if isinstance(error, (OSError, StateFileError)):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _first_os_error(inner)
            if found is not None:
                return found
    return None
