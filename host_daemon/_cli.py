"""``coding-agent-daemon`` (and ``python -m host_daemon``): run the daemon, or install its unit.

Signals: the first SIGTERM/SIGINT starts a graceful shutdown (stop accepting, let runs finish
within ``--grace``, then kill them); a second one exits at once, still killing every run's
process group on the way out.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import pathlib
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import trio

from ._agents import ADAPTERS
from ._auth import TokenError, token_from_environment
from ._config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DaemonConfig,
    default_state_dir,
    default_token_file,
    read_policy_file,
)
from ._paths import resolve_roots
from ._rules import parse_rule
from ._server import serve_daemon
from ._signals import watch_shutdown_signals
from ._state_lock import DAEMON_LOCK, StateLock
from ._tree import become_subreaper
from ._version import __version__

log = logging.getLogger("host_daemon")


def _text_value(value: object) -> str:
    """``value`` as one token: JSON-quoted unless it is plain (no space, quote, ``=`` or control).

    Field values carry what clients sent (a refused frame's field names, a path): a newline in
    one would otherwise forge a log line of its own in journald.
    """
    text = str(value)
    if text and all(char.isprintable() and char not in ' "=' for char in text):
        return text
    return orjson.dumps(text).decode()


class _TextFormatter(logging.Formatter):
    """``LEVEL message key=value …``: journald adds the time itself."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        line = " ".join(
            [
                record.levelname,
                record.getMessage(),
                *(f"{k}={_text_value(v)}" for k, v in fields.items()),
            ]
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(fmt: str, level: str) -> None:
    """Send the daemon's logs to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    logger = logging.getLogger("host_daemon")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def positive_finite(value: str) -> float:
    number = _positive(value)
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {value}")
    return number


def gibibytes(value: str) -> int:
    """``--worktrees-max-gb``: GiB as a float (0 allowed: no worktrees), in bytes."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of GiB, got {value!r}") from None
    if not (math.isfinite(number) and number >= 0):
        raise argparse.ArgumentTypeError(f"must be 0 or more GiB, got {value}")
    return int(number * 1024**3)


def _permission(value: str) -> tuple[str, str]:
    agent, sep, mode = value.partition("=")
    adapter = ADAPTERS.get(agent)
    if not sep or adapter is None:
        raise argparse.ArgumentTypeError(
            f"expected AGENT=MODE with AGENT one of {', '.join(ADAPTERS)}, got {value!r}"
        )
    if mode not in adapter.permission_modes:
        raise argparse.ArgumentTypeError(
            f"{agent} has no permission mode {mode!r} here "
            f"(one of {', '.join(sorted(adapter.permission_modes))})"
        )
    return agent, mode


