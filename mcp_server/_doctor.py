"""``coding-agent doctor``: check a deployment end to end, in plain words, with a fix per failure.

It checks what the server depends on, from where the server runs (inside the container with
``docker compose exec mcp-server coding-agent doctor``, or on the host): the daemon's token, the
daemon answering with it, the agent CLIs the daemon found, the workspace mapping
(``HOST_FILE_ROOT`` seen as ``/workspace``), the state directory, and the MCP server answering
``initialize`` and ``tools/list`` with its bearer token (in both protocol eras).

Next to a running ``coding-agent up`` it finds what ``up`` recorded in its state dir: the
daemon's address (``daemon.address``) and token (``daemon.token``), the MCP URL (``mcp.url``)
and token (``mcp.token``). Flags and environment variables still win.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Literal

import attrs
import httpx
import trio

from host_daemon import (
    AuthenticationFailed,
    DaemonError,
    DaemonUnavailable,
    ProbeInfo,
    default_state_dir,
    default_token_file,
    probe,
)

from ._config import (
    CONTAINER_WORKSPACE,
    DAEMON_ADDRESS_FILE,
    DAEMON_TOKEN_FILE,
    DEFAULT_DAEMON_PORT,
    URL_FILE,
    ConfigError,
    DaemonSpec,
    add_daemon_flag,
    daemon_specs,
    default_data_dir,
    parse_port,
    stored_daemon_address,
    stored_mcp_token,
    stored_mcp_url,
)
from ._console._client import (
    CONNECT_TIMEOUT_S,
    ConsoleError,
    McpSession,
    Refused,
    Unreachable,
    open_session,
)

Status = Literal["ok", "warn", "fail"]
_LABELS: Mapping[Status, str] = {"ok": "[ ok ]", "warn": "[warn]", "fail": "[FAIL]"}


@attrs.frozen
class Check:
    """One finding: what was checked, how it went, and how to fix it when it did not."""

    name: str
    status: Status
    detail: str
    fix: str | None = None


@attrs.frozen
class DoctorSettings:
    """Where to look; each field comes from a flag, else the server's environment variable."""

    daemon_host: str
    daemon_port: int
    token: str | None = attrs.field(repr=False)
    token_source: str
    state_path: pathlib.Path
    workspace: pathlib.Path
    host_file_root: str | None
    timeout: float = 10.0
    daemon_source: str = "the default"
    """Where the daemon's address came from (a flag, a variable, what ``up`` recorded)."""
    mcp_url: str | None = None
    mcp_url_source: str = ""
    mcp_token: str | None = attrs.field(default=None, repr=False)
    mcp_token_source: str = ""
    hosts: tuple[DaemonSpec, ...] = ()
    """Several host daemons (``--daemon``, ``DAEMONS``): each is checked, not the single one."""


def _read_token(
    environ: Mapping[str, str], token_file: str | None, up_token_file: pathlib.Path | None = None
) -> tuple[str | None, str]:
    """The daemon token and where it came from: ``--token-file``, ``DAEMON_TOKEN``,
    ``DAEMON_TOKEN_FILE``, the one of a running ``up`` (``up_token_file``), the daemon's default
    file. Never creates a token (that would hide a fault)."""
    if token_file is None and environ.get("DAEMON_TOKEN", "").strip():
        return environ["DAEMON_TOKEN"].strip(), "DAEMON_TOKEN"
    path = pathlib.Path(
        token_file
        or environ.get("DAEMON_TOKEN_FILE")
        or up_token_file
        or default_token_file(default_state_dir())
    )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None, str(path)
    return (token or None), str(path)


def check_token(settings: DoctorSettings) -> Check:
    """The shared token can be read."""
    if settings.token is not None:
        return Check("token", "ok", f"daemon token read from {settings.token_source}")
    return Check(
        "token",
        "fail",
        f"no daemon token in {settings.token_source} (missing, empty or unreadable)",
        "start the daemon once (it creates its token file, mode 0600), and point "
        "DAEMON_TOKEN_FILE (or --token-file) at the daemon's --token-file; in the container "
        "the file is mounted as /run/secrets/daemon_token and must be readable by its uid "
        "(build with CODING_AGENT_UID=$(id -u))",
    )


