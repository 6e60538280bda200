"""The MCP server's configuration: environment variables (``STATE_PATH``, …) and flags.

Flags win over the environment. Nothing here logs a token.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath

import attrs

from host_daemon import (
    default_state_dir,
    default_token_file,
    load_or_create_token,
    token_from_environment,
)

from ._notify import NotifyConfig, NotifyConfigError, notify_config
from ._tasks import (
    DEFAULT_HOST,
    HOST_NAME,
    LIVE_IDLE_S,
    SWEEP_INTERVAL_S,
    Budgets,
    DaemonEndpoint,
    Host,
    Workspace,
)
from ._web import DashboardSettings

CONTAINER_WORKSPACE = PurePosixPath("/workspace")
DEFAULT_PORT = 3000
DEFAULT_DAEMON_HOST = "host.docker.internal"
DEFAULT_DAEMON_PORT = 9876
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable or flag."""


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    """A boolean variable: true/false, 1/0, yes/no, on/off (unset is false)."""
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {environ[name]!r}")


def parse_port(value: str, name: str, *, allow_zero: bool = True) -> int:
    """A TCP port number (0 = any free port, when allowed)."""
    digits = value.isascii() and value.isdigit()  # isdigit() alone admits '²' and '٣'
    if not digits or not (0 if allow_zero else 1) <= int(value) <= 65535:
        raise ConfigError(f"{name} must be a port number, got {value!r}")
    return int(value)


def parse_interval(environ: Mapping[str, str], name: str, default: float) -> float:
    """A positive number of seconds (unset: ``default``)."""
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


def default_data_dir(environ: Mapping[str, str] = os.environ) -> pathlib.Path:
    """``$XDG_DATA_HOME/coding-agent`` (``~/.local/share/coding-agent`` when unset)."""
    base = environ.get("XDG_DATA_HOME") or str(pathlib.Path.home() / ".local" / "share")
    return pathlib.Path(base) / "coding-agent"


@attrs.frozen
class ServerConfig:
    """What ``coding-agent serve`` (and the server half of ``up``) runs with."""

    host: str
    port: int
    state_path: pathlib.Path
    workspace: Workspace
    daemon: DaemonEndpoint
    auth_token: str = attrs.field(repr=False)
    hosts: tuple[Host, ...] = ()
    """The host daemons (``--daemon``, ``DAEMONS``); none: ``daemon`` serving ``workspace``,
    as the host ``default``."""
    public_urls: tuple[str, ...] = ()
    features: Mapping[str, bool] = attrs.field(factory=dict)
    grace_s: float = 5.0
    http_graceful_s: float = 8.0
    sweep_interval_s: float = SWEEP_INTERVAL_S
    """How often worktrees whose task is gone are swept (``WORKTREE_SWEEP_INTERVAL_S``)."""
    live_idle_s: float = LIVE_IDLE_S
    """How long a live task's agent stays alive without a turn (``LIVE_IDLE_S``; the daemon's
    own limit caps it)."""
    dashboard: DashboardSettings = attrs.field(factory=DashboardSettings)
    """The dashboard's logins (``DASHBOARD_SESSION_IDLE_S``: how long an unused one lasts)."""
    budgets: Budgets = attrs.field(factory=Budgets)
    """The day budgets (``BUDGET_PROJECT_DAY_USD``, ``BUDGET_SERVER_DAY_USD``)."""
    notify: NotifyConfig = attrs.field(factory=NotifyConfig)
    """Webhooks and their signing secret (``WEBHOOK_URLS``, ``--webhook-url``, …)."""


