"""Agent event parsers read recorded CLI streams and decide outcomes from the terminal event.

Claude Code and the shared rules here; Codex and Gemini in ``test_daemon_agents_codex_gemini``.
"""

from __future__ import annotations

import json
import pathlib
import signal

import pytest

from host_daemon._agents import ADAPTERS, EventParser
from host_daemon._records import AgentEvent, RunFinished, RunRequest

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _replay(
    agent: str,
    fixture: str,
    exit_code: int | None,
    *,
    sig: int | None = None,
    reason: str = "exited",
) -> tuple[list[AgentEvent], RunFinished, EventParser]:
    parser = ADAPTERS[agent].new_parser()
    events: list[AgentEvent] = []
    for line in (FIXTURES / fixture).read_text().splitlines():
        events.extend(parser.feed(line))
    finished = parser.finish(exit_code, sig, reason=reason)  # type: ignore[arg-type]
    return events, finished, parser


def _kinds(events: list[AgentEvent]) -> list[str]:
    return [event.kind for event in events]


def test_claude_success_with_tool_use() -> None:
    """A Claude run that used Bash succeeds with its session id, final text, cost and turns."""
    events, finished, _ = _replay("claude", "claude_success_tool_use.jsonl", 0)
    assert _kinds(events) == ["init", "tool_use", "tool_result", "text", "usage"]
    init = events[0]
    assert init.session_id == finished.session_id
    assert finished.outcome == "success"
    assert finished.final_text == "Created f.txt."
    assert finished.num_turns == 2
    assert finished.cost_usd is not None
    assert finished.cost_usd > 0
    assert finished.usage is not None
    assert finished.usage["output_tokens"] > 0
    tool_use = events[1]
    assert tool_use.tool_name == "Bash"
    assert tool_use.tool_input == {"command": "echo hi > f.txt", "description": "scripted command"}
    assert events[2].tool_use_id == tool_use.tool_use_id
    assert events[2].is_error is False


def test_every_line_is_kept_once_in_raw() -> None:
    """Joining the non-empty ``raw`` fields gives back the recorded stream exactly."""
    text = (FIXTURES / "claude_api_error.jsonl").read_text()
    events, _, _ = _replay("claude", "claude_api_error.jsonl", 1)
    assert [event.raw for event in events if event.raw] == text.splitlines()


def test_claude_max_turns_is_an_error_with_a_clear_message() -> None:
    """Max turns (exit 1 after its result) is an error that says the turn limit was reached."""
    events, finished, _ = _replay("claude", "claude_max_turns.jsonl", 1)
    assert finished.outcome == "error"
    assert finished.error is not None
    assert "maximum number of turns" in finished.error
    assert "(1)" in finished.error
    assert finished.num_turns == 2
    assert events[-1].kind == "error"


def test_claude_is_error_result_with_exit_zero_is_an_error() -> None:
    """A failed API call reported as ``success`` with ``is_error`` is an error even on exit 0."""
    _, finished, _ = _replay("claude", "claude_api_error.jsonl", 0)
    assert finished.outcome == "error"
    assert finished.error is not None
    assert "API error 400" in finished.error
    assert "Prompt is too long" in finished.error


def test_claude_rate_limit_event_is_surfaced() -> None:
    """A ``rate_limit_event`` becomes a ``rate_limit`` event with its status and reset time."""
    events, finished, _ = _replay("claude", "claude_rate_limit.jsonl", 0)
    [rate_limit] = [event for event in events if event.kind == "rate_limit"]
    assert rate_limit.data is not None
    assert rate_limit.data["status"] == "allowed_warning"
    assert rate_limit.data["resets_at"] == 1764230400
    assert finished.outcome == "success"


def test_claude_unknown_event_types_are_kept_as_other() -> None:
    """Unknown event types and non-JSON lines are ``other`` events with the raw line."""
    events, finished, _ = _replay("claude", "claude_unknown_event.jsonl", 0)
    others = [event for event in events if event.kind == "other"]
    assert json.loads(others[0].raw)["type"] == "future_event"
    assert others[1].raw == "this line is not JSON"
    assert finished.outcome == "success"


