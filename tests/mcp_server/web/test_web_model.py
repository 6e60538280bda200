"""The dashboard's sans-IO parts: logins, the failed-login throttle, and what pages show."""

from __future__ import annotations

import datetime
import pathlib

import attrs

from mcp_server._tasks import PendingApproval, Task, TaskOptions, TaskStore, task_page
from mcp_server._tasks._files import RECORD_SUFFIX, encode_task
from mcp_server._tasks._model import new_task
from mcp_server._web._render import (
    BOARD_ROWS,
    LOG_PAGE,
    Board,
    BoardFilter,
    age,
    board,
    page_start,
    parse_diff,
    pending_mark,
    pending_rows,
)
from mcp_server._web._sessions import LoginSessions, LoginThrottle

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

DIFF = """\
diff --git a/README b/README
index 1111111..2222222 100644
--- a/README
+++ b/README
@@ -1,2 +1,2 @@
 keep
-old line
+new line
diff --git a/new.txt b/new.txt
new file mode 100644
--- /dev/null
+++ b/new.txt
@@ -0,0 +1 @@
+hello
"""


def _task(title: str, seq: int, status: str = "pending") -> Task:
    task = new_task(
        title=title,
        instructions="x",
        agent="claude",
        project_dir="proj",
        cwd="/r/proj",
        options=TaskOptions(),
        now=NOW - datetime.timedelta(minutes=5),
    )
    return attrs.evolve(task, seq=seq, status=status)


def test_session_expires_after_idle_time() -> None:
    """A login unused longer than the idle time is gone; one in use stays."""
    sessions = LoginSessions(idle_s=10, max_sessions=4)
    session_id, _ = sessions.open(now=0)
    assert sessions.find(session_id, now=9) is not None
    assert sessions.find(session_id, now=18) is not None
    assert sessions.find(session_id, now=28.5) is None


def test_session_cap_pushes_out_the_idlest() -> None:
    """At the cap a new login pushes out the one unused longest."""
    sessions = LoginSessions(idle_s=100, max_sessions=2)
    first, _ = sessions.open(now=0)
    second, _ = sessions.open(now=1)
    sessions.find(first, now=2)
    third, _ = sessions.open(now=3)
    assert sessions.find(second, now=3) is None
    assert sessions.find(first, now=3) is not None
    assert sessions.find(third, now=3) is not None


def test_throttle_refuses_after_failures_until_window_moves() -> None:
    """After the allowed failures a client waits until the oldest leaves the window."""
    throttle = LoginThrottle(per_client=3, overall=100, window_s=60)
    for second in range(3):
        assert throttle.retry_after("a", now=second) is None
        throttle.failed("a", now=second)
    assert throttle.retry_after("a", now=10) == 50
    assert throttle.retry_after("b", now=10) is None
    assert throttle.retry_after("a", now=60) is None


def test_throttle_counts_every_client_together() -> None:
    """Failures from many addresses add up to the overall limit."""
    throttle = LoginThrottle(per_client=3, overall=4, window_s=60)
    for number in range(4):
        throttle.failed(f"client-{number}", now=0)
    assert throttle.retry_after("fresh", now=1) == 59


def test_diff_lines_are_classed_per_file() -> None:
    """A diff splits per file; its lines are classed added, removed, hunk, header or context."""
    diff = parse_diff(DIFF)
    assert [file.path for file in diff.files] == ["README", "new.txt"]
    readme, new = diff.files
    classes = {text: line_class for line_class, text in readme.lines}
    assert classes["-old line"] == "del"
    assert classes["+new line"] == "add"
    assert classes[" keep"] == "ctx"
    assert classes["@@ -1,2 +1,2 @@"] == "hunk"
    assert classes["--- a/README"] == "meta"
    assert classes["+++ b/README"] == "meta"
    assert (readme.added, readme.removed, new.added, new.removed) == (1, 1, 1, 0)


def test_big_file_starts_folded() -> None:
    """A file with many changed lines starts folded; a short one open."""
    big = "diff --git a/big b/big\n@@ -0,0 +1,500 @@\n" + "+x\n" * 500
    diff = parse_diff(big + DIFF)
    assert [file.folded for file in diff.files] == [True, False, False]


