"""What a run's events say, gathered into its :class:`RunReport`, and one-line summaries."""

from __future__ import annotations

import datetime
from pathlib import PurePosixPath
from typing import Any

import attrs

from host_daemon import AgentEvent, RunFinished

from ._model import Clock, RunOutcome, RunReport

SUMMARY_CHARS = 300
_EDIT_WORDS = ("edit", "write", "replace", "patch", "create", "change")
_PATH_KEYS = ("file_path", "path", "notebook_path", "filename")


@attrs.define
class ReportBuilder:
    """Gathers what a run's events say, for its :class:`RunReport`."""

    clock: Clock
    cwd: str
    asked_session: str | None
    started_at: datetime.datetime = attrs.field(init=False)
    started_monotonic: float = attrs.field(init=False)
    session_id: str | None = None
    session_note: str | None = None
    files: dict[str, None] = attrs.field(factory=dict)
    last_error: str | None = None

    def __attrs_post_init__(self) -> None:
        self.started_at = self.clock.wall()
        self.started_monotonic = self.clock.monotonic()

    def resume(self, started_at: datetime.datetime, seen: list[AgentEvent]) -> None:
        """Gather a re-attached run: it began at ``started_at`` (its length then comes from the
        wall clock), and ``seen`` are the events recorded before, oldest first."""
        self.started_at = started_at
        elapsed = max(0.0, (self.clock.wall() - started_at).total_seconds())
        self.started_monotonic = self.clock.monotonic() - elapsed
        for event in seen:
            self.see(event)

    def see(self, event: AgentEvent) -> None:
        if event.kind == "init" and event.session_id:
            self.session_id = event.session_id
            if self.asked_session and event.session_id != self.asked_session:
                self.session_note = (
                    f"asked the agent to resume session {self.asked_session}, "
                    f"it reported session {event.session_id}"
                )
        elif event.kind == "tool_use" and event.tool_input and event.tool_name:
            name = event.tool_name.lower()
            if any(word in name for word in _EDIT_WORDS):
                self._see_paths(event.tool_input)
        elif event.kind == "error" and event.text:
            self.last_error = event.text

    def _see_paths(self, tool_input: dict[str, Any]) -> None:
        """File paths an editing tool names: a path argument, or a list of changes (codex)."""
        changes = tool_input.get("changes")
        candidates = changes if isinstance(changes, list) else [tool_input]
        for candidate in candidates:
            if not isinstance(candidate, dict):
                continue
            for key in _PATH_KEYS:
                value = candidate.get(key)
                if isinstance(value, str) and value:
                    self.files[self._relative(value)] = None
                    break

    def _relative(self, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() and path.is_relative_to(self.cwd):
            return str(path.relative_to(self.cwd))
        return value

    def build(
        self,
        finished: RunFinished | None,
        error: str | None,
        stop_reason: RunOutcome | None,
        stop_message: str | None = None,
    ) -> RunReport:
        common: dict[str, Any] = {
            "started_at": self.started_at,
            "finished_at": self.clock.wall(),
            "duration_s": round(self.clock.monotonic() - self.started_monotonic, 3),
            "files_changed": list(self.files),
            "session_note": self.session_note,
        }
        if finished is not None:
            return RunReport(
                outcome=finished.outcome,
                final_text=finished.final_text,
                cost_usd=finished.cost_usd,
                num_turns=finished.num_turns,
                usage=finished.usage,
                error=finished.error,
                exit_code=finished.exit_code,
                signal=finished.signal,
                session_id=finished.session_id or self.session_id,
                limit_resets_at=_resets_at(finished),
                **common,
            )
        if stop_reason is not None:
            why = "ended by the client" if stop_reason == "cancelled" else "the server stopped"
            return RunReport(
                outcome=stop_reason,
                error=stop_message or f"run stopped: {why}",
                session_id=self.session_id,
                **common,
            )
        return RunReport(
            outcome="interrupted" if error is None else "error",
            error=error or "the run stopped before the agent finished",
            session_id=self.session_id,
            **common,
        )


def _resets_at(finished: RunFinished) -> datetime.datetime | None:
    """The limit's reset time as a UTC time (``None``: no limit, or no time given)."""
    if finished.limit is None or finished.limit.resets_at is None:
        return None
    return datetime.datetime.fromtimestamp(finished.limit.resets_at, datetime.UTC)


def summarize(event: AgentEvent) -> str:
    """A one-line human summary of an agent event."""
    if event.kind == "tool_use":
        detail = ""
        if event.tool_input:
            first = next(iter(event.tool_input.values()))
            detail = f" {first}" if isinstance(first, str) else ""
        text = f"{event.tool_name or 'tool'}{detail}"
    elif event.kind == "init":
        text = f"session {event.session_id}"
    elif event.kind == "usage" and event.data:
        scalars = [(k, v) for k, v in event.data.items() if isinstance(v, int | float | str)]
        text = ", ".join(f"{k}={v}" for k, v in scalars[:6])
    else:
        text = event.text or event.raw
    text = " ".join(text.split())
    if len(text) > SUMMARY_CHARS:
        text = text[: SUMMARY_CHARS - 1] + "…"
    return f"{event.kind}: {text}"


def event_data(event: AgentEvent) -> dict[str, Any]:
    """The event's fields as an event's data (``None``/``False`` left out)."""
    fields = attrs.asdict(event, recurse=False)
    fields.pop("raw")
    fields.pop("seq", None)  # the frame's number is the event's ``daemon_seq``
    return {key: value for key, value in fields.items() if value not in (None, False)}


def seen_again(data: dict[str, Any]) -> AgentEvent | None:
    """The agent event a stored event's data (:func:`event_data`) says, as far as the report
    needs it (its kind, session, tool); ``None`` when the data is not such an event."""
    kind, tool_input = data.get("kind"), data.get("tool_input")
    if kind not in ("init", "tool_use", "error"):
        return None
    return AgentEvent(
        kind=kind,
        raw="",
        session_id=_text(data.get("session_id")),
        text=_text(data.get("text")),
        tool_name=_text(data.get("tool_name")),
        tool_input=tool_input if isinstance(tool_input, dict) else None,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