def test_claude_permission_denial_does_not_fail_the_run() -> None:
    """A denied tool call is reported in the usage data; the run still succeeds."""
    events, finished, _ = _replay("claude", "claude_permission_denied.jsonl", 0)
    [usage] = [event for event in events if event.kind == "usage"]
    assert usage.data is not None
    assert usage.data["permission_denials"][0]["tool_name"] == "Bash"
    assert finished.outcome == "success"


def test_claude_without_result_is_an_error_even_on_exit_zero() -> None:
    """A stream that ends without its result event is an error."""
    parser = ADAPTERS["claude"].new_parser()
    first = (FIXTURES / "claude_success_tool_use.jsonl").read_text().splitlines()[0]
    parser.feed(first)
    finished = parser.finish(0, None, reason="exited")
    assert finished.outcome == "error"
    assert finished.error == "claude exited with code 0 before its result event"
    assert finished.session_id is not None


def test_claude_success_result_with_nonzero_exit_is_an_error() -> None:
    """The exit code is a secondary signal: a success result followed by exit 2 is an error."""
    _, finished, _ = _replay("claude", "claude_success_tool_use.jsonl", 2)
    assert finished.outcome == "error"
    assert finished.error is not None
    assert "exited with code 2" in finished.error


@pytest.mark.parametrize("reason", ["cancelled", "timed_out", "killed"])
def test_interrupted_runs_report_the_daemon_reason(reason: str) -> None:
    """A run the daemon stopped reports why, with what the agent said so far."""
    _, finished, _ = _replay(
        "claude", "claude_success_tool_use.jsonl", None, sig=signal.SIGTERM, reason=reason
    )
    assert finished.outcome == reason
    assert finished.signal == signal.SIGTERM
    assert finished.session_id is not None


def test_a_signal_the_daemon_did_not_send_is_killed() -> None:
    """An agent that died of a signal on its own (OOM killer) is ``killed``, naming it."""
    _, finished, _ = _replay("claude", "claude_max_turns.jsonl", None, sig=signal.SIGKILL)
    assert finished.outcome == "killed"
    assert finished.error == "claude was killed by SIGKILL"


def test_truncated_lines_are_kept_and_flagged() -> None:
    """A line cut at the line limit is an ``other`` event and marks the output truncated."""
    parser = ADAPTERS["claude"].new_parser()
    [event] = parser.feed('{"type":"assistant","message":{"content":[{"ty', truncated=True)
    assert event.kind == "other"
    assert event.truncated is True
    assert parser.finish(0, None, reason="exited").output_truncated is True


def _claude_request(resume: str | None) -> RunRequest:
    return RunRequest(agent="claude", prompt="go", cwd="/work", resume_session_id=resume)


def test_claude_resume_that_starts_a_new_conversation_is_an_error() -> None:
    """A resume whose init names another session id (a silent new conversation) is an error."""
    parser = ADAPTERS["claude"].new_parser(_claude_request("11111111-2222-4333-8444-555555555555"))
    events = []
    for line in (FIXTURES / "claude_success_tool_use.jsonl").read_text().splitlines():
        events.extend(parser.feed(line))
    finished = parser.finish(0, None, reason="exited")
    assert finished.outcome == "error"
    assert finished.error is not None
    assert "instead of resuming 11111111-2222-4333-8444-555555555555" in finished.error
    assert [e.kind for e in events][:2] == ["init", "error"]


def test_claude_resume_of_the_same_session_succeeds() -> None:
    """A resume whose init keeps the requested session id is a normal run."""
    lines = (FIXTURES / "claude_success_tool_use.jsonl").read_text().splitlines()
    session_id = json.loads(lines[0])["session_id"]
    parser = ADAPTERS["claude"].new_parser(_claude_request(session_id))
    for line in lines:
        parser.feed(line)
    assert parser.finish(0, None, reason="exited").outcome == "success"
