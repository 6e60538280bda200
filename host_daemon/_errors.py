"""The daemon's error vocabulary: one base class with a ``code``, and every code it may carry.

An error frame carries one of these codes, the daemon raises its refusals with them, and the
client turns each into the ``DaemonError`` subclass a program catches (``error_from_code``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, get_args

ErrorCode = Literal[
    # The peer broke the wire protocol (either side).
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "invalid_message",
    "unknown_type",
    "unexpected_message",
    "unsupported_version",
    "truncated_frame",
    "frame_too_large",
    # The handshake: a wrong token, or a peer that hung up in the middle.
    "auth_failed",
    "closed",
    # The daemon is at one of its limits.
    "busy",
    # The daemon refused a run request.
    "invalid_request",
    "unknown_agent",
    "agent_not_found",
    "permission_mode_not_allowed",
    "spawn_failed",
    "path_outside_root",
    "path_not_found",
    "not_a_directory",
    "path_not_accessible",
    "path_changed",
    # The daemon refused or failed a git operation on a worktree.
    "not_a_repository",
    "unknown_worktree",
    "worktree_exists",
    "unsupported_repository",
    "merge_conflict",
    "dirty_checkout",
    "base_moved",
    "no_base_branch",
    "git_failed",
    "disk_budget",
    # A live turn the daemon cannot run: the CLI cannot do live control (or --no-live).
    "live_unsupported",
    # Detachable runs: a ``run_id`` the daemon has already, or one it does not know (or no
    # longer: the message says why when it can).
    "run_exists",
    "unknown_run",
    # The client could not talk to the daemon.
    "unreachable",
    "timeout",
    "connection_lost",
]
ERROR_CODES: Final[frozenset[ErrorCode]] = frozenset(get_args(ErrorCode))


class DaemonError(Exception):
    """The base of the package's errors: ``code`` for programs, ``message`` for people."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code: ErrorCode = code
        self.message = message


class DaemonUnavailable(DaemonError):
    """The daemon could not be reached, did not answer in time, or dropped the connection."""


class AuthenticationFailed(DaemonError):
    """The token was refused (or the daemon could not prove it holds it)."""


class DaemonBusy(DaemonError):
    """The daemon is already running as many runs as it allows."""


class RequestRejected(DaemonError):
    """The daemon refused the request (``path_outside_root``, ``unknown_agent``, …)."""


class ProtocolError(DaemonError):
    """One side broke the wire protocol."""


#: The client's class for each code (a test checks that every code has one).
CLIENT_ERROR_CLASSES: Final[Mapping[ErrorCode, type[DaemonError]]] = {
    "invalid_utf8": ProtocolError,
    "invalid_json": ProtocolError,
    "not_an_object": ProtocolError,
    "invalid_message": ProtocolError,
    "unknown_type": ProtocolError,
    "unexpected_message": ProtocolError,
    "unsupported_version": ProtocolError,
    "truncated_frame": ProtocolError,
    "frame_too_large": ProtocolError,
    "auth_failed": AuthenticationFailed,
    "closed": DaemonUnavailable,
    "busy": DaemonBusy,
    "invalid_request": RequestRejected,
    "unknown_agent": RequestRejected,
    "agent_not_found": RequestRejected,
    "permission_mode_not_allowed": RequestRejected,
    "spawn_failed": RequestRejected,
    "path_outside_root": RequestRejected,
    "path_not_found": RequestRejected,
    "not_a_directory": RequestRejected,
    "path_not_accessible": RequestRejected,
    "path_changed": RequestRejected,
    "not_a_repository": RequestRejected,
    "unknown_worktree": RequestRejected,
    "worktree_exists": RequestRejected,
    "unsupported_repository": RequestRejected,
    "merge_conflict": RequestRejected,
    "dirty_checkout": RequestRejected,
    "base_moved": RequestRejected,
    "no_base_branch": RequestRejected,
    "git_failed": RequestRejected,
    "disk_budget": RequestRejected,
    "live_unsupported": RequestRejected,
    "run_exists": RequestRejected,
    "unknown_run": RequestRejected,
    "unreachable": DaemonUnavailable,
    "timeout": DaemonUnavailable,
    "connection_lost": DaemonUnavailable,
}


def error_from_code(code: ErrorCode, message: str) -> DaemonError:
    """The client's ``DaemonError`` subclass for an error frame's code."""
    return CLIENT_ERROR_CLASSES.get(code, ProtocolError)(code, message)
