"""What the dashboard shows of tasks, logs and diffs, as plain values for the templates (sans-IO).

The templates only lay these out; every cut (how many rows, how long a text, how much of a diff)
is decided here, so one page stays small whatever a task holds.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Final, Literal
from urllib.parse import urlencode

import attrs

from mcp_server._tasks import (
    TASK_STATUSES,
    PendingApproval,
    Task,
    TaskEvent,
    TaskQuery,
    remembered_rule,
)

BOARD_ROWS: Final = 500
"""Rows of the board (newest first); the rest are counted."""
LOG_PAGE: Final = 200
"""Events on one page of a task's log (the task page shows the last one)."""
SUMMARY_CHARS: Final = 2_000
TEXT_CHARS: Final = 20_000
"""Cap on one shown text: a turn's instructions, the last run's final text."""
DIFF_LINES: Final = 20_000
"""Lines of a diff shown; the rest is named, not rendered."""
FOLDED_FILE_LINES: Final = 400
"""A file with more diff lines than this starts folded."""

LineClass = Literal["add", "del", "hunk", "meta", "ctx"]


def cut(text: str | None, limit: int) -> str:
    """``text`` (or "") cut to ``limit`` characters with a marker saying how much is left out."""
    if text is None:
        return ""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [{len(text) - limit} more characters not shown]"


def age(seconds: float) -> str:
    """A duration the way a board says it: ``45s``, ``12m``, ``3h``, ``2d``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def cost(task: Task) -> str:
    """The last run's cost in dollars, or "-" when the agent reported none."""
    if task.report is None or task.report.cost_usd is None:
        return "-"
    return f"${task.report.cost_usd:.4f}"


@attrs.frozen
class BoardFilter:
    """Which tasks the board lists: a status (or all) and words the title, agent, project or
    host must contain."""

    status: str = ""
    query: str = ""

    @classmethod
    def parse(cls, status: str | None, query: str | None) -> BoardFilter:
        """The filter from the query string; an unknown status lists all tasks."""
        status = status if status in TASK_STATUSES else ""
        return cls(status=status or "", query=" ".join((query or "").split())[:200])

    def task_query(self) -> TaskQuery:
        """The filter as an index query for the newest ``BOARD_ROWS`` tasks it matches."""
        statuses = (self.status,) if self.status else ()
        return TaskQuery(
            statuses=statuses, words=tuple(self.query.lower().split()), limit=BOARD_ROWS
        )

    def query_string(self) -> str:
        """The filter as URL query parameters (for the board's stream)."""
        pairs = {key: value for key, value in (("status", self.status), ("q", self.query)) if value}
        return urlencode(pairs)


@attrs.frozen
class BoardRow:
    id: str
    title: str
    agent: str
    project: str
    status: str
    age: str
    cost: str
    turns: int
    pending: int
    """Permission requests waiting for a decision."""


@attrs.frozen
class Asking:
    """A task that waits for a person's decision, for the board's banner."""

    id: str
    title: str
    requests: int


@attrs.frozen
class Board:
    rows: tuple[BoardRow, ...]
    total: int
    matching: int
    asking: tuple[Asking, ...] = ()
    """Every task waiting for a decision, whatever the filter (newest first)."""


def board(
    shown: Sequence[Task],
    now: datetime.datetime,
    *,
    total: int,
    matching: int,
    active: Sequence[Task],
) -> Board:
    """The board: ``shown`` (the newest matching tasks, oldest first, from the index) as rows
    newest first; the ``active`` tasks waiting for a decision (those at rest never do)."""
    rows = tuple(
        BoardRow(
            id=task.id,
            title=task.title,
            agent=task.agent,
            project=task.project_dir or ".",
            status=task.status,
            age=age((now - task.created_at).total_seconds()),
            cost=cost(task),
            turns=len(task.turns),
            pending=len(task.pending),
        )
        for task in reversed(shown[-BOARD_ROWS:])
    )
    asking = tuple(
        Asking(id=task.id, title=task.title, requests=len(task.pending))
        for task in reversed(active)
        if task.pending
    )
    return Board(rows=rows, total=total, matching=matching, asking=asking)


