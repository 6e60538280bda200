"""How coding tasks look to clients: views of tasks, reports, events and statistics, and the
tools' answers, each sized for a model's context.

Every tool answers with one text block and ``structuredContent {status: "success" | "error",
message, result | error}`` (the original's shape). Long text is cut at ``MAX_TEXT_CHARS`` with a
marker naming the resource that holds the rest. Plain functions of records: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from mcp_server._core import JSON, ResourceContents, TextContents, ToolResult

from ._index import Stats
from ._model import PendingApproval, RunReport, Task, TaskEvent, UsageLimit
from ._schedule import Waiting

MAX_TEXT_CHARS = 60_000
"""Cap on one answer's text (~15k tokens), well under a client's 25k-token limit."""
MAX_FIELD_CHARS = 20_000
"""Cap on one long field (an agent's final text) inside an answer."""
MAX_MESSAGE_CHARS = 2_000
"""Cap on an error message, which may quote an argument."""
LOG_PAGE_EVENTS = 200
LIST_TASKS = 50
"""Tasks listed in one answer (each ~0.7 kB): the rest are counted, and readable one by one."""


def cap(text: str | None, limit: int, where: str) -> str | None:
    """``text`` cut to ``limit`` characters with a marker saying where the rest is."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n… [cut: {len(text) - limit} more characters; the rest is in {where}]"


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def report_view(task: Task, report: RunReport | None) -> JSON | None:
    """A run's report as clients see it."""
    if report is None:
        return None
    return {
        "outcome": report.outcome,
        "final_text": cap(report.final_text, MAX_FIELD_CHARS, f"task://{task.id}/logs"),
        "cost_usd": report.cost_usd,
        "num_turns": report.num_turns,
        "usage": report.usage,
        "files_changed": report.files_changed[:200],
        "error": cap(report.error, 4000, f"task://{task.id}/logs"),
        "exit_code": report.exit_code,
        "signal": report.signal,
        "session_id": report.session_id,
        "session_note": report.session_note,
        "started_at": _time(report.started_at),
        "finished_at": _time(report.finished_at),
        "duration_s": round(report.duration(), 3),
        "commit": report.commit,
    }


def task_view(task: Task, *, full: bool = False, place: Waiting | None = None) -> JSON:
    """A task as clients see it (``full`` adds the instructions and the last report); ``place``:
    its place in the queue as the scheduler last saw it."""
    view: JSON = {
        "task_id": task.id,
        "title": task.title,
        "description": task.title,
        "agent": task.agent,
        "tool": task.agent,
        "status": task.status,
        "project_dir": task.project_dir,
        "host": task.host,
        "session_id": task.session_id,
        "created_at": _time(task.created_at),
        "updated_at": _time(task.updated_at),
        "started_at": _time(task.started_at),
        "completed_at": _time(task.completed_at),
        "turns": len(task.turns),
        "event_count": task.event_count,
        "outcome": task.report.outcome if task.report else None,
        "logs": f"task://{task.id}/logs",
        "isolation": task.isolation,
        "isolation_note": task.isolation_note,
        "branch": task.worktree.branch if task.worktree else None,
        "review": task.review,
        "live": task.live,
        "pending_approvals": [pending_view(task, request) for request in task.pending],
        "priority": task.priority,
        "queued_at": _time(task.queued_at),
        "queue_position": place.position if place is not None else None,
        "queue_reason": place.reason if place is not None else task.queue_reason,
        "limit": limit_view(task.limit),
    }
    if full:
        view["options"] = attrs.asdict(task.options)
        view["instructions"] = [
            cap(turn.instructions, 2000, f"task://{task.id}") for turn in task.turns[-10:]
        ]
        view["report"] = report_view(task, task.report)
        view["result"] = f"task://{task.id}/result"
        view["worktree"] = None if task.worktree is None else attrs.asdict(task.worktree)
        view["commits"] = list(task.commits[-50:])
        view["granted_rules"] = list(task.granted_rules)
        if task.has_open_worktree:
            view["review_resources"] = {
                "diff": f"task://{task.id}/diff",
                "diffstat": f"task://{task.id}/diffstat",
                "commits": f"task://{task.id}/commits",
            }
    return view


def limit_view(limit: UsageLimit | None) -> JSON | None:
    """The usage limit a ``limited`` task waits out (times as ISO 8601)."""
    if limit is None:
        return None
    return {
        "agent": limit.agent,
        "resets_at": _time(limit.resets_at),
        "hit_at": _time(limit.hit_at),
        "attempt": limit.attempt,
        "message": limit.message,
    }


def pending_view(task: Task, request: PendingApproval) -> JSON:
    """A permission request that waits for a decision, and how to give it."""
    tool_input = dumps(request.input)
    return {
        "request_id": request.request_id,
        "tool_name": request.tool_name,
        "input": request.input
        if len(tool_input) <= 8000
        else {"cut": cap(tool_input, 8000, f"task://{task.id}/logs")},
        "description": request.description,
        "suggestions": request.suggestions[:10],
        "asked_at": _time(request.asked_at),
        "timeout_at": _time(request.timeout_at),
        "answer_with": f'approve {{"id": "{task.id}", "request_id": "{request.request_id}", '
        '"decision": "allow" | "deny"}',
    }


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def success(message: str, result: Any) -> ToolResult:
    """A successful answer in the original's shape."""
    structured = {"status": "success", "message": message, "result": result}
    text = cap(dumps(structured), MAX_TEXT_CHARS, "the structured content and resources")
    return ToolResult(content=[{"type": "text", "text": text}], structured_content=structured)


def failure(code: str, message: str, result: Any = None) -> ToolResult:
    """A failed answer (``isError``) in the original's shape.

    The message is cut to ``MAX_MESSAGE_CHARS``: it may quote an argument, and arguments can be
    megabytes (an unknown id, an unexpected key).
    """
    message = cap(message, MAX_MESSAGE_CHARS, "the arguments of the call") or ""
    structured: JSON = {"status": "error", "message": message, "error": {"code": code}}
    if result is not None:
        structured["result"] = result
    text = cap(dumps(structured), MAX_TEXT_CHARS, "the structured content and resources")
    return ToolResult(
        content=[{"type": "text", "text": text}], structured_content=structured, is_error=True
    )


def event_view(event: TaskEvent, task_id: str) -> JSON:
    view: JSON = {
        "seq": event.seq,
        "time": event.time.isoformat(),
        "kind": event.kind,
        "summary": event.summary,
    }
    if event.data:
        data = dumps(event.data)
        view["data"] = event.data if len(data) <= 8000 else {"cut": cap(data, 8000, "raw")}
    if event.raw is not None:
        view["raw"] = cap(event.raw, 8000, f"the agent's output (seq {event.seq})")
    return view


def json_contents(uri: str, value: Any) -> list[ResourceContents]:
    return [TextContents(uri=uri, text=dumps(value), mime_type="application/json")]


QUEUE_LISTED = 20
"""Waiting tasks listed in ``report``/``check_status`` (the rest are counted)."""


def queue_view(tasks: Mapping[str, Task], places: list[Waiting]) -> JSON:
    """The queue: its length, how many wait for each gate, and the first ``QUEUE_LISTED``."""
    listed = []
    for place in places[:QUEUE_LISTED]:
        task = tasks.get(place.task_id)
        if task is not None:
            listed.append(
                {
                    "position": place.position,
                    "task_id": task.id,
                    "title": task.title,
                    "status": task.status,
                    "priority": task.priority,
                    "project_dir": task.project_dir,
                    "queued_at": _time(task.queued_at),
                    "reason": place.reason,
                }
            )
    return {
        "length": len(places),
        "by_reason": dict(Counter(place.blocked_by for place in places)),
        "first": listed,
    }


def statistics_view(
    counts: Stats, latest: list[Task], places: Mapping[str, Waiting] | None = None
) -> JSON:
    """The original's statistics over every task (``counts``, from the index), plus the
    ``latest`` tasks."""
    places = places or {}
    average = counts.average_duration_s
    return {
        "total_tasks": counts.total,
        "by_status": counts.by_status,
        "by_tool": counts.by_agent,
        "average_duration_seconds": None if average is None else round(average, 3),
        "success_rate": round(counts.succeeded / counts.finished, 4) if counts.finished else None,
        "tasks_omitted": max(0, counts.total - len(latest)),
        "tasks": [task_view(t, place=places.get(t.id)) for t in latest],
    }


# -- prompts --------------------------------------------------------------------------------