def prepare_state_dir(path: pathlib.Path) -> pathlib.Path:
    """Create the state directory (0700) and return its absolute path."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the state directory {path}: {exc.strerror}") from None
    return path.absolute()


def mcp_token(environ: Mapping[str, str], state_path: pathlib.Path) -> str:
    """``MCP_AUTH_TOKEN``, else the token stored (0600) in the state dir, made on first use."""
    token = environ.get("MCP_AUTH_TOKEN", "").strip()
    return token or load_or_create_token(state_path / "mcp.token")


def stored_mcp_token(environ: Mapping[str, str], state_path: pathlib.Path | None = None) -> str:
    """The bearer token a running server accepts, read only: ``MCP_AUTH_TOKEN``, else the one
    in the state directory (``--state-path``, else ``STATE_PATH``, else the user data dir)."""
    token = environ.get("MCP_AUTH_TOKEN", "").strip()
    if token:
        return token
    state = state_path or pathlib.Path(environ.get("STATE_PATH") or default_data_dir(environ))
    path = state / "mcp.token"
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"no MCP token: MCP_AUTH_TOKEN is unset and {path} cannot be read ({exc.strerror}); "
            "start the server once, it creates the file"
        ) from None
    if not token:
        raise ConfigError(f"no MCP token: MCP_AUTH_TOKEN is unset and {path} is empty")
    return token


def workspace_from_env(environ: Mapping[str, str]) -> Workspace:
    """``/workspace`` → ``HOST_FILE_ROOT`` in a container; else ``PROJECTS_PATH`` or the cwd."""
    host_root = environ.get("HOST_FILE_ROOT", "").strip()
    if host_root:
        if not host_root.startswith("/"):
            raise ConfigError(f"HOST_FILE_ROOT must be an absolute path, got {host_root!r}")
        return Workspace(client_root=CONTAINER_WORKSPACE, host_root=PurePosixPath(host_root))
    root = PurePosixPath(os.path.realpath(environ.get("PROJECTS_PATH") or os.getcwd()))
    return Workspace(client_root=root, host_root=root)


def serve_config(
    environ: Mapping[str, str],
    *,
    host: str | None = None,
    port: int | None = None,
    state_path: pathlib.Path | None = None,
    daemon_host: str | None = None,
    daemon_port: int | None = None,
    grace_s: float = 5.0,
    webhook_urls: Sequence[str] = (),
    notify_allowed_hosts: Sequence[str] = (),
    daemons: Sequence[str] = (),
) -> ServerConfig:
    """The ``serve`` configuration from the environment, flags overriding (``daemons``: the
    ``--daemon`` flags)."""
    state = prepare_state_dir(
        state_path or pathlib.Path(environ.get("STATE_PATH") or default_data_dir(environ))
    )
    public_urls = tunnel_urls(environ)
    workspace = workspace_from_env(environ)
    # On the host, serve and the daemon read the same default token file; the container is
    # given DAEMON_TOKEN_FILE (the daemon's file, mounted read-only).
    daemon_token = functools.cache(
        lambda: token_from_environment(
            environ, default_file=default_token_file(default_state_dir(environ))
        )
    )
    hosts = configured_hosts(daemon_specs(daemons, environ), workspace, daemon_token)
    return ServerConfig(
        host=host or "127.0.0.1",
        port=port
        if port is not None
        else parse_port(environ.get("PORT", str(DEFAULT_PORT)), "PORT"),
        state_path=state,
        workspace=workspace,
        daemon=hosts[0].daemon
        if hosts
        else DaemonEndpoint(
            host=daemon_host or environ.get("CLAUDE_PROXY_HOST") or DEFAULT_DAEMON_HOST,
            port=daemon_port
            if daemon_port is not None
            else parse_port(
                environ.get("CLAUDE_PROXY_PORT", str(DEFAULT_DAEMON_PORT)),
                "CLAUDE_PROXY_PORT",
                allow_zero=False,
            ),
            token=daemon_token(),
        ),
        hosts=hosts,
        auth_token=mcp_token(environ, state),
        public_urls=public_urls,
        features={
            "claude_available": env_flag(environ, "CLAUDE_AVAILABLE"),
            "git_available": env_flag(environ, "GIT_AVAILABLE"),
            "tunnel_enabled": bool(public_urls),
        },
        grace_s=grace_s,
        sweep_interval_s=parse_interval(environ, "WORKTREE_SWEEP_INTERVAL_S", SWEEP_INTERVAL_S),
        live_idle_s=parse_interval(environ, "LIVE_IDLE_S", LIVE_IDLE_S),
        dashboard=dashboard_settings(environ),
        notify=notifications(environ, state, webhook_urls, notify_allowed_hosts),
    )


DAEMON_SPEC = "NAME=HOST:PORT[,token_file=PATH][,roots=/a:/b]"
"""The shape of a ``--daemon`` flag and of each ``;``-separated item of ``DAEMONS``."""


@attrs.frozen
class DaemonSpec:
    """One configured host daemon, as written (its token not read yet)."""

    name: str
    host: str
    port: int
    where: str
    """The flag or variable it came from, for errors (``--daemon``, ``DAEMONS``)."""
    token_file: pathlib.Path | None = None
    roots: tuple[PurePosixPath, ...] = ()


def parse_daemon(text: str, where: str) -> DaemonSpec:
    """``NAME=HOST:PORT[,token_file=PATH][,roots=/a:/b]`` (``where``: the flag or variable)."""
    name, equals, rest = text.strip().partition("=")
    address, *options = rest.split(",")
    host, colon, port = address.strip().rpartition(":")
    if not (equals and colon and name.strip() and host):
        raise ConfigError(f"expected {DAEMON_SPEC}, got {text.strip()[:200]!r} @ {where}")
    name = name.strip()
    if not HOST_NAME.fullmatch(name):
        raise ConfigError(
            f"expected a host name of letters, digits and _.- (at most 64, starting with a "
            f"letter or digit), got {name[:80]!r} @ {where}"
        )
    here = f"{where} {name}"
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(f"expected a port number 1..65535, got {port[:20]!r} @ {here}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # an IPv6 address in brackets
    found: dict[str, str] = {}
    for option in options:
        key, equals, value = (part.strip() for part in option.partition("="))
        if key not in ("token_file", "roots") or not equals or not value or key in found:
            raise ConfigError(
                f"expected token_file=PATH or roots=/a:/b (each once), got "
                f"{option.strip()[:200]!r} @ {here}"
            )
        found[key] = value
    roots = tuple(PurePosixPath(root) for root in found.get("roots", "").split(":") if root)
    for root in roots:
        if not root.is_absolute() or ".." in root.parts:
            raise ConfigError(f"expected absolute roots without '..', got {str(root)!r} @ {here}")
    token_file = found.get("token_file")
    return DaemonSpec(
        name,
        host,
        int(port),
        where,
        None if token_file is None else pathlib.Path(token_file),
        roots,
    )


def add_daemon_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--daemon NAME=HOST:PORT[,token_file=PATH][,roots=/a:/b]`` (repeatable)."""
    parser.add_argument(
        "--daemon", action="append", default=[], metavar=DAEMON_SPEC, help=help_text
    )


