"""How the task CLI shows tasks and events as text lines (no I/O).

The same lines go to a terminal (with colours when :class:`Style` allows) and to a pipe (plain).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

JSON = dict[str, Any]

_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}
STATUS_COLOURS = {
    "pending": "cyan",
    "queued": "cyan",
    "limited": "yellow",
    "in_progress": "yellow",
    "input_required": "magenta",
    "waiting": "green",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "interrupted": "red",
}
KIND_COLOURS = {
    "turn": "bold",
    "run_started": "blue",
    "run_finished": "bold",
    "status": "cyan",
    "approval_request": "magenta",
    "approval": "magenta",
}
ACTIVE = frozenset({"pending", "queued", "in_progress", "input_required"})
"""Statuses in which a task's run is still to come or going on (a ``limited`` task's resume
may be hours away: it is shown, not waited for)."""
FAILED = frozenset({"failed", "interrupted"})
"""Statuses that end ``new --wait`` or ``logs -f`` with exit code 1 (a run someone cancelled,
with ``end`` or ``discard``, did not fail)."""


@attrs.frozen
class Style:
    """ANSI colours, or none (a pipe, ``NO_COLOR``, ``TERM=dumb``)."""

    colour: bool = False

    def paint(self, text: str, colour: str | None) -> str:
        if not self.colour or colour is None or not text:
            return text
        return f"\x1b[{_CODES[colour]}m{text}\x1b[0m"

    def status(self, status: str, width: int = 0) -> str:
        return self.paint(status.ljust(width), STATUS_COLOURS.get(status))


def one_line(text: object) -> str:
    """``text`` on one line (newlines and tabs shown as spaces)."""
    return " ".join(str(text).split())


def clock(iso_time: object) -> str:
    """``HH:MM:SS`` of an ISO-8601 timestamp (empty when there is none)."""
    if not isinstance(iso_time, str) or "T" not in iso_time:
        return ""
    return iso_time.split("T", 1)[1][:8]


def when(iso_time: object) -> str:
    """``YYYY-MM-DD HH:MM:SS`` of an ISO-8601 timestamp (``-`` when there is none)."""
    if not isinstance(iso_time, str) or "T" not in iso_time:
        return "-"
    day, _, rest = iso_time.partition("T")
    return f"{day} {rest[:8]}"


def task_table(tasks: Sequence[JSON], style: Style) -> list[str]:
    """The ``tasks`` table: one row per task, oldest first; columns padded to fit."""
    header = ["ID", "STATUS", "AGENT", "TURNS", "CREATED", "PROJECT", "TITLE"]
    rows = [
        [
            str(task["task_id"]),
            str(task["status"]),
            str(task["agent"]),
            str(task["turns"]),
            when(task.get("created_at")),
            str(task.get("project_dir") or "-"),
            one_line(task["title"]),
        ]
        for task in tasks
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join([*(h.ljust(w) for h, w in zip(header, widths, strict=False)), "TITLE"])]
    lines[0] = style.paint(lines[0].rstrip(), "bold")
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        cells[1] = style.status(row[1], widths[1])
        lines.append("  ".join([*cells, row[-1]]))
    return lines


def task_details(task: JSON, style: Style) -> list[str]:
    """``show``: a task's fields, its instructions (latest turns) and its last report."""
    lines = [
        style.paint(f"{task['task_id']}  {one_line(task['title'])}", "bold"),
        f"status:     {style.status(str(task['status']))}",
        f"agent:      {task['agent']}",
        f"project:    {task.get('project_dir') or '-'}",
        f"isolation:  {task.get('isolation') or '-'}",
    ]
    if task.get("host") not in (None, "default"):
        lines.insert(4, f"host:       {task['host']}")
    if task.get("branch"):
        lines.append(f"branch:     {task['branch']}")
    if task.get("review"):
        lines.append(f"review:     {task['review']}")
    lines += [
        f"turns:      {task['turns']}",
        f"events:     {task['event_count']}",
        f"created:    {when(task.get('created_at'))}",
        f"updated:    {when(task.get('updated_at'))}",
        "instructions:",
    ]
    lines += [f"  {one_line(text)}" for text in task.get("instructions") or []]
    lines += pending_lines(task, style)
    if task.get("granted_rules"):
        lines.append(f"allowed for the task: {', '.join(map(str, task['granted_rules']))}")
    report = task.get("report")
    if isinstance(report, dict):
        lines += report_lines(report, style)
    return lines


