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

#: ``interrupted``: a live turn stopped by an ``Interrupt`` (the conversation goes on).
#: ``limited``: the agent's account hit a usage or rate limit (``RunFinished.limit`` says until).
Outcome = Literal["success", "error", "cancelled", "timed_out", "killed", "interrupted", "limited"]

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
    #: A supervised live turn: the agent stays alive between turns (keyed by ``session_key``),
    #: its permission requests are relayed to the client, and the client may steer or interrupt.
    live: bool = False
    #: The live session this turn belongs to (the client's task id); required with ``live``.
    session_key: str | None = None
    #: Close the live process after this long without a turn (at most the daemon's own limit).
    idle_timeout_s: float | None = None
    #: Deny a permission request nobody answered after this long (at most the daemon's limit).
    approval_timeout_s: float | None = None
    #: The task creator's narrowing of the daemon's allow rules: None keeps them all; a list
    #: auto-allows only what matches both a daemon rule and one of these (never widens).
    allow_rules: list[str] | None = None
    #: More rules that deny at once, on top of the daemon's (Claude's rule syntax).
    deny_rules: list[str] = attrs.field(factory=list)
    #: Rules a person allowed for the rest of this task (``remember: task`` on an approval).
    granted_rules: list[str] = attrs.field(factory=list)
    #: Makes the run *detachable*: chosen by the client (``[A-Za-z0-9_-]{8,64}``, 128 random
    #: bits), it names the run for ``RunAttach`` and ``RunCancel``; the run's frames are numbered
    #: (``seq``) and spooled, and the end of the stream detaches the run instead of cancelling it.
    run_id: str | None = None


@attrs.frozen
class AgentInfo:
    """One agent CLI as the daemon found it (path and ``--version``), or why not."""

    name: AgentName
    path: str | None
    version: str | None
    error: str | None = None
    #: Whether this CLI can run supervised live turns here (``RunRequest.live``).
    live: bool = False
    #: Why not (an old version, ``--no-live``), or how (``codex app-server``), for people.
    live_note: str | None = None


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
    #: Live sessions open now (idle or in a turn), and how many the daemon keeps at most.
    live_sessions: int = 0
    max_live_sessions: int = 0
    #: The host owner's policy: rules that allow or deny a permission request at once.
    allow_rules: list[str] = attrs.field(factory=list)
    deny_rules: list[str] = attrs.field(factory=list)
    #: How long a detachable run goes on without a stream (0: it is cancelled at once).
    detach_grace_s: float = 0.0
    #: Detachable runs in flight with no stream attached now.
    detached_runs: int = 0


@attrs.frozen
class RunStarted:
    """The agent process is running: its pid is also its process group id."""

    pid: int
    argv: list[str]
    cwd: str
    #: A live turn: the agent stays alive after it (``RunFinished.session_open``).
    live: bool = False
    #: The live process was already running (an earlier turn's): nothing was spawned.
    reused: bool = False
    #: ``TurnInput`` during this turn reaches the agent (Claude queues it, Codex steers).
    steerable: bool = False
    #: A detachable run's frame number (1, 2, 3… per run); None for a run without ``run_id``.
    seq: int | None = None


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
    #: A detachable run's frame number (1, 2, 3… per run); None for a run without ``run_id``.
    seq: int | None = None


@attrs.frozen
class LimitInfo:
    """The agent's account hit a usage or rate limit, as the agent's own events said."""

    #: When the limit resets (epoch seconds), when the agent said; None: unknown (back off).
    resets_at: float | None
    #: Which event said so: "claude rate_limit_event", "claude api_error 429", "codex error"…
    source: str
    message: str | None = None


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
    #: A live turn ended and its agent stays alive, idle, for the session's next turn.
    session_open: bool = False
    #: ``outcome == "limited"``: the limit and its reset time.
    limit: LimitInfo | None = None
    #: A detachable run's frame number (1, 2, 3… per run); None for a run without ``run_id``.
    seq: int | None = None


# -- live turns: permission requests, decisions, steering, interrupts -----------------------------

ApprovalBehavior = Literal["allow", "deny"]
APPROVAL_BEHAVIORS: tuple[ApprovalBehavior, ...] = ("allow", "deny")
#: Who resolved a permission request: the client (a person, over MCP), the policy rules, the
#: approval timeout, or the session's end (the turn stopped while it was pending).
DecidedBy = Literal["client", "policy", "timeout", "closed"]