async def check_daemon(settings: DoctorSettings) -> tuple[Check, ProbeInfo | None]:
    """The daemon answers a probe, authenticated with the token."""
    where = f"{settings.daemon_host}:{settings.daemon_port} ({settings.daemon_source})"
    if settings.token is None:
        return Check(
            "daemon", "fail", f"not tried at {where}: no token", "fix the token first"
        ), None
    try:
        info = await probe(
            settings.daemon_host, settings.daemon_port, settings.token, timeout=settings.timeout
        )
    except AuthenticationFailed:
        return Check(
            "daemon",
            "fail",
            f"the daemon at {where} refused the token from {settings.token_source}",
            "the server and the daemon must read the same token file: compare the daemon's "
            "--token-file (see `systemctl --user cat coding-agent-daemon`) with DAEMON_TOKEN_FILE",
        ), None
    except DaemonUnavailable as exc:
        return Check(
            "daemon",
            "fail",
            f"nothing answers at {where}: {exc.message}",
            "start the daemon on the host: `systemctl --user start coding-agent-daemon` (set it "
            "up with `coding-agent-daemon install-unit --root <your projects>`); from the "
            "container it must also listen on the docker0 address (install-unit adds it), and "
            "CLAUDE_PROXY_HOST/CLAUDE_PROXY_PORT must name it",
        ), None
    except DaemonError as exc:
        return Check(
            "daemon",
            "fail",
            f"the daemon at {where} answered with an error: {exc.code}: {exc.message}",
            "upgrade the server and the daemon to the same version",
        ), None
    return Check(
        "daemon",
        "ok",
        f"daemon {info.daemon_version} (protocol {info.protocol_version}) answers at {where}; "
        f"roots: {', '.join(info.roots) or 'none'}; runs: {info.active_runs}/"
        f"{info.max_concurrent_runs}",
    ), info


def check_agents(info: ProbeInfo | None) -> list[Check]:
    """Which agent CLIs the daemon found, with their versions; none at all is a failure."""
    if info is None:
        return [
            Check("agents", "fail", "unknown: the daemon did not answer", "fix the daemon first")
        ]
    checks = []
    for agent in info.agents:
        variable = f"{agent.name.upper()}_PATH"
        if agent.path is not None and agent.error is None:
            checks.append(
                Check(f"agent {agent.name}", "ok", f"{agent.path} ({agent.version or '?'})")
            )
        else:
            reason = agent.error or "not found"
            checks.append(
                Check(
                    f"agent {agent.name}",
                    "warn",
                    f"{agent.path}: {reason}" if agent.path else reason,
                    f"install {agent.name} on the host, or set {variable} in the daemon's "
                    "environment (an Environment= line of its unit)",
                )
            )
    if not any(check.status == "ok" for check in checks):
        checks.append(
            Check(
                "agents",
                "fail",
                "the daemon found no agent CLI it can run",
                "install at least one (e.g. `npm install -g @anthropic-ai/claude-code`), then "
                "restart the daemon so it looks again",
            )
        )
    return checks


def _inside(path: str, root: str) -> bool:
    return pathlib.PurePosixPath(path).is_relative_to(pathlib.PurePosixPath(root))


def _mount_problem(settings: DoctorSettings) -> Check | None:
    """Whether ``HOST_FILE_ROOT`` and the mounted workspace agree with each other."""
    host_root = settings.host_file_root
    mounted = settings.workspace.is_dir()
    if not host_root and mounted:
        return Check(
            "workspace",
            "fail",
            f"{settings.workspace} exists but HOST_FILE_ROOT is not set",
            "set HOST_FILE_ROOT to the host directory mounted at /workspace (compose does "
            "this from your shell's HOST_FILE_ROOT)",
        )
    if not host_root:
        return Check(
            "workspace", "ok", "not in a container: project paths are host paths as they are"
        )
    if not mounted:
        return Check(
            "workspace",
            "fail",
            f"HOST_FILE_ROOT={host_root} but {settings.workspace} is not a directory here",
            f"mount it: `${{HOST_FILE_ROOT}}:{settings.workspace}:rw` (compose.yaml does)",
        )
    try:
        os.listdir(settings.workspace)
    except OSError as exc:
        return Check(
            "workspace",
            "fail",
            f"{settings.workspace} cannot be listed: {exc.strerror}",
            "give the container's uid read access (build with CODING_AGENT_UID=$(id -u))",
        )
    return None


