"""The agent event parsers' common part: NDJSON lines as ``AgentEvent``s, and the outcome.

Each CLI's own event types are mapped by its subclass in ``_agent_events``. Each parser decides
the run's ``RunFinished`` from the CLI's terminal event, the exit code being a secondary signal
only (each CLI has exit codes that contradict its events: Claude Code can exit 0 after an
``is_error`` result, Codex exits 0 after ``turn.failed``).

Events and raw lines: every printed line yields at least one event, and the first event of a line
carries the line in ``raw`` (the transcript). When one line yields several events (an assistant
message with several content blocks, a result that also reports an error), the later ones carry
``raw=""`` so that a transcript built from ``raw`` holds each line exactly once.
"""

from __future__ import annotations

import json
import re
import signal as signal_module
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import orjson

from ._records import AgentEvent, AgentEventKind, LimitInfo, Outcome, RunFinished, RunRequest

__all__ = ["EventParser", "Reason", "signal_name"]

Reason = Literal["exited", "cancelled", "timed_out", "killed"]

_STDERR_CHARS: Final = 500
_ANSI_ESCAPE: Final = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def signal_name(number: int) -> str:
    """``SIGTERM`` for 15; ``signal N`` for a number with no name."""
    try:
        return signal_module.Signals(number).name
    except ValueError:
        return f"signal {number}"


_INTERRUPTED: Final[Mapping[str, str]] = {
    "cancelled": "the run was cancelled",
    "timed_out": "the run timed out",
    "killed": "the run was killed (daemon shutdown)",
}


class EventParser:
    """Reads one run's output line by line; ``finish`` decides the outcome.

    Subclasses handle one CLI's event types in ``_on_event`` and decide in ``_decide``.
    """

    agent = "agent"

    def __init__(self, request: RunRequest | None = None) -> None:
        self.request = request
        self.session_id: str | None = None
        self.final_text: str | None = None
        self.cost_usd: float | None = None
        self.num_turns: int | None = None
        self.usage: dict[str, Any] | None = None
        self.output_truncated = False
        self.last_error: str | None = None
        self._stderr_error: str | None = None
        self._stderr_last: str | None = None
        self.resume_mismatch: str | None = None
        #: A usage or rate limit the agent's events named: an error outcome becomes ``limited``.
        self.limit: LimitInfo | None = None
        #: The wall clock (epoch seconds) a limit's "try again at" time is read against.
        self.clock: Callable[[], float] = time.time
        self._raw = ""

    def feed(self, line: str, *, truncated: bool = False) -> list[AgentEvent]:
        """Normalize one stdout line; unknown or unparsable lines become ``other`` events."""
        if truncated:
            self.output_truncated = True
        if not line or line.isspace():
            return []
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = _loads_lenient(line)
        if not isinstance(obj, dict) or truncated:
            return [AgentEvent(kind="other", raw=line, truncated=truncated)]
        self._raw = line
        events = self._on_event(obj)
        if not events:
            events = [self._event("other", data={"type": obj.get("type")})]
        return events

    def _started(self, session_id: str | None, data: dict[str, Any]) -> list[AgentEvent]:
        """The ``init`` event; on a resume, also an error if the CLI named another session.

        Each CLI keeps the session id when it resumes: another id is a new conversation.
        """
        self.session_id = session_id or self.session_id
        events = [self._event("init", session_id=self.session_id, data=data)]
        expected = self.request.resume_session_id if self.request is not None else None
        if expected is not None and self.session_id != expected:
            started = f"{self.agent} started conversation {self.session_id}"
            self.resume_mismatch = f"{started} instead of resuming {expected}"
            events.append(self._event("error", text=self.resume_mismatch, is_error=True))
        return events

    def _event(self, kind: AgentEventKind, **fields: Any) -> AgentEvent:
        """An event of the line being fed: the first one of the line carries it in ``raw``."""
        raw, self._raw = self._raw, ""
        return AgentEvent(kind=kind, raw=raw, **fields)

    def finish(self, exit_code: int | None, signal: int | None, *, reason: Reason) -> RunFinished:
        """The run's outcome: the daemon's reason first, then the terminal event, then the exit.

        A resume that started another conversation is an error whatever the CLI reported.
        """
        outcome: Outcome
        error: str | None
        if reason != "exited":
            outcome, error = reason, _INTERRUPTED[reason]
        elif signal is not None:
            outcome, error = "killed", f"{self.agent} was killed by {signal_name(signal)}"
        elif self.resume_mismatch is not None:
            outcome, error = "error", self.resume_mismatch
        else:
            outcome, error = self._decide(exit_code)
        limit = self.limit if outcome == "error" else None
        if limit is not None:
            outcome = "limited"
        return RunFinished(
            outcome=outcome,
            exit_code=exit_code,
            signal=signal,
            session_id=self.session_id,
            final_text=self.final_text,
            cost_usd=self.cost_usd,
            num_turns=self.num_turns,
            usage=self.usage,
            error=error,
            output_truncated=self.output_truncated,
            limit=limit,
        )

    def _on_event(self, obj: dict[str, Any]) -> list[AgentEvent]:
        raise NotImplementedError

    def _decide(self, exit_code: int | None) -> tuple[Outcome, str | None]:
        raise NotImplementedError

    def note_stderr(self, line: str) -> None:
        """Note a stderr line: some failures say why only there (a bad resume id).

        Kept: the last line that starts with "error" (a backtrace may follow it) and the last
        non-empty line.
        """
        text = _ANSI_ESCAPE.sub("", line).strip()[:_STDERR_CHARS]
        if text:
            self._stderr_last = text
            if text.lower().startswith("error"):
                self._stderr_error = text

    def _failure_detail(self) -> str | None:
        """The last error event's message, else what stderr said last about an error."""
        return self.last_error or self._stderr_error or self._stderr_last

    def _exit_without_terminal(self, exit_code: int | None, what: str) -> str:
        message = f"{self.agent} exited with code {exit_code} before its {what}"
        detail = self._failure_detail()
        return f"{message}: {detail}" if detail else message


def _loads_lenient(line: str) -> Any:
    """What the stdlib makes of a line orjson refused (``NaN``, ``Infinity``), else ``None``."""
    try:
        return json.loads(line)
    except ValueError:
        return None
