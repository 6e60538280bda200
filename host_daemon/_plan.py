"""Checking a run request against the daemon's configuration, before anything is spawned.

The outcome is a ``RunPlan`` (the argv, the directory held open, the permission mode) or a
``RequestError`` whose code and message go into the error frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import attrs

from ._agents import ADAPTERS, plain_name_error
from ._config import DaemonConfig
from ._errors import DaemonError
from ._live_adapters import LIVE_ADAPTERS
from ._paths import HeldDirectory, PathRefused, open_inside_roots
from ._records import RunRequest

__all__ = ["RequestError", "RunPlan", "allowed_modes", "plan_run"]


#: A live session key is the client's task id: short.
_MAX_SESSION_KEY = 200


class RequestError(DaemonError):
    """A request the daemon refuses; ``code`` and ``message`` go into the error frame."""


@attrs.frozen
class RunPlan:
    """A checked run request: what to execute, where, in which permission mode."""

    request: RunRequest
    argv: list[str]
    #: Opened and checked: the agent starts in this very directory (closed when the run ends).
    directory: HeldDirectory
    mode: str


#: A worktree's run directory for its key (``WorktreeManager.run_directory``): raises a
#: ``DaemonError`` (``unknown_worktree``) for a key it does not know.
RunDirectoryOf = Callable[[str], str]


def plan_run(
    request: RunRequest,
    config: DaemonConfig,
    environ: Mapping[str, str],
    run_directory_of: RunDirectoryOf | None = None,
) -> RunPlan:
    """Check a run request against the configuration: its argv, cwd and permission mode.

    With ``request.worktree`` the agent runs in that worktree (``run_directory_of`` finds it;
    None: the daemon keeps no worktrees), held open like a cwd with the worktrees directory as
    the only root; ``cwd`` must still be inside a root.
    """
    if not request.prompt.strip():
        raise RequestError("invalid_request", "the prompt is empty @ $.prompt")
    for field in (
        "max_turns",
        "max_budget_usd",
        "timeout_s",
        "idle_timeout_s",
        "approval_timeout_s",
    ):
        value = getattr(request, field)
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise RequestError("invalid_request", f"must be positive @ $.{field}")
    if request.timeout_s is not None and request.timeout_s > config.max_run_timeout_s:
        raise RequestError(
            "invalid_request",
            f"at most {config.max_run_timeout_s:g} seconds @ $.timeout_s",
        )
    for field in ("model", "resume_session_id"):
        value = getattr(request, field)
        if value is not None and (error := plain_name_error(value)) is not None:
            raise RequestError("invalid_request", f"{error} @ $.{field}")
    adapter = ADAPTERS.get(request.agent)
    if adapter is None:
        raise RequestError("unknown_agent", f"this daemon has no adapter for {request.agent}")
    mode = request.permission_mode or adapter.default_permission_mode
    if mode not in adapter.permission_modes:
        raise RequestError(
            "invalid_request",
            f"{request.agent} has no permission mode {mode!r} "
            f"(one of {', '.join(sorted(adapter.permission_modes))}) @ $.permission_mode",
        )
    if mode not in allowed_modes(config, request.agent):
        raise RequestError(
            "permission_mode_not_allowed",
            f"this daemon does not allow {request.agent} to run in {mode!r} mode "
            "(see --allow-permission-mode) @ $.permission_mode",
        )
    executable = adapter.find_executable(environ)
    if executable is None:
        raise RequestError(
            "agent_not_found",
            f"{adapter.executable_name} not found (set {adapter.env_var} or PATH)",
        )
    argv = _live_argv(request, executable, mode) if request.live else None
    argv = argv or adapter.build_argv(executable, request, mode)
    try:
        directory = open_inside_roots(request.cwd, config.roots)
    except PathRefused as exc:
        raise RequestError(exc.code, f"{exc.message} @ $.cwd") from None
    if request.worktree is not None:
        directory.close()  # the project was checked; the agent runs in its worktree
        directory = _open_worktree(request.worktree, config, run_directory_of)
    return RunPlan(request, argv, directory, mode)


def _live_argv(request: RunRequest, executable: str, mode: str) -> list[str]:
    """A live turn's argv (no prompt in it); refused when the agent has no live driver."""
    if not request.session_key:
        raise RequestError("invalid_request", "a live turn needs a session key @ $.session_key")
    if len(request.session_key) > _MAX_SESSION_KEY:
        raise RequestError(
            "invalid_request", f"at most {_MAX_SESSION_KEY} characters @ $.session_key"
        )
    live = LIVE_ADAPTERS.get(request.agent)
    if live is None:
        raise RequestError("live_unsupported", f"{request.agent} cannot run live turns here")
    return live.live_argv(executable, request, mode)


def _open_worktree(
    key: str, config: DaemonConfig, run_directory_of: RunDirectoryOf | None
) -> HeldDirectory:
    """The worktree's run directory, held open beneath the worktrees directory."""
    if run_directory_of is None or config.worktrees_dir is None:
        raise RequestError(
            "unknown_worktree",
            f"no worktree {key!r}: this daemon keeps no worktrees (it has no worktrees "
            "directory) @ $.worktree",
        )
    try:
        path = run_directory_of(key)
    except DaemonError as exc:
        raise RequestError(exc.code, f"{exc.message} @ $.worktree") from None
    try:
        return open_inside_roots(path, (config.worktrees_dir,))
    except PathRefused as exc:
        raise RequestError(exc.code, f"worktree {key!r}: {exc.message} @ $.worktree") from None


def allowed_modes(config: DaemonConfig, agent: str) -> set[str]:
    """The adapter's safe default plus what ``--allow-permission-mode`` added."""
    allowed = {ADAPTERS[agent].default_permission_mode}
    allowed.update(mode for name, mode in config.extra_permission_modes if name == agent)
    return allowed
