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
    "in_progress": "yellow",
    "input_required": "magenta",
    "waiting": "green",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "interrupted": "red",
}
KIND_COLOURS = {"turn": "bold", "run_started": "blue", "run_finished": "bold", "status": "cyan"}
ACTIVE = frozenset({"pending", "in_progress", "input_required"})
"""Statuses in which a task's run is still to come or going on."""
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
    report = task.get("report")
    if isinstance(report, dict):
        lines += report_lines(report, style)
    return lines


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
