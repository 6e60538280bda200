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
