"""The contract of a live driver: one agent CLI kept alive on stdin, as a sans-IO state machine.

A live session (``_live``) owns the process; its driver only turns what the CLI printed into
events and what the client wants into lines for the CLI's stdin. Every call returns a
``DriverOutput``: events for the client, permission requests to resolve (policy, client or
timeout), lines to write, and, once the agent's turn ended, the turn's ``RunFinished``.

One driver per CLI: Claude Code's stream-json control protocol (``_live_claude``), Codex's
``app-server`` JSON-RPC (``_live_codex``) and Gemini's Agent Client Protocol (``_live_gemini``).
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from ._errors import DaemonError
from ._parsers import Reason
from ._records import AgentEvent, ApprovalBehavior, RunFinished, RunRequest


@attrs.frozen
class PermissionAsk:
    """The agent asks to use a tool, normalized (see ``PermissionRequest``)."""

    #: The driver's own id for the request (what ``decide`` takes back).
    request_id: str
    tool_name: str
    input: dict[str, Any]
    description: str | None = None
    suggestions: list[dict[str, Any]] = attrs.field(factory=list)
    tool_use_id: str | None = None
    agent_tool_name: str | None = None


@attrs.frozen
class DriverOutput:
    """What one step of a driver produced, in order of use."""

    events: list[AgentEvent] = attrs.field(factory=list)
    asks: list[PermissionAsk] = attrs.field(factory=list)
    #: Lines for the agent's stdin, each ending in ``\\n``.
    writes: list[bytes] = attrs.field(factory=list)
    #: The turn ended; ``session_open`` unless the driver knows the agent is going away.
    turn_finished: RunFinished | None = None
    #: Close the agent's stdin (the polite end of a session).
    close_stdin: bool = False
    #: End the process group now (a CLI whose interrupt leaves a tool running, say).
    end_process: bool = False


class DriverRefused(DaemonError):
    """The driver cannot do that now (``steer`` on a CLI that cannot, a decision for a request
    that is not pending); the message says why, for the client."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_request", message)


class LiveDriver(Protocol):
    """One live CLI process's protocol; see the module docstring."""

    #: Whether ``steer`` can reach a running turn.
    steerable: bool

    @property
    def session_id(self) -> str | None:
        """The agent's conversation id, once it said it (the id a later session resumes)."""

    @property
    def in_turn(self) -> bool:
        """Whether a turn is running (started and its end not yet seen)."""

    def start(self, prompt: str) -> DriverOutput:
        """The session's first turn: everything to write after the spawn (handshakes too)."""

    def feed(self, line: str, *, truncated: bool) -> DriverOutput:
        """One line the CLI printed on stdout."""

    def note_stderr(self, text: str) -> None:
        """One line the CLI printed on stderr (kept for error messages)."""

    def prompt(self, text: str) -> DriverOutput:
        """The next turn, in the same conversation (the session is idle)."""

    def steer(self, text: str) -> DriverOutput:
        """More instructions into the running turn; ``DriverRefused`` if the CLI cannot."""

    def decide(
        self,
        request_id: str,
        behavior: ApprovalBehavior,
        *,
        message: str | None = None,
        updated_input: dict[str, Any] | None = None,
    ) -> DriverOutput:
        """Answer a pending permission request; ``DriverRefused`` if it is not pending."""

    def interrupt(self) -> DriverOutput:
        """Stop the running turn, keep the conversation."""

    def close(self) -> DriverOutput:
        """End the session politely (usually: close stdin)."""

    def finish(self, exit_code: int | None, signal: int | None, *, reason: Reason) -> RunFinished:
        """The process ended (in a turn or idle): the ``RunFinished`` of the turn in flight."""


class LiveAdapter(Protocol):
    """How to start one CLI live, and its driver."""

    def live_argv(self, executable: str, request: RunRequest, permission_mode: str) -> list[str]:
        """The argv of a live process (prompts go to stdin, not argv)."""

    def new_driver(self, request: RunRequest) -> LiveDriver:
        """A fresh driver for one process (``request.resume_session_id`` resumes)."""