def check_workspace(settings: DoctorSettings, info: ProbeInfo | None) -> Check:
    """``HOST_FILE_ROOT`` is mounted as the workspace and lies inside one of the daemon's roots."""
    problem = _mount_problem(settings)
    if problem is not None:
        return problem
    host_root = settings.host_file_root or ""
    if info is None:
        return Check(
            "workspace",
            "warn",
            f"{settings.workspace} ↔ {host_root} is mounted; the daemon's roots are unknown",
            "fix the daemon, then run doctor again",
        )
    covering = [root for root in info.roots if _inside(host_root, root)]
    if not covering:
        return Check(
            "workspace",
            "fail",
            f"HOST_FILE_ROOT={host_root} is outside every daemon root "
            f"({', '.join(info.roots) or 'none'}): every run would be refused",
            f"add `--root {host_root}` to the daemon (`coding-agent-daemon install-unit "
            f"--root {host_root}`, then restart it)",
        )
    return Check(
        "workspace",
        "ok",
        f"{settings.workspace} ↔ {host_root}, inside the daemon's root {covering[0]}",
    )


def check_state(settings: DoctorSettings) -> Check:
    """The state directory exists (or can be made) and a file can be created in it."""
    path = settings.state_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "state",
            "fail",
            f"state directory {path} is not writable: {exc.strerror}",
            f"make it writable by uid {os.getuid()} (`chown` it; for the compose volume: "
            "`docker run --rm -v coding-agent_coding-agent-state:/data/state "
            f"debian:bookworm-slim chown -R {os.getuid()} /data/state`), or set STATE_PATH "
            "elsewhere",
        )
    return Check("state", "ok", f"state directory {path} is writable")


MODERN_VERSION = "2026-07-28"


async def _legacy_tools(url: str, token: str) -> tuple[str, int]:
    """``initialize`` then ``tools/list`` on a session: the negotiated version, how many tools."""
    async with open_session(url, token) as session:
        version = str(session.headers.get("mcp-protocol-version", "?"))
        listed = await session.request("tools/list", {})
    return version, len(listed.get("tools") or [])


async def _modern_tools(url: str, token: str) -> int:
    """``tools/list`` in the 2026-07-28 era (no session; the version in the envelope)."""
    timeout = httpx.Timeout(CONNECT_TIMEOUT_S)
    auth = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=timeout, headers=auth, trust_env=False) as http:
        session = McpSession(http, url)
        session.headers |= {"mcp-protocol-version": MODERN_VERSION, "mcp-method": "tools/list"}
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        listed = await session.request("tools/list", {"_meta": meta})
    return len(listed.get("tools") or [])


def _mcp_token_fix(settings: DoctorSettings) -> str:
    token_file = settings.state_path / "mcp.token"
    if settings.mcp_token_source == "MCP_AUTH_TOKEN":  # noqa: S105 (a variable name)
        return (
            "MCP_AUTH_TOKEN here is not the server's: unset it (doctor then reads "
            f"{token_file}, the token `up` printed at start), or set it to the token the server "
            "was started with"
        )
    return (
        f"the server was started with another token than {token_file}: point --state-path at "
        "its state dir, or set MCP_AUTH_TOKEN to the token it printed at start (its "
        "MCP_AUTH_TOKEN when it had one)"
    )