def daemon_specs(flags: Sequence[str], environ: Mapping[str, str]) -> list[DaemonSpec]:
    """The ``--daemon`` flags, else the ``;``-separated ``DAEMONS`` (flags win); a name given
    twice is an error."""
    if flags:
        specs = [parse_daemon(flag, "--daemon") for flag in flags]
    else:
        items = environ.get("DAEMONS", "").split(";")
        specs = [parse_daemon(item, "DAEMONS") for item in items if item.strip()]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(
                f"expected each host named once, got {spec.name} twice @ {spec.where}"
            )
        seen.add(spec.name)
    return specs


def read_token_file(path: pathlib.Path, where: str) -> str:
    """A daemon's token from its file (read only: another host's daemon made it)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"expected a readable token file, got {path} ({exc.strerror}) @ {where}"
        ) from None
    if not token:
        raise ConfigError(f"expected a token in {path}, got an empty file @ {where}")
    return token


def configured_hosts(
    specs: Sequence[DaemonSpec], workspace: Workspace, default_token: Callable[[], str]
) -> tuple[Host, ...]:
    """The hosts of ``specs``: a host without ``token_file`` uses ``default_token()`` (the
    single daemon's token), one without ``roots`` serves ``workspace``."""
    hosts = []
    for spec in specs:
        here = f"{spec.where} {spec.name}"
        token = (
            default_token() if spec.token_file is None else read_token_file(spec.token_file, here)
        )
        roots = tuple(Workspace(root, root) for root in spec.roots) or (workspace,)
        hosts.append(Host(spec.name, DaemonEndpoint(spec.host, spec.port, token), roots))
    return tuple(hosts)


def up_hosts(specs: Sequence[DaemonSpec], root: pathlib.Path, token: str) -> tuple[Host, ...]:
    """``up``'s ``--daemon`` hosts, beside its own daemon (``default``; its token is theirs
    unless ``token_file``; its root, unless ``roots``)."""
    for spec in specs:
        if spec.name == DEFAULT_HOST:
            raise ConfigError(f"expected a name other than up's own 'default' @ {spec.where}")
    workspace = Workspace(PurePosixPath(root), PurePosixPath(root))
    return configured_hosts(specs, workspace, lambda: token)


def beside_up(
    hosts: Sequence[Host], root: pathlib.Path, host: str, port: int, token: str
) -> tuple[Host, ...]:
    """``up``'s own daemon as the host ``default``, then ``hosts`` (none: ``()``, the single
    daemon)."""
    if not hosts:
        return ()
    own = Workspace(PurePosixPath(root), PurePosixPath(root))
    return (Host(DEFAULT_HOST, DaemonEndpoint(host, port, token), (own,)), *hosts)


def notifications(
    environ: Mapping[str, str],
    state: pathlib.Path,
    webhook_urls: Sequence[str],
    allowed_hosts: Sequence[str],
) -> NotifyConfig:
    """The notification settings (``serve`` and ``up``), a bad one a :class:`ConfigError`."""
    try:
        return notify_config(environ, state, urls=webhook_urls, allowed_hosts=allowed_hosts)
    except NotifyConfigError as exc:
        raise ConfigError(str(exc)) from None


def tunnel_urls(environ: Mapping[str, str]) -> tuple[str, ...]:
    """``TUNNEL_URL`` when ``TUNNEL_ENABLED`` (the public URL a tunnel gives this server)."""
    if not env_flag(environ, "TUNNEL_ENABLED"):
        return ()
    tunnel = environ.get("TUNNEL_URL", "").strip()
    if not tunnel:
        raise ConfigError("TUNNEL_ENABLED is set but TUNNEL_URL is not")
    return (tunnel,)


def dashboard_settings(environ: Mapping[str, str]) -> DashboardSettings:
    """The dashboard's settings from the environment (``DASHBOARD_SESSION_IDLE_S``)."""
    return DashboardSettings(
        session_idle_s=parse_interval(
            environ, "DASHBOARD_SESSION_IDLE_S", DashboardSettings().session_idle_s
        )
    )


URL_FILE = "mcp.url"
"""Where ``coding-agent up`` records its MCP URL (beside ``mcp.token``) while it runs."""


DAEMON_ADDRESS_FILE = "daemon.address"
"""Where ``coding-agent up`` records its daemon's ``HOST:PORT`` while it runs (for doctor)."""
DAEMON_TOKEN_FILE = "daemon.token"  # noqa: S105 (a file name, not a secret)
"""The daemon token ``coding-agent up`` keeps in its state dir."""


def _record(state_path: pathlib.Path, name: str, text: str) -> pathlib.Path:
    """Write ``text`` to the state dir's file ``name`` (0600, replaced atomically); its path."""
    path = state_path / name
    partial = state_path / f".{name}.{os.getpid()}"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text + "\n")
    os.replace(partial, path)
    return path