async def _board(tmp_path: pathlib.Path, tasks: list[Task], chosen: BoardFilter) -> Board:
    """The board of a store holding ``tasks`` (records written, the index built at load)."""
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir(parents=True)
    for task in tasks:
        (tasks_dir / (task.id + RECORD_SUFFIX)).write_bytes(encode_task(task))
    store = TaskStore(tmp_path)
    await store.load()
    listing, shown = await task_page(store, chosen.task_query())
    total = await store.index.call(lambda db: db.count())
    active = list(store.tasks.resident.values())
    return board(shown, NOW, total=total, matching=listing.matching, active=active)


async def test_board_filters_and_lists_newest_first(tmp_path: pathlib.Path) -> None:
    """The board lists matching tasks newest first, with age and turns."""
    tasks = [
        _task("fix parser", 1, "failed"),
        _task("write docs", 2, "waiting"),
        _task("fix lexer", 3, "failed"),
    ]
    shown = await _board(tmp_path / "a", tasks, BoardFilter.parse(None, "fix"))
    assert [row.title for row in shown.rows] == ["fix lexer", "fix parser"]
    assert (shown.total, shown.matching, shown.rows[0].age, shown.rows[0].turns) == (3, 2, "5m", 1)
    waiting = await _board(tmp_path / "b", tasks, BoardFilter.parse("waiting", ""))
    assert [row.title for row in waiting.rows] == ["write docs"]


async def test_board_rows_are_capped(tmp_path: pathlib.Path) -> None:
    """However many tasks there are, the board renders at most BOARD_ROWS rows."""
    tasks = [_task(f"t{n}", n, "failed") for n in range(1, BOARD_ROWS + 8)]
    shown = await _board(tmp_path, tasks, BoardFilter())
    assert len(shown.rows) == BOARD_ROWS
    assert shown.matching == BOARD_ROWS + 7


def test_unknown_status_filter_lists_all() -> None:
    """A status that is not one filters nothing (no error page for a hand-edited URL)."""
    assert BoardFilter.parse("nonsense", None) == BoardFilter()


def test_log_page_bounds() -> None:
    """The last page starts LOG_PAGE events before the end; an older one before ``before``."""
    assert page_start(1_000_000) == 1_000_000 - LOG_PAGE
    assert page_start(1_000_000, before=501) == 500 - LOG_PAGE
    assert page_start(50) == 0


def test_age_units() -> None:
    """Ages read as seconds, minutes, hours, days."""
    assert [age(s) for s in (5, 125, 7300, 200000, -3)] == ["5s", "2m", "2h", "2d", "0s"]


def _asking(task: Task, *request_ids: str) -> Task:
    requests = tuple(
        PendingApproval(
            request_id=request_id,
            tool_name="Write",
            input={"file_path": "/r/proj/a.txt", "content": "x"},
            asked_at=NOW - datetime.timedelta(minutes=1),
            timeout_at=NOW + datetime.timedelta(minutes=14),
            description=None,
        )
        for request_id in request_ids
    )
    return attrs.evolve(task, status="input_required", pending=requests)


def test_pending_rows_show_the_path_time_left_and_the_rule_granted() -> None:
    """A pending Write shows its path, the minutes left, and the rule "for this task" grants."""
    task = _asking(_task("t", 1, "in_progress"), "r1")
    (row,) = pending_rows(task, NOW)
    assert (row.tool, row.what, row.description, row.left) == ("Write", "/r/proj/a.txt", "", "14m")
    assert row.grants == "Write(//r/proj/a.txt)"
    assert pending_rows(_task("t", 1, "in_progress"), NOW) == []


def test_pending_mark_changes_with_the_set_of_pending_requests() -> None:
    """The stream's mark is empty with none pending and differs for each set of requests."""
    task = _task("t", 1, "in_progress")
    marks = {
        pending_mark(_asking(task, *ids)) for ids in [("r1",), ("r2",), ("r1", "r2"), ("r2", "r1")]
    }
    assert len(marks) == 4
    assert pending_mark(task) == ""
    assert pending_mark(_asking(task, "r1")) == pending_mark(_asking(task, "r1"))