def _mcp_failure(
    settings: DoctorSettings, url: str, exc: ConsoleError | trio.TooSlowError
) -> Check:
    """What went wrong talking to the MCP server, and its fix."""
    if isinstance(exc, Refused) and exc.status == 401:
        detail = (
            f"the server at {url} ({settings.mcp_url_source}) refused the MCP token from "
            f"{settings.mcp_token_source} (HTTP 401)"
        )
        fix = _mcp_token_fix(settings)
    elif isinstance(exc, Refused):
        detail, fix = str(exc), "use 127.0.0.1 or localhost, or set TUNNEL_URL for the public name"
    elif isinstance(exc, Unreachable):
        detail = f"{exc} ({settings.mcp_url_source})"
        fix = (
            "start the server (`coding-agent up`, or `coding-agent serve`); a URL recorded by "
            "an `up` that was killed stays until the next `up` replaces it"
        )
    elif isinstance(exc, trio.TooSlowError):
        detail = f"the server at {url} did not answer within {settings.timeout:g} s"
        fix = "see its log; a loaded host may need a longer --timeout"
    else:
        detail = f"the server at {url} answered what an MCP server should not: {exc}"
        fix = "is that URL this server's /mcp endpoint? Upgrade the server if it is"
    return Check("mcp", "fail", detail, fix)


async def check_mcp(settings: DoctorSettings) -> Check:
    """The MCP server answers ``initialize`` and ``tools/list`` with the bearer token, in the
    session era and in 2026-07-28."""
    url = settings.mcp_url
    if url is None:
        return Check(
            "mcp",
            "warn",
            f"not checked: no MCP URL ({settings.mcp_url_source})",
            "pass --url (or set CODING_AGENT_URL) to check the server too; `coding-agent up` "
            f"records its URL in {settings.state_path / URL_FILE} while it runs",
        )
    if settings.mcp_token is None:
        return Check(
            "mcp",
            "fail",
            f"not tried at {url}: {settings.mcp_token_source}",
            _mcp_token_fix(settings),
        )
    try:
        with trio.fail_after(settings.timeout):
            version, count = await _legacy_tools(url, settings.mcp_token)
            await _modern_tools(url, settings.mcp_token)
    except (ConsoleError, trio.TooSlowError) as exc:
        return _mcp_failure(settings, url, exc)
    return Check(
        "mcp",
        "ok",
        f"{url} ({settings.mcp_url_source}) answers with the token from "
        f"{settings.mcp_token_source}: {count} tools (protocol {version}, and {MODERN_VERSION})",
    )


async def run_checks(settings: DoctorSettings) -> list[Check]:
    """Every check, in the order a user would fix them."""
    if settings.hosts:
        from ._doctor_hosts import check_hosts  # noqa: PLC0415 (it builds on this module)

        daemons, info = await check_hosts(settings)
    else:
        token = check_token(settings)
        daemon, info = await check_daemon(settings)
        daemons = [token, daemon, *check_agents(info)]
    return [
        *daemons,
        check_workspace(settings, info),
        check_state(settings),
        await check_mcp(settings),
    ]


def render(checks: Sequence[Check]) -> str:
    """The report: one line per check, its fix indented below a failure or a warning."""
    lines = []
    for check in checks:
        lines.append(f"{_LABELS[check.status]} {check.name}: {check.detail}")
        if check.fix is not None and check.status != "ok":
            lines.append(f"       fix: {check.fix}")
    failures = sum(check.status == "fail" for check in checks)
    lines.append("all good" if not failures else f"{failures} problem(s) to fix")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coding-agent doctor",
        description="Check the daemon, its agents, the workspace mapping and the state directory.",
    )
    parser.add_argument("--daemon-host", help="default $CLAUDE_PROXY_HOST, else 127.0.0.1")
    parser.add_argument("--daemon-port", type=int, help="default $CLAUDE_PROXY_PORT, else 9876")
    parser.add_argument("--token-file", help="default $DAEMON_TOKEN / $DAEMON_TOKEN_FILE")
    add_daemon_flag(
        parser,
        "check this host daemon (repeatable; default $DAEMONS, ';'-separated) instead of the "
        "single one",
    )
    parser.add_argument("--state-path", type=pathlib.Path, help="default $STATE_PATH")
    parser.add_argument(
        "--workspace",
        type=pathlib.Path,
        default=pathlib.Path(CONTAINER_WORKSPACE),
        help="where HOST_FILE_ROOT is mounted (default /workspace)",
    )
    parser.add_argument("--host-file-root", help="default $HOST_FILE_ROOT")
    parser.add_argument(
        "--url",
        help="the MCP endpoint to check; default $CODING_AGENT_URL, else the URL a running "
        "`coding-agent up` recorded in the state dir (its token: $MCP_AUTH_TOKEN, else the "
        "state dir's mcp.token)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds for the daemon and the server"
    )
    return parser


