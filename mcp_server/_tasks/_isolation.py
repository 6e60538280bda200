"""What a worktree task's git side looks like, as plain functions (sans-IO): its branch name, the
commit message of a turn, and the views of its diff, diffstat and commits.

The daemon runs every git command; the server decides names and messages and shapes what the
daemon answers for clients (:mod:`._worktrees` is the trio adapter that asks it).
"""

from __future__ import annotations

import re

from host_daemon import CommitInfo, DiffDone, WorktreeInfo
from mcp_server._core import JSON

from ._model import RunReport, WorktreeRecord

BRANCH_PREFIX = "coding-agent/"
SLUG_CHARS = 40
SUBJECT_CHARS = 72
"""The instructions' first line in a commit's subject is cut here."""
BODY_CHARS = 2000
"""The run's final text in a commit's body is cut here."""
DIFF_PAGE_CHARS = 50_000
"""One page of ``task://{id}/diff`` holds at most this much of the diff (whole lines)."""
DIFFSTAT_FILES = 200
"""The diffstat lists this many files; the totals count them all."""
REPORT_FILES = 20
"""``report`` lists this many files of the diffstat."""

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(title: str) -> str:
    """The title as lowercase ASCII letters and digits joined by '-', at most 40 chars."""
    words = _NOT_SLUG.split(title.lower())
    text = "-".join(word for word in words if word)[:SLUG_CHARS].strip("-")
    return text or "task"


def branch_name(task_id: str, title: str) -> str:
    """``coding-agent/<first 8 chars of the id>-<slug of the title>``."""
    return f"{BRANCH_PREFIX}{task_id[:8]}-{slug(title)}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def commit_message(task_id: str, turn: int, instructions: str, report: RunReport) -> str:
    """``turn N: <first line of the instructions>``, the run's final text, the task trailer."""
    lines = instructions.strip().splitlines()
    first = " ".join(lines[0].split()) if lines else ""
    subject = f"turn {turn}: {_cut(first, SUBJECT_CHARS)}"
    if report.final_text and report.final_text.strip():
        body = report.final_text.strip()
    else:
        body = f"The run ended {report.outcome}" + (f": {report.error}" if report.error else ".")
    return f"{subject}\n\n{_cut(body, BODY_CHARS)}\n\nCoding-Agent-Task: {task_id}"


def worktree_record(info: WorktreeInfo) -> WorktreeRecord:
    """What a task keeps of the worktree the daemon made."""
    return WorktreeRecord(
        branch=info.branch,
        base_branch=info.base_branch,
        base_commit=info.base_commit,
        repo=info.repo,
        subdir=info.subdir,
    )


def commit_summary(commit: str | None, files: list[str]) -> str:
    """The ``commit`` event's summary: ``commit abc1234: 2 files``."""
    if commit is None:
        return "no commit: the turn changed no files"
    return f"commit {commit[:7]}: {len(files)} file{'' if len(files) == 1 else 's'}"


def diffstat_view(task_id: str, done: DiffDone, *, limit: int = DIFFSTAT_FILES) -> JSON:
    """Files with +/- (``None`` for binary files) and totals over every file."""
    files = [
        {"path": f.path, "status": f.status, "added": f.added, "removed": f.removed}
        for f in done.files[:limit]
    ]
    return {
        "task_id": task_id,
        "base_commit": done.base_commit,
        "head_commit": done.head_commit,
        "files": files,
        "files_omitted": max(0, len(done.files) - limit),
        "totals": {
            "files": len(done.files),
            "added": sum(f.added or 0 for f in done.files),
            "removed": sum(f.removed or 0 for f in done.files),
        },
    }


def diff_page(task_id: str, done: DiffDone, offset: int) -> JSON:
    """The diff from character ``offset``: whole lines, at most ``DIFF_PAGE_CHARS`` (at least one
    line); ``next`` names the following page, and the last page of a diff the daemon cut ends
    with a marker saying so."""
    diff = done.diff
    end = min(len(diff), offset + DIFF_PAGE_CHARS)
    if end < len(diff):
        line_end = diff.rfind("\n", offset, end)
        end = line_end + 1 if line_end >= offset else end
    text = diff[offset:end]
    last = end >= len(diff)
    if last and done.truncated:
        text += (
            f"\n… [diff cut at {len(diff.encode())} bytes by the daemon; every file is in "
            f"task://{task_id}/diffstat]\n"
        )
    return {
        "task_id": task_id,
        "base_commit": done.base_commit,
        "head_commit": done.head_commit,
        "offset": offset,
        "total_chars": len(diff),
        "truncated": done.truncated,
        "diff": text,
        "next": None if last else f"task://{task_id}/diff/{end}",
    }


def commit_view(commit: CommitInfo) -> JSON:
    return {
        "sha": commit.sha,
        "subject": commit.subject,
        "body": _cut(commit.body, BODY_CHARS + 200),
        "author": commit.author,
        "at": commit.at,
        "files": commit.files[:DIFFSTAT_FILES],
        "files_omitted": max(0, len(commit.files) - DIFFSTAT_FILES),
    }
