"""``coding-agent doctor``: check a deployment end to end, in plain words, with a fix per failure.

It checks what the server depends on, from where the server runs (inside the container with
``docker compose exec mcp-server coding-agent doctor``, or on the host): the daemon's token, the
daemon answering with it, the agent CLIs the daemon found, the workspace mapping
(``HOST_FILE_ROOT`` seen as ``/workspace``) and the state directory.
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
    DEFAULT_DAEMON_PORT,
    ConfigError,
    default_data_dir,
    parse_port,
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


def _read_token(environ: Mapping[str, str], token_file: str | None) -> tuple[str | None, str]:
    """The daemon token and where it came from; never creates a token (that would hide a fault)."""
    if token_file is None and environ.get("DAEMON_TOKEN", "").strip():
        return environ["DAEMON_TOKEN"].strip(), "DAEMON_TOKEN"
    path = pathlib.Path(
        token_file or environ.get("DAEMON_TOKEN_FILE") or default_token_file(default_state_dir())
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
    where = f"{settings.daemon_host}:{settings.daemon_port}"
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


async def run_checks(settings: DoctorSettings) -> list[Check]:
    """Every check, in the order a user would fix them."""
    token = check_token(settings)
    daemon, info = await check_daemon(settings)
    return [
        token,
        daemon,
        *check_agents(info),
        check_workspace(settings, info),
        check_state(settings),
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
    parser.add_argument("--state-path", type=pathlib.Path, help="default $STATE_PATH")
    parser.add_argument(
        "--workspace",
        type=pathlib.Path,
        default=pathlib.Path(CONTAINER_WORKSPACE),
        help="where HOST_FILE_ROOT is mounted (default /workspace)",
    )
    parser.add_argument("--host-file-root", help="default $HOST_FILE_ROOT")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds for the daemon")
    return parser


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> DoctorSettings:
    """Flags first, then the server's own environment variables."""
    token, source = _read_token(environ, args.token_file)
    port = args.daemon_port
    if port is None:
        raw = environ.get("CLAUDE_PROXY_PORT") or str(DEFAULT_DAEMON_PORT)
        port = parse_port(raw, "CLAUDE_PROXY_PORT", allow_zero=False)
    return DoctorSettings(
        daemon_host=args.daemon_host or environ.get("CLAUDE_PROXY_HOST") or "127.0.0.1",
        daemon_port=port,
        token=token,
        token_source=source,
        state_path=args.state_path
        or pathlib.Path(environ.get("STATE_PATH") or default_data_dir(environ)),
        workspace=args.workspace,
        host_file_root=args.host_file_root or environ.get("HOST_FILE_ROOT") or None,
        timeout=args.timeout,
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
