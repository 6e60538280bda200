"""Usage limits from the agents' own events: recorded real-CLI streams end as ``limited``.

Fixtures: ``claude_usage_limit_429`` / ``claude_overloaded_529`` (Claude Code 2.1.332 against a
scripted model answering 429 ``rate_limit_error`` with the unified rate-limit headers, or 529
``overloaded_error``, ``CLAUDE_CODE_MAX_RETRIES=0``), ``codex_usage_limit`` and
``gemini_quota_exhausted`` (see recordings.json).
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib

from host_daemon._agents import ADAPTERS
from host_daemon._limits import claude_limit, codex_limit, gemini_limit
from host_daemon._records import RunFinished

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
_NOW = dt.datetime(2026, 12, 6, 14, 53, 31, tzinfo=dt.UTC).timestamp()


def _replay(agent: str, lines: list[str], exit_code: int) -> RunFinished:
    parser = ADAPTERS[agent].new_parser()
    parser.clock = lambda: _NOW
    for line in lines:
        parser.feed(line)
    return parser.finish(exit_code, None, reason="exited")


def _lines(fixture: str) -> list[str]:
    return (FIXTURES / fixture).read_text().splitlines()


def test_claude_429_result_is_limited_without_a_reset() -> None:
    """Claude's is_error result with api_error_status 429 is ``limited``; no event gave a reset."""
    finished = _replay("claude", _lines("claude_usage_limit_429.jsonl"), 1)
    assert finished.outcome == "limited"
    assert finished.limit is not None
    assert finished.limit.source == "claude api_error 429"
    assert finished.limit.resets_at is None
    assert "rate limit" in (finished.limit.message or "")


def test_claude_429_after_a_rate_limit_event_takes_its_reset() -> None:
    """A ``rate_limit_event`` before the refused request gives the limit its ``resetsAt``."""
    lines = _lines("claude_usage_limit_429.jsonl")
    event = {
        "type": "rate_limit_event",
        "rate_limit_info": {"status": "rejected", "resetsAt": 1796569000, "rateLimitType": "x"},
    }
    finished = _replay("claude", [lines[0], json.dumps(event), *lines[1:]], 1)
    assert finished.outcome == "limited"
    assert finished.limit is not None
    assert finished.limit.resets_at == 1796569000


def test_claude_overloaded_is_an_error_not_a_limit() -> None:
    """A 529 overloaded result is the provider's capacity: an ordinary error."""
    finished = _replay("claude", _lines("claude_overloaded_529.jsonl"), 1)
    assert finished.outcome == "error"
    assert finished.limit is None


def test_claude_success_after_a_warning_is_not_limited() -> None:
    """An ``allowed_warning`` rate-limit event on a successful run changes nothing."""
    finished = _replay("claude", _lines("claude_rate_limit.jsonl"), 0)
    assert finished.outcome == "success"
    assert finished.limit is None


def test_codex_usage_limit_reads_the_try_again_time() -> None:
    """Codex's usage-limit turn.failed is ``limited`` until the end of the minute it names."""
    finished = _replay("codex", _lines("codex_usage_limit.jsonl"), 1)
    assert finished.outcome == "limited"
    assert finished.limit is not None
    assert finished.limit.source == "codex error"
    expected = dt.datetime(2026, 12, 6, 14, 56, tzinfo=dt.UTC).timestamp()
    assert finished.limit.resets_at == expected


def test_codex_reset_time_past_today_is_tomorrow() -> None:
    """A "try again at" clock time already past today means that time tomorrow."""
    limit = codex_limit("You've hit your usage limit. try again at 1:05 AM.", _NOW, dt.UTC)
    assert limit is not None
    expected = dt.datetime(2026, 12, 7, 1, 6, tzinfo=dt.UTC).timestamp()
    assert limit.resets_at == expected


def test_codex_reset_with_a_date() -> None:
    """A "try again at Dec 29th, 2026 10:15 PM" time is read with its date."""
    message = "You've hit your usage limit. try again at Dec 29th, 2026 10:15 PM."
    limit = codex_limit(message, _NOW, dt.UTC)
    assert limit is not None
    expected = dt.datetime(2026, 12, 29, 22, 16, tzinfo=dt.UTC).timestamp()
    assert limit.resets_at == expected


def test_codex_other_errors_are_not_limits() -> None:
    """A Codex error that names no limit stays an error."""
    assert codex_limit("unexpected status 400 Bad Request", _NOW, dt.UTC) is None
    finished = _replay("codex", _lines("codex_api_error.jsonl"), 1)
    assert finished.outcome == "error"


def test_gemini_quota_exhausted_is_limited_without_a_reset() -> None:
    """Gemini's error result naming the daily quota is ``limited`` with no reset time."""
    finished = _replay("gemini", _lines("gemini_quota_exhausted.jsonl"), 173)
    assert finished.outcome == "limited"
    assert finished.limit is not None
    assert finished.limit.resets_at is None
    assert "quota" in (finished.limit.message or "")


def test_gemini_retry_in_gives_a_reset() -> None:
    """A Gemini message with "Please retry in 41.2s" resets that long from now."""
    limit = gemini_limit("You exceeded your current quota. Please retry in 41.2s.", _NOW)
    assert limit is not None
    assert limit.resets_at == _NOW + 41.2


def test_claude_limit_needs_a_failed_result() -> None:
    """A successful result is never a limit, even after a rejected rate-limit event."""
    result = {"type": "result", "subtype": "success", "is_error": False}
    assert claude_limit(result, {"status": "rejected", "resetsAt": 1}) is None