def _forget(state_path: pathlib.Path, name: str, text: str) -> None:
    """Remove the file ``name`` if it still holds ``text`` (another ``up`` may have replaced it)."""
    path = state_path / name
    try:
        if path.read_text(encoding="utf-8").strip() == text:
            path.unlink()
    except OSError:
        pass  # already gone, or unreadable: nothing of ours to remove


def _stored(state_path: pathlib.Path, name: str) -> str | None:
    try:
        text = (state_path / name).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def record_mcp_url(state_path: pathlib.Path, url: str) -> pathlib.Path:
    """Write ``url`` to the state dir's URL file (0600, replaced atomically); its path."""
    return _record(state_path, URL_FILE, url)


def forget_mcp_url(state_path: pathlib.Path, url: str) -> None:
    """Remove the URL file if it still names ``url`` (another ``up`` may have replaced it)."""
    _forget(state_path, URL_FILE, url)


def stored_mcp_url(state_path: pathlib.Path) -> str | None:
    """The URL a running ``coding-agent up`` recorded in ``state_path``, if any."""
    return _stored(state_path, URL_FILE)


def record_daemon_address(state_path: pathlib.Path, host: str, port: int) -> str:
    """Record where ``up``'s daemon listens (``HOST:PORT``, beside its token file); the text."""
    address = f"{host}:{port}"
    _record(state_path, DAEMON_ADDRESS_FILE, address)
    return address