@attrs.frozen
class PendingRow:
    """A permission request as the task page shows it, with the buttons that answer it."""

    request_id: str
    tool: str
    what: str
    """The command, the path, or the input as JSON (cut)."""
    description: str
    asked_at: datetime.datetime
    timeout_at: datetime.datetime
    left: str
    """Time left before the daemon denies it (``age`` format; ``0s`` once past)."""
    grants: str
    """The rule "Allow for this task" allows from now on."""


def _what(request: PendingApproval) -> str:
    for key in ("command", "file_path", "notebook_path", "path", "url", "pattern"):
        value = request.input.get(key)
        if isinstance(value, str) and value:
            return cut(value, SUMMARY_CHARS)
    return cut(json.dumps(request.input, indent=1, sort_keys=True), SUMMARY_CHARS)


def pending_rows(task: Task, now: datetime.datetime) -> list[PendingRow]:
    """The task's pending permission requests, oldest first."""
    return [
        PendingRow(
            request_id=request.request_id,
            tool=request.tool_name,
            what=_what(request),
            description=cut(request.description, SUMMARY_CHARS),
            asked_at=request.asked_at,
            timeout_at=request.timeout_at,
            left=age((request.timeout_at - now).total_seconds()),
            grants=remembered_rule(request),
        )
        for request in task.pending
    ]


def pending_mark(task: Task) -> str:
    """A short mark of which requests are pending ("" for none): the task page sends it to its
    stream, which re-sends the approvals when the task's mark differs."""
    if not task.pending:
        return ""
    joined = "\n".join(request.request_id for request in task.pending)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


@attrs.frozen
class LogLine:
    seq: int
    time: str
    kind: str
    summary: str


def log_lines(events: Iterable[TaskEvent]) -> list[LogLine]:
    """A page of a task's log as lines: time, kind and summary (raw agent output is left to the
    ``task://{id}/logs`` resource)."""
    lines = []
    for event in events:
        kind = event.kind
        if kind == "agent" and event.data and isinstance(event.data.get("kind"), str):
            kind = event.data["kind"]
        lines.append(
            LogLine(
                seq=event.seq,
                time=event.time.strftime("%H:%M:%S"),
                kind=kind,
                summary=cut(event.summary, SUMMARY_CHARS),
            )
        )
    return lines


def page_start(last_seq: int, before: int | None = None) -> int:
    """The ``after`` of the log page that ends just before ``before`` (default: the last page)."""
    end = last_seq if before is None else min(before - 1, last_seq)
    return max(0, end - LOG_PAGE)


@attrs.frozen
class DiffFile:
    path: str
    added: int
    removed: int
    lines: tuple[tuple[LineClass, str], ...]
    folded: bool


@attrs.frozen
class Diff:
    files: tuple[DiffFile, ...]
    lines_omitted: int


def _line_class(line: str, in_header: bool) -> LineClass:
    if in_header:
        return "meta"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    if line.startswith("\\"):
        return "meta"
    return "ctx"


def _path(header: str) -> str:
    """The file a ``diff --git a/X b/Y`` header names (Y; the whole header if it is unusual)."""
    _, _, rest = header.partition("diff --git ")
    _, marker, new = rest.partition(" b/")
    return new if marker else rest


def parse_diff(text: str) -> Diff:
    """A unified git diff split per file, each line classed for colouring: added, removed, hunk
    header, file header or context; at most ``DIFF_LINES`` lines are kept."""
    files: list[DiffFile] = []
    path = ""
    lines: list[tuple[LineClass, str]] = []
    added = removed = kept = omitted = 0
    in_header = False

    def close() -> None:
        if path or lines:
            folded = len(lines) > FOLDED_FILE_LINES
            files.append(DiffFile(path or "(diff)", added, removed, tuple(lines), folded))

    for line in text.splitlines():
        if line.startswith("diff --git "):
            close()
            path, lines, added, removed, in_header = _path(line), [], 0, 0, True
        elif in_header and line.startswith("@@"):
            in_header = False
        line_class = _line_class(line, in_header)
        if line_class == "add":
            added += 1
        elif line_class == "del":
            removed += 1
        if kept < DIFF_LINES:
            lines.append((line_class, line))
            kept += 1
        else:
            omitted += 1
    close()
    return Diff(files=tuple(files), lines_omitted=omitted)
