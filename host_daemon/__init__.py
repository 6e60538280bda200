"""The host daemon: runs coding-agent CLIs in process groups for authenticated clients.

The public API: the wire records, the client library (``probe``, ``open_run``, and one
coroutine per worktree operation: ``create_worktree``, ``commit_worktree``, ``diff_worktree``,
``worktree_commits``, ``merge_worktree``, ``discard_worktree``, ``sweep_worktrees``), its errors
(``DaemonError`` and its subclasses, each with a code of ``ErrorCode``), the shared token, the
daemon itself (``serve_daemon``, ``DaemonConfig``) and its process-group helpers
(``spawn_group``, ``become_subreaper``). Import these from ``host_daemon`` only: the ``_modules``
are private and may change.
"""

from ._auth import TokenError, load_or_create_token, token_from_environment
from ._cli import resolve_worktrees_dir
from ._client import (
    RunStream,
    commit_worktree,
    create_worktree,
    diff_worktree,
    discard_worktree,
    merge_worktree,
    open_run,
    probe,
    sweep_worktrees,
    worktree_commits,
)
from ._config import DaemonConfig, default_state_dir, default_token_file
from ._errors import (
    ERROR_CODES,
    AuthenticationFailed,
    DaemonBusy,
    DaemonError,
    DaemonUnavailable,
    ErrorCode,
    ProtocolError,
    RequestRejected,
)
from ._output import OutputLine
from ._process import ExitStatus, GroupProcess, spawn_group
from ._protocol import PROTOCOL_VERSION
from ._records import (
    AGENT_NAMES,
    MERGE_STRATEGIES,
    AgentEvent,
    AgentEventKind,
    AgentInfo,
    AgentName,
    CommitDone,
    CommitInfo,
    CommitsDone,
    DiffDone,
    DiscardDone,
    FileStat,
    MergeDone,
    MergeStrategy,
    Outcome,
    ProbeInfo,
    RunEvent,
    RunFinished,
    RunRequest,
    RunStarted,
    SweepDone,
    WorktreeCommit,
    WorktreeCommits,
    WorktreeCreate,
    WorktreeDiff,
    WorktreeDiscard,
    WorktreeInfo,
    WorktreeMerge,
    WorktreeOperation,
    WorktreeReply,
    WorktreeSkipped,
    WorktreeSweep,
)
from ._server import serve_daemon
from ._signals import watch_shutdown_signals
from ._tree import become_subreaper, is_subreaper
from ._version import __version__

__all__ = [
    "AGENT_NAMES",
    "ERROR_CODES",
    "MERGE_STRATEGIES",
    "PROTOCOL_VERSION",
    "AgentEvent",
    "AgentEventKind",
    "AgentInfo",
    "AgentName",
    "AuthenticationFailed",
    "CommitDone",
    "CommitInfo",
    "CommitsDone",
    "DaemonBusy",
    "DaemonConfig",
    "DaemonError",
    "DaemonUnavailable",
    "DiffDone",
    "DiscardDone",
    "ErrorCode",
    "ExitStatus",
    "FileStat",
    "GroupProcess",
    "MergeDone",
    "MergeStrategy",
    "Outcome",
    "OutputLine",
    "ProbeInfo",
    "ProtocolError",
    "RequestRejected",
    "RunEvent",
    "RunFinished",
    "RunRequest",
    "RunStarted",
    "RunStream",
    "SweepDone",
    "TokenError",
    "WorktreeCommit",
    "WorktreeCommits",
    "WorktreeCreate",
    "WorktreeDiff",
    "WorktreeDiscard",
    "WorktreeInfo",
    "WorktreeMerge",
    "WorktreeOperation",
    "WorktreeReply",
    "WorktreeSkipped",
    "WorktreeSweep",
    "__version__",
    "become_subreaper",
    "commit_worktree",
    "create_worktree",
    "default_state_dir",
    "default_token_file",
    "diff_worktree",
    "discard_worktree",
    "is_subreaper",
    "load_or_create_token",
    "merge_worktree",
    "open_run",
    "probe",
    "resolve_worktrees_dir",
    "serve_daemon",
    "spawn_group",
    "sweep_worktrees",
    "token_from_environment",
    "watch_shutdown_signals",
    "worktree_commits",
]