def forget_daemon_address(state_path: pathlib.Path, address: str) -> None:
    """Remove the daemon address file if it still holds ``address``."""
    _forget(state_path, DAEMON_ADDRESS_FILE, address)


def stored_daemon_address(state_path: pathlib.Path) -> tuple[str, int] | None:
    """The daemon address a running ``up`` recorded in ``state_path``; ConfigError when the
    file holds something else than ``HOST:PORT``."""
    text = _stored(state_path, DAEMON_ADDRESS_FILE)
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    if not host:
        raise ConfigError(
            f"expected HOST:PORT, got {text[:64]!r} @ {state_path / DAEMON_ADDRESS_FILE}"
        )
    return host, parse_port(port, str(state_path / DAEMON_ADDRESS_FILE), allow_zero=False)


def parse_budget(value: str | None, name: str) -> float | None:
    """A budget in US dollars: a number >= 0 (unset or empty: no budget)."""
    if value is None or not value.strip():
        return None
    try:
        dollars = float(value)
    except ValueError:
        dollars = math.nan
    if not (math.isfinite(dollars) and dollars >= 0):
        raise ConfigError(f"{name} must be a number of US dollars >= 0, got {value!r}")
    return dollars


def add_budget_flags(parser: argparse.ArgumentParser) -> None:
    """``--budget-project-day-usd`` and ``--budget-server-day-usd`` (``serve`` and ``up``)."""
    parser.add_argument(
        "--budget-project-day-usd",
        metavar="USD",
        help="what one project may spend a UTC day; more runs wait queued "
        "(env BUDGET_PROJECT_DAY_USD; default none)",
    )
    parser.add_argument(
        "--budget-server-day-usd",
        metavar="USD",
        help="what the server may spend a UTC day (env BUDGET_SERVER_DAY_USD; default none)",
    )


def budgets_config(environ: Mapping[str, str], args: argparse.Namespace) -> Budgets:
    """The day budgets: the flags, else ``BUDGET_PROJECT_DAY_USD``/``BUDGET_SERVER_DAY_USD``."""
    project = getattr(args, "budget_project_day_usd", None)
    server = getattr(args, "budget_server_day_usd", None)
    return Budgets(
        project_day_usd=parse_budget(project, "--budget-project-day-usd")
        if project is not None
        else parse_budget(environ.get("BUDGET_PROJECT_DAY_USD"), "BUDGET_PROJECT_DAY_USD"),
        server_day_usd=parse_budget(server, "--budget-server-day-usd")
        if server is not None
        else parse_budget(environ.get("BUDGET_SERVER_DAY_USD"), "BUDGET_SERVER_DAY_USD"),
    )