def asked_for(request: JSON) -> str:
    """What a permission request asks: the tool and its command or path (one line, cut)."""
    given = request.get("input")
    tool_input: JSON = given if isinstance(given, dict) else {}
    detail = next(
        (tool_input[key] for key in ("command", "file_path", "path") if tool_input.get(key)), ""
    )
    text = one_line(detail)
    if len(text) > 200:
        text = text[:199] + "…"
    return f"{request.get('tool_name')} {text}".rstrip()


def pending_lines(task: JSON, style: Style) -> list[str]:
    """``show``: each pending permission request and how to answer it."""
    pending = task.get("pending_approvals") or []
    if not pending:
        return []
    lines = [style.paint(f"waiting for a decision ({len(pending)}):", "magenta")]
    for request in pending:
        lines.append(f"  request {request['request_id']}: {asked_for(request)}")
        if request.get("description"):
            lines.append(f"    description: {one_line(request['description'])}")
        lines.append(
            f"    asked {when(request.get('asked_at'))}, denied at "
            f"{when(request.get('timeout_at'))} if nobody decides"
        )
    only = "" if len(pending) == 1 else " REQUEST"
    lines.append(f"  answer: coding-agent approve {task['task_id']}{only} allow|deny")
    return lines


def asking_lines(tasks: Sequence[JSON], style: Style) -> list[str]:
    """``tasks``: the tasks waiting for a decision, after the table."""
    asking = [task for task in tasks if task.get("pending_approvals")]
    if not asking:
        return []
    lines = [style.paint(f"{len(asking)} waiting for a decision:", "magenta")]
    for task in asking:
        for request in task["pending_approvals"]:
            lines.append(
                f"  {task['task_id']} request {request['request_id']}: {asked_for(request)}"
            )
    return lines


def approval_hint(task_id: str, event: JSON, style: Style) -> str | None:
    """After an ``approval_request`` log line: the command that answers it."""
    data = event.get("data")
    if event.get("kind") != "approval_request" or not isinstance(data, dict):
        return None
    request_id = data.get("request_id")
    if not isinstance(request_id, str):
        return None
    return style.paint(
        f"      answer: coding-agent approve {task_id} {request_id} allow|deny", "magenta"
    )


def report_lines(report: JSON, style: Style) -> list[str]:
    """A run's report: outcome, cost, duration, its final text or error."""
    outcome = str(report.get("outcome"))
    colour = "green" if outcome == "success" else "red"
    figures = [f"outcome {style.paint(outcome, colour)}"]
    if report.get("cost_usd") is not None:
        figures.append(f"cost ${report['cost_usd']:.4f}")
    if report.get("num_turns") is not None:
        figures.append(f"agent turns {report['num_turns']}")
    if report.get("duration_s") is not None:
        figures.append(f"{report['duration_s']:.1f} s")
    lines = ["last run:   " + ", ".join(figures)]
    if report.get("final_text"):
        lines.append(f"final text: {one_line(report['final_text'])}")
    if report.get("error"):
        lines.append(f"error:      {one_line(report['error'])}")
    if report.get("files_changed"):
        lines.append(f"files:      {', '.join(map(str, report['files_changed']))}")
    return lines


def event_line(event: JSON, style: Style) -> str:
    """One log event: ``SEQ HH:MM:SS KIND SUMMARY``."""
    kind = str(event.get("kind", ""))
    return " ".join(
        [
            style.paint(f"{event.get('seq', ''):>5}", "dim"),
            style.paint(clock(event.get("time")), "dim"),
            style.paint(kind.ljust(12), KIND_COLOURS.get(kind)),
            one_line(event.get("summary") or ""),
        ]
    )


def task_line(verb: str, task: JSON, style: Style) -> str:
    """A command's one-line answer: ``TASK_ID VERB: status STATUS``."""
    return f"{task['task_id']} {verb}: status {style.status(str(task['status']))}"