def _daemon_address(
    args: argparse.Namespace, environ: Mapping[str, str], state: pathlib.Path
) -> tuple[str, int, str, pathlib.Path | None]:
    """Host, port, where they came from, and ``up``'s token file when ``up`` is the source:
    flags and ``CLAUDE_PROXY_HOST``/``CLAUDE_PROXY_PORT`` (either one names another daemon than
    ``up``'s), else what a running ``up`` recorded in the state dir, else the defaults."""
    given_host = args.daemon_host or environ.get("CLAUDE_PROXY_HOST") or None
    port: int | None = args.daemon_port
    if port is None and environ.get("CLAUDE_PROXY_PORT"):
        port = parse_port(environ["CLAUDE_PROXY_PORT"], "CLAUDE_PROXY_PORT", allow_zero=False)
    if given_host is not None or port is not None:
        return given_host or "127.0.0.1", port or DEFAULT_DAEMON_PORT, "given", None
    recorded = stored_daemon_address(state)
    if recorded is None:
        return "127.0.0.1", DEFAULT_DAEMON_PORT, "the default", None
    source = f"recorded by `coding-agent up` in {state / DAEMON_ADDRESS_FILE}"
    return recorded[0], recorded[1], source, state / DAEMON_TOKEN_FILE


def _mcp_endpoint(
    args: argparse.Namespace, environ: Mapping[str, str], state: pathlib.Path
) -> tuple[str | None, str, str | None, str]:
    """The MCP URL and token to check, each with where it came from."""
    if args.url:
        url, url_source = args.url, "--url"
    elif environ.get("CODING_AGENT_URL", "").strip():
        url, url_source = environ["CODING_AGENT_URL"].strip(), "CODING_AGENT_URL"
    else:
        url = stored_mcp_url(state)
        url_source = (
            f"recorded by the running server in {state / URL_FILE}"
            if url
            else f"no --url, CODING_AGENT_URL nor {state / URL_FILE}"
        )
    token_source = (
        "MCP_AUTH_TOKEN" if environ.get("MCP_AUTH_TOKEN", "").strip() else str(state / "mcp.token")
    )
    try:
        token: str | None = stored_mcp_token(environ, state)
    except ConfigError as exc:
        token, token_source = None, str(exc)
    return url, url_source, token, token_source


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> DoctorSettings:
    """Flags first, then the server's own environment variables, then what ``up`` recorded."""
    state = args.state_path or pathlib.Path(environ.get("STATE_PATH") or default_data_dir(environ))
    host, port, daemon_source, up_token_file = _daemon_address(args, environ, state)
    token, source = _read_token(environ, args.token_file, up_token_file)
    url, url_source, mcp_token, mcp_token_source = _mcp_endpoint(args, environ, state)
    return DoctorSettings(
        daemon_host=host,
        daemon_port=port,
        token=token,
        token_source=source,
        state_path=state,
        workspace=args.workspace,
        host_file_root=args.host_file_root or environ.get("HOST_FILE_ROOT") or None,
        timeout=args.timeout,
        daemon_source=daemon_source,
        mcp_url=url,
        mcp_url_source=url_source,
        mcp_token=mcp_token,
        mcp_token_source=mcp_token_source,
        hosts=tuple(daemon_specs(args.daemon, environ)),
    )


def doctor_main(argv: list[str]) -> int:
    """Entry point of ``coding-agent doctor``: 0 all good, 1 a check failed, 2 bad settings."""
    try:
        settings = settings_from(_parser().parse_args(argv), os.environ)
    except ConfigError as exc:
        print(f"coding-agent doctor: {exc}", file=sys.stderr)
        return 2
    checks = trio.run(run_checks, settings)
    sys.stdout.write(render(checks))
    return 1 if any(check.status == "fail" for check in checks) else 0
