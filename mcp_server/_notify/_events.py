"""Notification events: which task changes are worth telling the owner, and what they say.

Sans-IO. A task reaching one of :data:`TRIGGERS` is one :class:`NotifyEvent`. Its id is derived
from the task and the change (:func:`change_key`), so the same change always yields the same id:
a restart that derives an event the crashed process had already written makes no second one, and
a receiver de-duplicates retries on it (``X-Coding-Agent-Delivery``).
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import attrs

from mcp_server._tasks import Task

TRIGGERS = frozenset({"completed", "failed", "input_required", "limited", "waiting"})
"""Statuses whose arrival is announced (``limited`` once the scheduler has it)."""

_NAMESPACE = uuid.UUID("5d0f6f55-3b54-4c59-9d55-1f0a4e1b2c10")

_PRIORITY = {"input_required": "high", "failed": "high", "limited": "default"}
_TAGS = {
    "completed": "white_check_mark",
    "failed": "x",
    "input_required": "raising_hand",
    "limited": "hourglass",
    "waiting": "speech_balloon",
}


@attrs.frozen
class NotifyEvent:
    """One announcement of a task's change, as every target receives it."""

    id: str
    type: str
    """``task.<status>``, e.g. ``task.completed``."""
    task_id: str
    title: str
    status: str
    outcome: str | None
    summary: str
    links: dict[str, str]
    at: datetime.datetime


def change_key(task: Task) -> str | None:
    """What identifies the task's current notifiable state (``None``: nothing to announce).

    A follow-up's end is another run, a second permission request in one run another request:
    each is a new key; a record rewritten without a new status keeps its key.
    """
    if task.status not in TRIGGERS:
        return None
    key = f"{task.status}#{task.runs}"
    if task.status == "input_required" and task.pending:
        key += f"#{task.pending[0].request_id}"
    return key


def event_for(
    task: Task, key: str, at: datetime.datetime, dashboard_url: str | None = None
) -> NotifyEvent:
    """The event announcing ``task`` in the state ``key`` (from :func:`change_key`)."""
    links = {"task": f"task://{task.id}"}
    if dashboard_url:
        links["dashboard"] = f"{dashboard_url.rstrip('/')}/tasks/{task.id}"
    return NotifyEvent(
        id=str(uuid.uuid5(_NAMESPACE, f"{task.id}/{key}")),
        type=f"task.{task.status}",
        task_id=task.id,
        title=task.title,
        status=task.status,
        outcome=None if task.report is None else task.report.outcome,
        summary=summary_line(task),
        links=links,
        at=at,
    )


def summary_line(task: Task) -> str:
    """One sentence a person reads on a phone: what happened to which task (times in UTC, as
    every task record keeps them)."""
    title = _short(task.title, 80)
    if task.status == "input_required":
        asked = task.pending[0].tool_name if task.pending else "a decision"
        return f"Task {title!r} needs a decision: the agent asks to use {asked}."
    report = task.report
    if task.status == "failed":
        why = f": {_short(report.error, 160)}" if report is not None and report.error else ""
        return f"Task {title!r} failed{why}."
    if task.status == "limited":
        resets = task.limit.resets_at if task.limit is not None else None
        when = f" at {resets:%Y-%m-%d %H:%M} UTC" if resets is not None else ""
        return f"Task {title!r} hit a usage limit; it resumes by itself after the reset{when}."
    if task.status == "completed":
        return f"Task {title!r} is completed."
    text = report.final_text if report is not None else None
    tail = f": {_short(text, 160)}" if text else "."
    return f"Task {title!r} finished its turn and waits for a follow-up{tail}"


def json_body(event: NotifyEvent) -> bytes:
    """The JSON POST body (the schema docs/notifications.md describes)."""
    payload: dict[str, Any] = attrs.asdict(event)
    payload["at"] = event.at.isoformat()
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def ntfy_request(event: NotifyEvent) -> tuple[dict[str, str], bytes]:
    """The ntfy-style plain-text POST: headers (Title, Priority, Tags, Click) and body."""
    headers = {
        "Title": _latin1(f"Coding task {event.status}: {_short(event.title, 60)}"),
        "Priority": _PRIORITY.get(event.status, "default"),
        "Tags": _TAGS.get(event.status, "robot"),
        "Content-Type": "text/plain; charset=utf-8",
    }
    dashboard = event.links.get("dashboard")
    if dashboard and dashboard.startswith(("http://", "https://")):
        headers["Click"] = dashboard
    return headers, event.summary.encode()


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _latin1(text: str) -> str:
    """Header values travel as latin-1: anything else becomes ``?`` (the body keeps UTF-8)."""
    return text.encode("latin-1", "replace").decode("latin-1")
