"""Usage and rate limits as each agent CLI reports them in its own events (sans-IO).

What the pinned CLIs print when their provider refuses a request for a limit (recorded in
``tests/host_daemon/fixtures``; see ``docs/scheduler.md``, "Usage limits"):

- Claude Code 2.1.332: a ``rate_limit_event`` (``rate_limit_info.status`` ``allowed`` |
  ``allowed_warning`` | ``rejected``, ``resetsAt`` epoch seconds) when its responses carry the
  subscription limiter's headers; a refused request ends the turn with an ``is_error`` result
  whose ``api_error_status`` is 429 (``api_error_type: rate_limit_error``). The 429's own reset
  header is not reported, so the reset is the last ``rate_limit_event``'s ``resetsAt``.
  A 529 ``overloaded_error`` is the provider's capacity, not the account's: not a limit.
- Codex 0.171.0 (``exec --json``): an ``error`` event and ``turn.failed`` whose message says
  "You've hit your usage limit. … try again at 2:55 PM." (a wall-clock time, to the minute, in
  the CLI's local time zone); the reset is read from that time.
- Gemini CLI 0.61.0: a ``result`` with ``status: error`` whose message names the quota ("You have
  exhausted your daily quota on this model.") or a rate limit; no reset time is given.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Final

from ._records import LimitInfo

__all__ = ["claude_limit", "codex_limit", "gemini_limit"]

_RATE_LIMIT_STATUS: Final = 429
_CODEX_LIMIT: Final = re.compile(r"usage limit|rate limit", re.IGNORECASE)
_CODEX_AT: Final = re.compile(
    r"try again at\s+(?:(?P<date>[A-Z][a-z]{2} \d{1,2})(?:st|nd|rd|th)?,?\s+(?:\d{4}\s+)?)?"
    r"(?P<clock>\d{1,2}:\d{2}\s*[AP]M)",
    re.IGNORECASE,
)
_GEMINI_LIMIT: Final = re.compile(
    r"quota|rate limit|resource_exhausted|too many requests|\b429\b", re.IGNORECASE
)
_RETRY_IN: Final = re.compile(r"retry in\s+(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)
#: Codex prints its reset time to the minute: wait out the rest of that minute.
_MINUTE: Final = 60.0


def claude_limit(
    result: Mapping[str, Any], rate_limit: Mapping[str, Any] | None
) -> LimitInfo | None:
    """The limit a Claude Code ``result`` (and the last ``rate_limit_info`` seen) reports.

    A 429 result is a limit; so is any error result after a ``rejected`` rate-limit event.
    """
    rejected = rate_limit is not None and rate_limit.get("status") == "rejected"
    failed = result.get("is_error") is True or result.get("subtype") != "success"
    if not failed:
        return None
    status = result.get("api_error_status")
    if status != _RATE_LIMIT_STATUS and not rejected:
        return None
    resets_at = _epoch(rate_limit.get("resetsAt")) if rate_limit is not None else None
    source = "claude api_error 429" if status == _RATE_LIMIT_STATUS else "claude rate_limit_event"
    message = result.get("result")
    return LimitInfo(resets_at, source, message if isinstance(message, str) else None)


def codex_limit(message: str, now: float, tz: dt.tzinfo | None = None) -> LimitInfo | None:
    """The limit a Codex ``error``/``turn.failed`` message names, with its "try again at" time.

    ``tz`` is the CLI's time zone (the daemon's local one by default, which the CLI inherits).
    """
    if not _CODEX_LIMIT.search(message):
        return None
    return LimitInfo(_codex_reset(message, now, tz), "codex error", message)


def gemini_limit(message: str, now: float) -> LimitInfo | None:
    """The limit a Gemini CLI error message names (a quota or a rate limit)."""
    if not _GEMINI_LIMIT.search(message):
        return None
    retry = _RETRY_IN.search(message)
    resets_at = now + float(retry.group(1)) if retry else None
    return LimitInfo(resets_at, "gemini error", message)


def _epoch(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _codex_reset(message: str, now: float, tz: dt.tzinfo | None) -> float | None:
    found = _CODEX_AT.search(message)
    if found is None:
        return None
    zone = tz or dt.datetime.now().astimezone().tzinfo
    today = dt.datetime.fromtimestamp(now, zone)
    clock = dt.datetime.strptime(found.group("clock").upper().replace(" ", ""), "%I:%M%p")
    when = today.replace(hour=clock.hour, minute=clock.minute, second=0, microsecond=0)
    if found.group("date"):
        dated = _on_day(when, found.group("date"), now)
        if dated is None:
            return None
        when = dated
    elif when.timestamp() + _MINUTE < now:
        when += dt.timedelta(days=1)
    return when.timestamp() + _MINUTE


def _on_day(when: dt.datetime, date: str, now: float) -> dt.datetime | None:
    """``when`` moved to ``date`` ("Dec 7"), this year or, once past, the next (a year is
    always given to ``strptime``: without one, Python 3.13 warns that Feb 29 is ambiguous)."""
    for year in (when.year, when.year + 1):
        try:
            day = dt.datetime.strptime(f"{year} {date}", "%Y %b %d")
        except ValueError:  # Feb 29 in a year without one
            continue
        moved = when.replace(year=year, month=day.month, day=day.day)
        if moved.timestamp() + _MINUTE >= now:
            return moved
    return None
