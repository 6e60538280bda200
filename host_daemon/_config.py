"""The daemon's configuration: one frozen record, built by the CLI or a test, read by the server."""

from __future__ import annotations

import os
import pathlib
import tomllib
from collections.abc import Mapping

import attrs

from ._protocol import DEFAULT_MAX_REQUEST_BYTES
from ._rules import parse_rule

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9876
DEFAULT_WORKTREES_MAX_BYTES = 20 * 1024**3


def default_state_dir(environ: Mapping[str, str] = os.environ) -> pathlib.Path:
    """``$XDG_STATE_HOME/coding-agent`` (``~/.local/state/coding-agent`` when unset)."""
    base = environ.get("XDG_STATE_HOME") or str(pathlib.Path.home() / ".local" / "state")
    return pathlib.Path(base) / "coding-agent"


def default_token_file(state_dir: pathlib.Path) -> pathlib.Path:
    """Where the daemon keeps the shared token unless told otherwise."""
    return state_dir / "daemon.token"


def _default_worktrees_dir(config: DaemonConfig) -> str | None:
    return None if config.state_dir is None else os.path.join(config.state_dir, "worktrees")


@attrs.frozen
class DaemonConfig:
    """Everything ``serve_daemon`` needs; the secret ``token`` is kept out of ``repr``."""

    token: str = attrs.field(repr=False)
    #: The only directories agents may work in (each realpath'd by the CLI before it gets here).
    roots: tuple[str, ...]
    listen: tuple[tuple[str, int], ...] = ((DEFAULT_HOST, DEFAULT_PORT),)
    #: On graceful shutdown, how long runs in flight may go on before they are cancelled.
    grace_s: float = 30.0
    #: A detachable run (``RunRequest.run_id``) whose stream ended goes on this long for a
    #: client to attach again (0: it is cancelled at once, as a run without ``run_id`` is).
    detach_grace_s: float = 900.0
    #: How long a finished detachable run's spool waits for a client to attach and get its end
    #: (None: ``detach_grace_s``); a client that got it frees it at once.
    finished_spool_s: float | None = None
    #: Concurrent runs; one more gets a ``busy`` error.
    max_runs: int = 4
    #: Authenticated connections at once; one more gets a ``busy`` error frame after its
    #: handshake and is closed.
    max_connections: int = 64
    #: Connections still in their handshake, a budget of their own so that anonymous clients
    #: cannot starve authenticated ones: one more drops the oldest (which gets ``busy``).
    max_unauthenticated: int = 16
    #: A client must authenticate and send its operation within this time, or be dropped.
    handshake_timeout_s: float = 3.0
    #: Largest frame a client may send.
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: An output line of an agent longer than this is cut (the event says ``truncated``).
    max_line_bytes: int = 8 * 1024 * 1024
    #: A run's total output beyond this is cut with a marker and discarded.
    max_output_bytes: int = 1024 * 1024 * 1024
    #: Between SIGTERM and SIGKILL when a run's process group is terminated.
    kill_grace_s: float = 5.0
    #: Longest run a request may ask for, and the timeout of a request that names none.
    max_run_timeout_s: float = 6 * 3600.0
    #: Permission modes allowed beyond each adapter's safe default, as ``(agent, mode)`` pairs.
    extra_permission_modes: tuple[tuple[str, str], ...] = ()
    #: The daemon's state directory. It also names this daemon's runs (their environment's
    #: marker), so that a daemon started on it ends what a killed earlier one left running.
    #: None: nothing is swept.
    state_dir: str | None = None
    #: Where the daemon makes its worktrees (one per task, with a metadata file beside each);
    #: it is the daemon's own root for runs in a worktree. Default: ``<state_dir>/worktrees``;
    #: None (no state directory either): the daemon makes no worktrees.
    worktrees_dir: str | None = attrs.field(
        default=attrs.Factory(_default_worktrees_dir, takes_self=True)
    )
    #: The worktrees directory may hold this much; a create that would pass it is refused
    #: (``disk_budget``). 0: no worktrees.
    worktrees_max_bytes: int = DEFAULT_WORKTREES_MAX_BYTES
    #: Each git command the daemon runs is killed after this long (its process group).
    git_timeout_s: float = 120.0
    #: Whether agents that can run live turns (``RunRequest.live``) may (``--no-live``: none).
    live: bool = True
    #: A live session with no turn for this long is closed (a request may ask for less).
    live_idle_s: float = 600.0
    #: Live sessions kept at once; a new one closes the longest-idle one first.
    max_live_sessions: int = 8
    #: A permission request nobody answers is denied after this long (a request may ask less).
    approval_timeout_s: float = 900.0
    #: The host owner's approval policy for live turns (Claude's rule syntax, checked at start):
    #: what matches a deny rule is denied at once; what matches an allow rule (and the task's
    #: narrowing) is allowed at once; the rest is asked of the client.
    allow_rules: tuple[str, ...] = ()
    deny_rules: tuple[str, ...] = ()
    #: The environment agents are found in and run with (None: the daemon's own ``os.environ``).
    #: Never logged: it holds the user's secrets.
    environ: Mapping[str, str] | None = attrs.field(default=None, repr=False)


def read_policy_file(path: pathlib.Path) -> tuple[list[str], list[str]]:
    """``--policy-file``: TOML with ``allow = [...]`` and ``deny = [...]`` (rules, both optional).

    Raises ``ValueError`` naming the file and the place of what is wrong.
    """
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ValueError(f"--policy-file {path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--policy-file {path}: expected TOML, got an error: {exc}") from None
    unknown = sorted(set(document) - {"allow", "deny"})
    if unknown:
        raise ValueError(
            f"--policy-file {path}: expected only the keys allow and deny, got {unknown[0]!r}"
        )
    lists: dict[str, list[str]] = {}
    for key in ("allow", "deny"):
        rules = document.get(key, [])
        if not isinstance(rules, list):
            raise ValueError(  # noqa: TRY004  # a bad file is a ValueError, as a bad rule
                f"--policy-file {path}: expected a list of rules, got "
                f"{type(rules).__name__} @ {key}"
            )
        for index, rule in enumerate(rules):
            try:
                parse_rule(rule)
            except ValueError as exc:
                raise ValueError(f"--policy-file {path}: {exc} @ {key}[{index}]") from None
        lists[key] = [rule.strip() for rule in rules]
    return lists["allow"], lists["deny"]