@attrs.frozen
class PermissionRequest:
    """Daemon → client: the agent asks to use a tool; answer with a ``PermissionDecision``.

    ``tool_name`` and ``input`` are normalized across agents (``Bash`` with ``command``,
    ``Edit``/``Write``/``Read`` with ``file_path``; other tools keep the agent's name), so one
    rule syntax (Claude's) covers all three; ``agent_tool_name`` is the agent's own name.
    """

    request_id: str
    tool_name: str
    input: dict[str, Any]
    #: When it is denied if nobody answers (seconds from now).
    timeout_s: float
    description: str | None = None
    #: The agent's own proposals (Claude's ``permission_suggestions``), as it sent them.
    suggestions: list[dict[str, Any]] = attrs.field(factory=list)
    tool_use_id: str | None = None
    agent_tool_name: str | None = None
    #: A detachable run's frame number (1, 2, 3… per run); None for a run without ``run_id``.
    seq: int | None = None


@attrs.frozen
class PermissionResolved:
    """Daemon → client: a permission request was decided, and by whom; the agent has it.

    A request the policy decided at once comes only as this frame (no ``PermissionRequest``).
    """

    request_id: str
    tool_name: str
    input: dict[str, Any]
    behavior: ApprovalBehavior
    decided_by: DecidedBy
    message: str | None = None
    #: The policy rule that decided, or the rule a person allowed for the rest of the session.
    rule: str | None = None
    #: Who the client said decided (``decided_by == "client"``): "approve tool", "elicitation"…
    decider: str | None = None
    #: A detachable run's frame number (1, 2, 3… per run); None for a run without ``run_id``.
    seq: int | None = None


@attrs.frozen
class PermissionDecision:
    """Client → daemon, during a live turn: the answer to one ``PermissionRequest``."""

    request_id: str
    behavior: ApprovalBehavior
    #: Why (a deny's message reaches the model).
    message: str | None = None
    #: Allow with the tool's input changed (Claude only; others take it as a plain allow).
    updated_input: dict[str, Any] | None = None
    #: Allow this rule for the rest of the session (and the client keeps it for the task).
    remember_rule: str | None = None
    #: Who decided, for the log ("approve tool", "elicitation", "dashboard").
    decider: str | None = None


@attrs.frozen
class TurnInput:
    """Client → daemon, during a live turn: more instructions for the running turn (steering)."""

    text: str


@attrs.frozen
class InputAccepted:
    """Daemon → client: the ``TurnInput`` reached the agent (``steered``), or why not."""

    steered: bool
    message: str | None = None


@attrs.frozen
class Interrupt:
    """Client → daemon, during a live turn: stop the turn, keep the conversation."""


@attrs.frozen
class SessionClose:
    """Close a live session (idle or in a turn) and its process group: the task ended, or its
    worktree is about to be merged or discarded."""

    key: str


@attrs.frozen
class SessionClosed:
    """Whether a live session with that key was open (and is now gone)."""

    closed: bool


# -- detachable runs: attach to a run by id, cancel it by id -------------------------------------


@attrs.frozen
class RunAttach:
    """Client → daemon, the request of a fresh connection: stream run ``run_id`` again.

    The daemon answers ``RunAttached``, then every spooled frame numbered above ``after_seq``,
    in order, then the live ones; a stream attached before is closed (taken over, no cancel).
    """

    run_id: str
    #: The last frame the client has (0: none).
    after_seq: int


@attrs.frozen
class RunAttached:
    """Daemon → client: the stream is attached; frames from ``after_seq + 1`` follow."""

    run_id: str
    #: The number the daemon's next new frame of the run will carry.
    next_seq: int
    #: The run is a live turn: the stream takes ``TurnInput``, ``PermissionDecision``,
    #: ``Interrupt``.
    live: bool
    #: The run's first frame, as sent when it started (also the client's ``RunStream.started``).
    started: RunStarted


@attrs.frozen
class RunCancel:
    """Client → daemon: end run ``run_id`` (it finishes ``cancelled``), on the run's own stream
    or as the request of a fresh connection (answered ``RunCancelled``)."""

    run_id: str


@attrs.frozen
class RunCancelled:
    """Daemon → client: whether a run ``run_id`` of this client was known (and is now ending)."""

    run_id: str
    found: bool


RunEvent = (
    RunStarted | AgentEvent | PermissionRequest | PermissionResolved | InputAccepted | RunFinished
)


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
