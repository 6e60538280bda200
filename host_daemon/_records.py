"""The records that cross the daemon's wire: run requests, probe answers and run events.

These are the contract between the daemon and its clients (the MCP server's task runner among
them). Framing lives in ``_protocol``, the strict converter in ``_strict``, the handshake in
``_connection``.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

AgentName = Literal["claude", "codex", "gemini"]
AGENT_NAMES: tuple[AgentName, ...] = ("claude", "codex", "gemini")

Outcome = Literal["success", "error", "cancelled", "timed_out", "killed"]

AgentEventKind = Literal[
    "init",  # the agent's conversation started or resumed: session_id, data.model
    "text",  # assistant text
    "tool_use",  # the agent called a tool: tool_name, tool_use_id, tool_input
    "tool_result",  # a tool's answer: tool_use_id, text, is_error
    "usage",  # token usage and cost so far: data
    "rate_limit",  # the provider throttled the agent: data.status, data.resets_at
    "error",  # an error the agent reported: text
    "stderr",  # a line the CLI wrote to stderr: text
    "other",  # anything else the CLI printed (kept for the transcript)
]


@attrs.frozen
class RunRequest:
    """Run one agent turn: the prompt, in a directory inside one of the daemon's roots."""

    agent: AgentName
    prompt: str
    cwd: str
    resume_session_id: str | None = None
    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    permission_mode: str | None = None
    timeout_s: float | None = None
    #: The key of a worktree made by ``WorktreeCreate``: the agent then runs in that worktree
    #: (at the project's place in it) instead of in ``cwd``, which must still be inside a root.
    worktree: str | None = None


@attrs.frozen
class AgentInfo:
    """One agent CLI as the daemon found it (path and ``--version``), or why not."""

    name: AgentName
    path: str | None
    version: str | None
    error: str | None = None


@attrs.frozen
class ProbeInfo:
    """What the daemon is and can do right now."""

    daemon_version: str
    protocol_version: int
    agents: list[AgentInfo]
    roots: list[str]
    max_concurrent_runs: int
    active_runs: int
    max_frame_bytes: int
    #: ``git --version`` as the daemon found it; None when git is missing.
    git: str | None = None


@attrs.frozen
class RunStarted:
    """The agent process is running: its pid is also its process group id."""

    pid: int
    argv: list[str]
    cwd: str


# Not slotted: a frozen slotted class sets each field through ``object.__setattr__``, which makes
# construction twice as slow, and a run builds one of these per output line on each side.
@attrs.frozen(slots=False)
class AgentEvent:
    """One normalized event from the agent's output; ``raw`` keeps the line for the transcript."""

    kind: AgentEventKind
    raw: str
    session_id: str | None = None
    text: str | None = None
    tool_name: str | None = None
    tool_use_id: str | None = None
    tool_input: dict[str, Any] | None = None
    is_error: bool | None = None
    data: dict[str, Any] | None = None
    truncated: bool = False


@attrs.frozen
class RunFinished:
    """The run is over: always the last event of a run stream."""

    outcome: Outcome
    exit_code: int | None
    signal: int | None
    session_id: str | None
    final_text: str | None
    cost_usd: float | None
    num_turns: int | None
    usage: dict[str, Any] | None
    error: str | None
    output_truncated: bool = False


RunEvent = RunStarted | AgentEvent | RunFinished


# -- worktrees: one per task, made, committed, reviewed, merged and removed by the daemon ---------

MergeStrategy = Literal["merge", "squash", "rebase"]
MERGE_STRATEGIES: tuple[MergeStrategy, ...] = ("merge", "squash", "rebase")


@attrs.frozen
class WorktreeCreate:
    """Make a worktree for a task on a new branch, from the project's repository."""

    #: The worktree's name: the client's task id (a plain name).
    key: str
    #: The project directory (inside a root); its repository is the one branched.
    cwd: str
    #: The new branch, under ``coding-agent/``.
    branch: str
    #: Where the branch starts; None: the checkout's ``HEAD``.
    base_ref: str | None = None
    #: Copy the checkout's uncommitted changes in as the branch's first commit.
    include_uncommitted: bool = False
    #: False: a project the daemon cannot isolate answers ``WorktreeSkipped``, not an error.
    required: bool = True


@attrs.frozen
class WorktreeSkipped:
    """No worktree was made (the request allowed that): why, for people."""

    reason: str


@attrs.frozen
class WorktreeInfo:
    """A worktree the daemon made: where it is and what it branched from."""

    key: str
    #: The repository's top level: the user's checkout.
    repo: str
    #: The worktree, inside the daemon's worktrees directory.
    path: str
    #: The project directory relative to ``repo`` ("" for the top level).
    subdir: str
    branch: str
    #: The branch the base came from; None when the base was a detached commit.
    base_branch: str | None
    base_commit: str
    head_commit: str


@attrs.frozen
class WorktreeCommit:
    """Commit what changed in a worktree (one commit per turn)."""

    key: str
    message: str


@attrs.frozen
class CommitDone:
    """The commit made, or None when nothing had changed (no empty commits)."""

    commit: str | None
    files: list[str]


@attrs.frozen
class WorktreeDiff:
    """The branch's changes against its base, as a unified diff and per-file figures."""

    key: str
    max_bytes: int = 8 * 1024 * 1024


@attrs.frozen
class FileStat:
    """One changed file: lines added and removed (None for a binary file)."""

    path: str
    added: int | None
    removed: int | None
    status: Literal["added", "modified", "deleted", "renamed", "other"]


@attrs.frozen
class DiffDone:
    """``git diff base_commit head_commit``, cut at the request's ``max_bytes``."""

    base_commit: str
    head_commit: str
    files: list[FileStat]
    diff: str
    truncated: bool


@attrs.frozen
class WorktreeCommits:
    """The commits of a worktree's branch since its base."""

    key: str


@attrs.frozen
class CommitInfo:
    """One commit of a task's branch."""

    sha: str
    subject: str
    body: str
    author: str
    at: str
    files: list[str]


@attrs.frozen
class CommitsDone:
    """The branch's commits since its base, oldest first."""

    commits: list[CommitInfo]


@attrs.frozen
class WorktreeMerge:
    """Land a worktree's branch in its base branch; all or nothing."""

    key: str
    strategy: MergeStrategy = "merge"
    message: str | None = None


@attrs.frozen
class MergeDone:
    """The base branch's new tip; the task's worktree and branch are gone."""

    strategy: MergeStrategy
    base_branch: str
    commit: str
    files: list[str]
    #: True when the user's checkout had the base branch checked out and was moved forward.
    checkout_updated: bool


@attrs.frozen
class WorktreeDiscard:
    """Remove a worktree and, unless told otherwise, its branch."""

    key: str
    delete_branch: bool = True


@attrs.frozen
class DiscardDone:
    """What the discard removed."""

    removed_worktree: bool
    deleted_branch: bool


@attrs.frozen
class WorktreeSweep:
    """Remove every worktree whose key is not in ``keep`` (its task is gone)."""

    keep: list[str]


@attrs.frozen
class SweepDone:
    """The worktrees removed, and the branches kept because they hold commits."""

    removed: list[str]
    kept_branches: list[str]


WorktreeOperation = (
    WorktreeCreate
    | WorktreeCommit
    | WorktreeDiff
    | WorktreeCommits
    | WorktreeMerge
    | WorktreeDiscard
    | WorktreeSweep
)
WorktreeReply = (
    WorktreeInfo
    | WorktreeSkipped
    | CommitDone
    | DiffDone
    | CommitsDone
    | MergeDone
    | DiscardDone
    | SweepDone
)
