"""Worktree tasks without IO: isolation, merge and discard transitions, branch names, commit
messages, diff pages."""

from __future__ import annotations

import datetime

import pytest

from host_daemon import DiffDone, FileStat
from mcp_server._tasks._isolation import (
    DIFF_PAGE_CHARS,
    branch_name,
    commit_message,
    diff_page,
    diffstat_view,
    slug,
)
from mcp_server._tasks._model import (
    InvalidTransition,
    RunReport,
    Task,
    TaskOptions,
    WorktreeRecord,
    end,
    finish_run,
    isolate,
    new_task,
    start_run,
)
from mcp_server._tasks._model_review import discarded, merged

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(seconds=5)
WORKTREE = WorktreeRecord(
    branch="coding-agent/12345678-t", base_branch="main", base_commit="a" * 40, repo="/r", subdir=""
)


def fresh() -> Task:
    return new_task(
        title="t",
        instructions="do it",
        agent="claude",
        project_dir="",
        cwd="/w",
        options=TaskOptions(),
        now=T0,
    )


def waiting(*, commit: str | None = None) -> Task:
    task = start_run(isolate(fresh(), "worktree", "branch b", WORKTREE), T0)
    report = RunReport(outcome="success", started_at=T0, finished_at=T1, commit=commit)
    return finish_run(task, report, T1)


def test_finish_run_keeps_the_turns_commit() -> None:
    """A run's commit goes into the report and the task's commits."""
    task = waiting(commit="c" * 40)
    assert task.commits == ("c" * 40,)
    assert task.report is not None
    assert task.report.commit == "c" * 40


def test_isolate_only_before_the_first_run() -> None:
    """Isolation is chosen for a pending task before its first run, never after."""
    with pytest.raises(InvalidTransition):
        isolate(start_run(fresh(), T0), "none", "asked for by the client")


def test_merge_completes_the_task() -> None:
    """merged → completed with review 'merged'."""
    task = merged(waiting(), T1)
    assert (task.status, task.review, task.completed_at) == ("completed", "merged", T1)


def test_discard_cancels_the_task() -> None:
    """discarded → cancelled with review 'discarded'."""
    task = discarded(waiting(), T1)
    assert (task.status, task.review) == ("cancelled", "discarded")


def test_discard_of_an_ended_task_keeps_it_completed() -> None:
    """An ended task that is discarded stays completed (final), review 'discarded'."""
    task = discarded(end(waiting(), T1), T1)
    assert (task.status, task.review) == ("completed", "discarded")


def test_merge_refused_while_running() -> None:
    """A task with a run in flight is not merged."""
    running = start_run(waiting(), T1, "more")
    with pytest.raises(InvalidTransition, match="in_progress"):
        merged(running, T1)


def test_merge_refused_without_worktree() -> None:
    """A task without a worktree cannot be merged, and the error says its isolation."""
    task = start_run(isolate(fresh(), "none", "not inside a git repository"), T0)
    with pytest.raises(InvalidTransition, match="not inside a git repository"):
        merged(task, T1)


def test_second_review_refused() -> None:
    """A merged task is neither merged again nor discarded."""
    task = merged(waiting(), T1)
    with pytest.raises(InvalidTransition, match="already merged"):
        merged(task, T1)
    with pytest.raises(InvalidTransition, match="already merged"):
        discarded(task, T1)


def test_no_follow_up_after_discard() -> None:
    """A discarded task (cancelled) takes no follow-up: its worktree is gone."""
    with pytest.raises(InvalidTransition, match="discarded"):
        start_run(discarded(waiting(), T1), T1, "again")


def test_slug_and_branch_name() -> None:
    """The branch is coding-agent/<8 chars of id>-<slug>; the slug is ASCII, ≤ 40, or 'task'."""
    assert slug("Fix the Login bug!") == "fix-the-login-bug"
    assert slug("Ünïcode — only ✓") == "n-code-only"
    assert slug("✓✓✓") == "task"
    assert len(slug("word " * 30)) <= 40
    assert not slug("a" * 39 + " b").endswith("-")
    assert branch_name("0123456789abcdef", "Add tests") == "coding-agent/01234567-add-tests"


def test_commit_message_format() -> None:
    """turn N: first line (≤ 72), blank, final text (≤ 2000), blank, the task trailer."""
    report = RunReport(outcome="success", started_at=T0, finished_at=T1, final_text="x" * 3000)
    message = commit_message("tid", 2, "first line " + "w" * 100 + "\nsecond", report)
    subject, body, trailer = message.split("\n\n")
    assert subject.startswith("turn 2: first line ")
    assert len(subject) == len("turn 2: ") + 72
    assert len(body) == 2000
    assert trailer == "Coding-Agent-Task: tid"


def test_commit_message_without_final_text_says_how_the_run_ended() -> None:
    """A run without final text (cancelled) has its outcome in the body."""
    report = RunReport(outcome="cancelled", started_at=T0, finished_at=T1, error="stopped")
    assert "The run ended cancelled: stopped" in commit_message("tid", 1, "go", report)


def _diff(text: str, *, truncated: bool = False) -> DiffDone:
    files = [
        FileStat(path="a", added=3, removed=1, status="modified"),
        FileStat(path="b.bin", added=None, removed=None, status="added"),
    ]
    return DiffDone(
        base_commit="b" * 40, head_commit="h" * 40, files=files, diff=text, truncated=truncated
    )


def test_diff_pages_cover_the_diff_in_whole_lines() -> None:
    """Following 'next' gives the whole diff once, each page ending at a line end."""
    text = "".join(f"+line {n} {'y' * 80}\n" for n in range(2000))
    pages, uri = [], "task://t/diff/0"
    while uri is not None:
        page = diff_page("t", _diff(text), int(uri.rsplit("/", 1)[1]))
        assert page["diff"].endswith("\n")
        assert len(page["diff"]) <= DIFF_PAGE_CHARS
        pages.append(page["diff"])
        uri = page["next"]
    assert len(pages) > 1
    assert "".join(pages) == text


def test_cut_diff_ends_with_a_marker() -> None:
    """A diff the daemon cut ends, on its last page, with a marker naming the diffstat."""
    page = diff_page("t", _diff("+a\n", truncated=True), 0)
    assert page["diff"].startswith("+a\n")
    assert "task://t/diffstat" in page["diff"]
    assert page["next"] is None


def test_diffstat_totals() -> None:
    """The diffstat lists files with +/- and totals (binary files count no lines)."""
    view = diffstat_view("t", _diff(""))
    assert view["totals"] == {"files": 2, "added": 3, "removed": 1}
    assert view["files"][1] == {"path": "b.bin", "status": "added", "added": None, "removed": None}