def _rule(value: str) -> str:
    """``--allow-rule``/``--deny-rule``: one rule in Claude's syntax, checked now."""
    try:
        parse_rule(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value.strip()


def build_parser() -> argparse.ArgumentParser:
    """The daemon's command line (``install-unit`` is dispatched before this parser runs)."""
    parser = argparse.ArgumentParser(
        prog="coding-agent-daemon",
        description="Run coding-agent CLIs in process groups for authenticated clients. "
        "Subcommand: `install-unit` writes a systemd unit (see `install-unit --help`).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--listen",
        type=_address,
        action="append",
        metavar="HOST:PORT",
        help=f"address to listen on, repeatable (default {DEFAULT_HOST}:{DEFAULT_PORT})",
    )
    parser.add_argument(
        "--root",
        action="append",
        metavar="PATH",
        help="a directory agents may work in, repeatable; required unless $HOST_FILE_ROOT "
        "names one (there is no default: a home directory holds credentials agents must not "
        "be pointed at by accident)",
    )
    parser.add_argument(
        "--state-dir",
        type=pathlib.Path,
        help="the daemon's state directory, home of the default token file "
        "(default $XDG_STATE_HOME/coding-agent or ~/.local/state/coding-agent)",
    )
    parser.add_argument(
        "--token-file",
        type=pathlib.Path,
        help="the shared token, created 0600 when absent (default $DAEMON_TOKEN_FILE, else "
        "STATE_DIR/daemon.token); $DAEMON_TOKEN, when set, wins over any file",
    )
    defaults = DaemonConfig(token="", roots=())
    parser.add_argument(
        "--grace",
        type=float,
        default=defaults.grace_s,
        metavar="SECONDS",
        help="on SIGTERM, how long runs in flight may finish before they are killed "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--detach-grace",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a run whose client's stream ended (a server restart, a network blip) "
        "goes on for the client to attach again; 0 ends it at once "
        f"(default $DETACH_GRACE_S, else {defaults.detach_grace_s:g})",
    )
    parser.add_argument(
        "--max-runs",
        type=int,
        default=defaults.max_runs,
        metavar="N",
        help="concurrent runs; beyond it clients get a busy error (default %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        metavar="N",
        help="authenticated connections at once; beyond it clients get a busy error "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--max-unauthenticated",
        type=int,
        default=defaults.max_unauthenticated,
        metavar="N",
        help="connections still in their handshake at once; one more drops the oldest "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--max-run-timeout",
        type=_positive,
        default=defaults.max_run_timeout_s,
        metavar="SECONDS",
        help="longest run, and the timeout of requests naming none (default %(default)s)",
    )
    parser.add_argument(
        "--kill-grace",
        type=_positive,
        default=defaults.kill_grace_s,
        metavar="SECONDS",
        help="between SIGTERM and SIGKILL when a run is ended (default %(default)s)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=_positive,
        default=defaults.handshake_timeout_s,
        metavar="SECONDS",
        help="a client that has not authenticated and asked within this is dropped "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=defaults.max_request_bytes,
        metavar="BYTES",
        help="largest frame a client may send (default %(default)s)",
    )
    parser.add_argument(
        "--max-output-bytes",
        type=int,
        default=defaults.max_output_bytes,
        metavar="BYTES",
        help="a run's output beyond this is cut with a marker (default %(default)s)",
    )
    parser.add_argument(
        "--worktrees-dir",
        type=pathlib.Path,
        metavar="PATH",
        help="where the daemon makes a git worktree per task; inside a --root or under the "
        "state directory, and used for nothing else (default STATE_DIR/worktrees)",
    )
    parser.add_argument(
        "--worktrees-max-gb",
        dest="worktrees_max_bytes",
        type=gibibytes,
        default=defaults.worktrees_max_bytes,
        metavar="GIB",
        help="disk budget of the worktrees directory; a worktree that would pass it is "
        "refused (default 20; 0: no worktrees)",
    )
    parser.add_argument(
        "--git-timeout",
        type=positive_finite,
        default=defaults.git_timeout_s,
        metavar="SECONDS",
        help="each git command the daemon runs is killed after this (default %(default)s)",
    )
    parser.add_argument(
        "--allow-permission-mode",
        type=_permission,
        action="append",
        default=[],
        metavar="AGENT=MODE",
        help="let requests ask for MODE for AGENT, repeatable; without it each agent runs "
        "only in its safe default (claude acceptEdits, codex workspace-write, "
        "gemini auto_edit)",
    )
    parser.add_argument(
        "--no-live",
        dest="live",
        action="store_false",
        help="run no live turns: every agent runs one process per turn, as without live control",
    )
    parser.add_argument(
        "--live-idle-s",
        type=positive_finite,
        default=defaults.live_idle_s,
        metavar="SECONDS",
        help="a live agent with no turn for this long is closed, and resumed by session id on "
        "the next turn (default %(default)s)",
    )
    parser.add_argument(
        "--max-live-sessions",
        type=int,
        default=defaults.max_live_sessions,
        metavar="N",
        help="live agents kept at once; a new one closes the longest idle (default %(default)s)",
    )
    parser.add_argument(
        "--approval-timeout-s",
        type=positive_finite,
        default=defaults.approval_timeout_s,
        metavar="SECONDS",
        help="a permission request nobody answers is denied after this (default %(default)s)",
    )
    parser.add_argument(
        "--allow-rule",
        type=_rule,
        action="append",
        default=[],
        metavar="RULE",
        help="auto-allow a live agent's permission request matching RULE (Claude's syntax: "
        "Bash(pytest:*), Edit(src/**)), repeatable; a task may narrow these, never widen them",
    )
    parser.add_argument(
        "--deny-rule",
        type=_rule,
        action="append",
        default=[],
        metavar="RULE",
        help="deny a live agent's permission request matching RULE at once, repeatable; "
        "deny rules win over every allow",
    )
    parser.add_argument(
        "--policy-file",
        type=pathlib.Path,
        metavar="PATH",
        help="TOML file with allow = [RULE, ...] and deny = [RULE, ...], added to the flags",
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    return parser


def config_from_args(args: argparse.Namespace, environ: dict[str, str]) -> DaemonConfig:
    """Turn parsed arguments into a ``DaemonConfig``; raises ``ValueError`` with a clear message."""
    roots = resolve_roots(args.root, environ)
    if args.max_runs < 1:
        raise ValueError("--max-runs must be at least 1")
    if args.max_connections < 1:
        raise ValueError("--max-connections must be at least 1")
    if args.max_unauthenticated < 1:
        raise ValueError("--max-unauthenticated must be at least 1")
    if args.grace < 0:
        raise ValueError("--grace must not be negative")
    if args.max_live_sessions < 1:
        raise ValueError("--max-live-sessions must be at least 1")
    detach_grace = _detach_grace(args.detach_grace, environ)
    state_dir = args.state_dir or default_state_dir(environ)
    if args.token_file is not None:
        environ = {**environ, "DAEMON_TOKEN_FILE": str(args.token_file)}
    default_file = default_token_file(state_dir)
    if "DAEMON_TOKEN" not in environ and "DAEMON_TOKEN_FILE" not in environ:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        token = token_from_environment(environ, default_file)
    except TokenError as exc:
        raise ValueError(str(exc)) from None
    worktrees = resolve_worktrees_dir(args.worktrees_dir, state_dir, roots)
    allow_rules, deny_rules = list(args.allow_rule), list(args.deny_rule)
    if args.policy_file is not None:
        file_allow, file_deny = read_policy_file(args.policy_file)
        allow_rules += file_allow
        deny_rules += file_deny
    return DaemonConfig(
        token=token,
        roots=roots,
        listen=tuple(args.listen or [(DEFAULT_HOST, DEFAULT_PORT)]),
        grace_s=args.grace,
        detach_grace_s=detach_grace,
        max_runs=args.max_runs,
        max_connections=args.max_connections,
        max_unauthenticated=args.max_unauthenticated,
        handshake_timeout_s=args.handshake_timeout,
        max_request_bytes=args.max_request_bytes,
        max_output_bytes=args.max_output_bytes,
        kill_grace_s=args.kill_grace,
        max_run_timeout_s=args.max_run_timeout,
        extra_permission_modes=tuple(args.allow_permission_mode),
        state_dir=str(state_dir),
        worktrees_dir=worktrees,
        worktrees_max_bytes=args.worktrees_max_bytes,
        git_timeout_s=args.git_timeout,
        live=args.live,
        live_idle_s=args.live_idle_s,
        max_live_sessions=args.max_live_sessions,
        approval_timeout_s=args.approval_timeout_s,
        allow_rules=tuple(dict.fromkeys(allow_rules)),
        deny_rules=tuple(dict.fromkeys(deny_rules)),
    )


def _detach_grace(given: float | None, environ: Mapping[str, str]) -> float:
    """``--detach-grace``, else ``$DETACH_GRACE_S``, else the default: finite, not negative."""
    if given is not None:
        value, where = given, "--detach-grace"
    elif (text := environ.get("DETACH_GRACE_S")) is not None:
        where = "DETACH_GRACE_S"
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{where} must be a number of seconds, got {text!r}") from None
    else:
        return DaemonConfig(token="", roots=()).detach_grace_s
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{where} must be a finite number of seconds, at least 0, got {value}")
    return value


def resolve_worktrees_dir(
    given: pathlib.Path | None, state_dir: pathlib.Path, roots: tuple[str, ...]
) -> str:
    """The worktrees directory, real: strictly inside a root or under the state directory.

    The daemon deletes what it finds there that belongs to no task, so it must be a directory
    of its own: never a root itself, never one that holds a root or the state directory.
    """
    real_state = os.path.realpath(state_dir)
    if given is None:
        return os.path.join(real_state, "worktrees")
    real = os.path.realpath(os.path.expanduser(given))
    owners = [*roots, real_state]
    if not any(real != owner and _is_inside(real, owner) for owner in owners):
        raise ValueError(
            f"--worktrees-dir {given}: expected a directory strictly inside a --root or under "
            f"the state directory {real_state}, got {real}"
        )
    if any(_is_inside(owner, real) for owner in owners):
        raise ValueError(
            f"--worktrees-dir {given}: {real} holds a root or the state directory; the daemon "
            "deletes what it does not know there, so it must be a directory of its own"
        )
    return real


def _is_inside(path: str, directory: str) -> bool:
    return os.path.commonpath([path, directory]) == directory


async def run_daemon(config: DaemonConfig) -> None:
    """Serve until signalled: the first signal drains, a second one cancels everything."""
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(watch_shutdown_signals, shutdown, nursery.cancel_scope, log)
        await serve_daemon(config, shutdown=shutdown)
        nursery.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["install-unit"]:
        from ._unit import install_unit_main  # noqa: PLC0415  # only this subcommand needs it

        return install_unit_main(args_list[1:])
    args = build_parser().parse_args(args_list)
    configure_logging(args.log_format, args.log_level)
    try:
        config = config_from_args(args, dict(os.environ))
    except ValueError as exc:
        log.error("cannot start: %s", exc)  # noqa: TRY400  # the message says it all
        return 2
    try:
        become_subreaper()
    except OSError as exc:
        log.warning("cannot become a child subreaper: %s", exc)
    log.info(
        "starting",
        extra={
            "fields": {
                "version": __version__,
                "roots": list(config.roots),
                "worktrees_dir": config.worktrees_dir,
                "max_runs": config.max_runs,
                "grace_s": config.grace_s,
                "detach_grace_s": config.detach_grace_s,
            }
        },
    )
    try:
        lock = _lock_state_dir(config, args_list)
    except OSError as exc:
        log.error("cannot start: %s", exc)  # noqa: TRY400  # names the holder: no trace
        return 2
    status = 0
    with lock:
        try:
            trio.run(run_daemon, config)
        except* OSError as group:
            for error in group.exceptions:
                log.error("cannot serve: %s", error)  # noqa: TRY400  # e.g. address in use
            status = 1
    return status


def _lock_state_dir(config: DaemonConfig, argv: list[str]) -> StateLock:
    """The state directory's daemon lock (``StateDirLocked`` names who holds it)."""
    assert config.state_dir is not None  # noqa: S101  # config_from_args always sets it
    state_dir = pathlib.Path(config.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = StateLock.acquire(state_dir, shlex.join(["host-daemon", *argv]), DAEMON_LOCK)
    lock.record(", ".join(f"{host}:{port}" for host, port in config.listen))
    return lock
