"""The task index, ``STATE_PATH/index.sqlite``: what listing, filtering and paging read, so the
server need not hold (or read) every task record.

The per-task files stay the durable record; the index is derived from them and may be deleted
at any time (the next start rebuilds it, with a log line). A row is written *after* its record,
and remembers the (inode, mtime_ns, size) of the record (replaced by a rename, so a new inode
every write: a coarse mtime cannot hide a rewrite) and of the log it was made from: at start,
:meth:`IndexDb.stale` compares them with a ``scandir`` of ``tasks/`` in SQL, so only records
that changed behind the index (a crash between record and row, an edit, a copy) are read again.

Plain blocking code over one ``sqlite3`` connection (WAL, ``synchronous=NORMAL``: a row lost
to a power cut is repaired from the files at the next start), plus :class:`TaskIndex`, the thin
trio adapter that runs every call in a worker thread, one at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import sqlite3
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import attrs
import trio

from ._model import WAITING_TO_START, Task

log = logging.getLogger("mcp_server.tasks")

T = TypeVar("T")

INDEX_NAME = "index.sqlite"
SCHEMA_VERSION = 3
RESIDENT_STATUSES = frozenset({"pending", "in_progress", "input_required", *WAITING_TO_START})
"""Statuses of a task the server keeps in memory (the scheduler, queue and runner use them)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    agent TEXT NOT NULL,
    title TEXT NOT NULL,
    project_dir TEXT NOT NULL,
    cwd TEXT NOT NULL,
    host TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    open_worktree INTEGER NOT NULL,
    outcome TEXT,
    duration_s REAL,
    event_count INTEGER NOT NULL,
    record_ino INTEGER NOT NULL,
    record_mtime_ns INTEGER NOT NULL,
    record_size INTEGER NOT NULL,
    log_mtime_ns INTEGER,
    log_size INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_seq ON tasks (seq);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status, seq);
CREATE INDEX IF NOT EXISTS tasks_cwd ON tasks (cwd, seq);
CREATE INDEX IF NOT EXISTS tasks_project ON tasks (project_dir, seq);
CREATE INDEX IF NOT EXISTS tasks_host ON tasks (host, seq);
CREATE INDEX IF NOT EXISTS tasks_updated ON tasks (updated_at);
"""
_COLUMNS = (
    "id, seq, status, agent, title, project_dir, cwd, host, created_at, updated_at,"
    " open_worktree, outcome, duration_s, event_count, record_ino, record_mtime_ns, record_size,"
    " log_mtime_ns, log_size"
)


# -- rows and queries (sans-IO) ---------------------------------------------------------------


@attrs.frozen
class FileStat:
    """What a file looked like when its row was made."""

    ino: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileStat:
        return cls(stat.st_ino, stat.st_mtime_ns, stat.st_size)


def row_of(
    task: Task, record: FileStat, events: FileStat | None, event_count: int
) -> tuple[Any, ...]:
    """The task's index row (in ``_COLUMNS`` order)."""
    report = task.report
    return (
        task.id,
        task.seq,
        task.status,
        task.agent,
        task.title,
        task.project_dir,
        task.cwd,
        task.host,
        task.created_at.timestamp(),
        task.updated_at.timestamp(),
        int(task.has_open_worktree),
        None if report is None else report.outcome,
        None if report is None else report.duration(),
        event_count,
        record.ino,
        record.mtime_ns,
        record.size,
        None if events is None else events.mtime_ns,
        None if events is None else events.size,
    )


@attrs.frozen
class TaskQuery:
    """Which tasks a listing wants: filters (all must hold) and a page by creation sequence.

    Without a cursor the page is the newest ``limit`` tasks; ``before`` pages back in time and
    ``after`` forward. A cursor is a creation sequence, so pages stay stable as tasks are added.
    Every page lists oldest first.
    """

    statuses: tuple[str, ...] = ()
    project_dir: str | None = None
    cwd: str | None = None
    host: str | None = None
    created_after: float | None = None
    updated_after: float | None = None
    words: tuple[str, ...] = ()
    """Each must be in the title, agent or project directory (case-insensitive)."""
    before: int | None = None
    after: int | None = None
    limit: int = 50


def _where(query: TaskQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.statuses:
        clauses.append(f"status IN ({', '.join('?' * len(query.statuses))})")
        params.extend(query.statuses)
    for column, value in (
        ("project_dir", query.project_dir),
        ("cwd", query.cwd),
        ("host", query.host),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.created_after is not None:
        clauses.append("created_at >= ?")
        params.append(query.created_after)
    if query.updated_after is not None:
        clauses.append("updated_at >= ?")
        params.append(query.updated_after)
    for word in query.words:
        clauses.append(
            "instr(lower(title || ' ' || agent || ' ' || project_dir || ' ' || "
            "CASE WHEN host IS NULL OR host = 'default' THEN '' ELSE host END), ?) > 0"
        )
        params.append(word.lower())
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def page_sql(query: TaskQuery) -> tuple[str, list[Any]]:
    """The page's ``(id, seq)`` rows, in the order they are fetched (see :class:`TaskQuery`)."""
    where, params = _where(query)
    cursor = []
    if query.before is not None:
        cursor.append("seq < ?")
        params.append(query.before)
    if query.after is not None:
        cursor.append("seq > ?")
        params.append(query.after)
    if cursor:
        where = (where + " AND " if where else " WHERE ") + " AND ".join(cursor)
    order = "ASC" if query.after is not None and query.before is None else "DESC"
    params.append(query.limit)
    return f"SELECT id, seq FROM tasks{where} ORDER BY seq {order} LIMIT ?", params


@attrs.frozen
class Listing:
    """A page of task ids (oldest first), how many match in all, and whether more remain."""

    ids: tuple[str, ...]
    seqs: tuple[int, ...]
    matching: int
    older: bool
    newer: bool


@attrs.frozen
class Stats:
    """Counts over every task (for ``report`` without an id and ``check_status``)."""

    total: int
    by_status: dict[str, int]
    by_agent: dict[str, int]
    average_duration_s: float | None
    finished: int
    succeeded: int


@attrs.frozen
class Stale:
    """What a start-up must read again: the tasks whose files changed behind the index (or
    that the server keeps in memory), logs without a record, and rows whose record is gone."""

    records: tuple[str, ...]
    orphan_logs: tuple[str, ...]
    gone: tuple[str, ...]


# -- the database (blocking; worker threads only) --------------------------------------------


def remove_index(path: pathlib.Path) -> None:
    """Delete the index's files (the next open makes it anew)."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(path) + suffix)


class IndexDb:
    """One connection to ``index.sqlite``; a missing, foreign or corrupt file is made anew."""

    def __init__(self, path: pathlib.Path, rebuilt: str | None = None) -> None:
        self.path = path
        self.rebuilt = rebuilt
        """Why the index was made anew at open (``None``: it was there and sound)."""
        try:
            self.connection = self._open()
            self._check()
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(AttributeError, sqlite3.Error):
                self.connection.close()
            remove_index(self.path)
            self.rebuilt = f"the index was unreadable ({exc})"
            self.connection = self._open()
            self._check()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if fresh and self.rebuilt is None:
            self.rebuilt = "there was no index"
        return connection

    def _check(self) -> None:
        db = self.connection
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        [(verdict,)] = db.execute("PRAGMA quick_check").fetchall()
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {verdict}")
        [(version,)] = db.execute("PRAGMA user_version").fetchall()
        if version != SCHEMA_VERSION:
            if version != 0 and self.rebuilt is None:
                self.rebuilt = f"the index had schema {version}, not {SCHEMA_VERSION}"
            db.execute("DROP TABLE IF EXISTS tasks")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.connection.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.connection
        db.execute("BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def put(self, rows: Iterable[tuple[Any, ...]]) -> None:
        with self._transaction() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO tasks ({_COLUMNS}) VALUES ({', '.join('?' * 19)})", rows
            )

    def drop(self, task_ids: Iterable[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM tasks WHERE id = ?", ((task_id,) for task_id in task_ids))

    def stale(self, entries: Iterable[tuple[str, bool, int, int, int]]) -> Stale:
        """Compare the directory's ``(task id, is_log, ino, mtime_ns, size)`` entries with the
        rows."""
        db = self.connection
        db.execute("DROP TABLE IF EXISTS temp.seen")
        db.execute(
            "CREATE TEMP TABLE seen (id TEXT, is_log INTEGER, ino INTEGER, mtime_ns INTEGER,"
            " size INTEGER,"
            " PRIMARY KEY (id, is_log)) WITHOUT ROWID"
        )
        with self._transaction():
            db.executemany("INSERT OR REPLACE INTO temp.seen VALUES (?, ?, ?, ?, ?)", entries)
        resident = ", ".join(f"'{status}'" for status in sorted(RESIDENT_STATUSES))
        records = db.execute(
            "SELECT r.id FROM temp.seen r"
            " LEFT JOIN tasks t ON t.id = r.id"
            " LEFT JOIN temp.seen l ON l.id = r.id AND l.is_log = 1"
            " WHERE r.is_log = 0 AND (t.id IS NULL"
            f" OR t.status IN ({resident})"
            " OR t.record_ino != r.ino OR t.record_mtime_ns != r.mtime_ns"
            " OR t.record_size != r.size"
            " OR t.log_mtime_ns IS NOT l.mtime_ns OR t.log_size IS NOT l.size)"
            " ORDER BY r.id"
        ).fetchall()
        orphans = db.execute(
            "SELECT l.id FROM temp.seen l WHERE l.is_log = 1 AND NOT EXISTS"
            " (SELECT 1 FROM temp.seen r WHERE r.id = l.id AND r.is_log = 0) ORDER BY l.id"
        ).fetchall()
        gone = db.execute(
            "SELECT t.id FROM tasks t WHERE NOT EXISTS"
            " (SELECT 1 FROM temp.seen r WHERE r.id = t.id AND r.is_log = 0)"
        ).fetchall()
        db.execute("DROP TABLE temp.seen")
        return Stale(
            records=tuple(r for (r,) in records),
            orphan_logs=tuple(r for (r,) in orphans),
            gone=tuple(r for (r,) in gone),
        )

    def page(self, query: TaskQuery) -> Listing:
        sql, params = page_sql(query)
        rows = self.connection.execute(sql, params).fetchall()
        if not (query.after is not None and query.before is None):
            rows.reverse()
        where, count_params = _where(query)
        [(matching,)] = self.connection.execute(
            f"SELECT count(*) FROM tasks{where}", count_params
        ).fetchall()
        seqs = tuple(seq for _, seq in rows)
        older = newer = False
        if seqs:
            older = self._exists(query, "seq < ?", seqs[0])
            newer = self._exists(query, "seq > ?", seqs[-1])
        return Listing(
            ids=tuple(task_id for task_id, _ in rows),
            seqs=seqs,
            matching=matching,
            older=older,
            newer=newer,
        )

    def _exists(self, query: TaskQuery, clause: str, seq: int) -> bool:
        where, params = _where(query)
        where = (where + " AND " if where else " WHERE ") + clause
        sql = f"SELECT EXISTS (SELECT 1 FROM tasks{where})"
        [(found,)] = self.connection.execute(sql, [*params, seq]).fetchall()
        return bool(found)

    def ids(self, where: str = "", params: Iterable[Any] = (), limit: int = -1) -> list[str]:
        """Task ids, oldest first (``where``: a fixed clause of this module's callers)."""
        sql = f"SELECT id FROM tasks {where} ORDER BY seq LIMIT ?"
        return [task_id for (task_id,) in self.connection.execute(sql, [*params, limit])]

    def resident(self) -> list[str]:
        """The tasks the server must hold in memory, by their rows."""
        marks = ", ".join("?" * len(RESIDENT_STATUSES))
        return self.ids(f"WHERE status IN ({marks})", sorted(RESIDENT_STATUSES))

    def open_worktrees(self) -> list[str]:
        return self.ids("WHERE open_worktree = 1")

    def log_stat(self, task_id: str) -> tuple[int, int | None, int | None] | None:
        """The task's ``(event_count, log_mtime_ns, log_size)`` as its row says."""
        row = self.connection.execute(
            "SELECT event_count, log_mtime_ns, log_size FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def count(self) -> int:
        [(count,)] = self.connection.execute("SELECT count(*) FROM tasks").fetchall()
        return int(count)

    def max_seq(self) -> int:
        [(seq,)] = self.connection.execute("SELECT max(seq) FROM tasks").fetchall()
        return int(seq or 0)

    def stats(self) -> Stats:
        db = self.connection
        by_status = dict(db.execute("SELECT status, count(*) FROM tasks GROUP BY status"))
        by_agent = dict(db.execute("SELECT agent, count(*) FROM tasks GROUP BY agent"))
        [(average, finished, succeeded)] = db.execute(
            "SELECT avg(duration_s), count(outcome), count(CASE outcome WHEN 'success' THEN 1 END)"
            " FROM tasks"
        ).fetchall()
        return Stats(
            total=sum(by_status.values()),
            by_status=by_status,
            by_agent=by_agent,
            average_duration_s=None if average is None else float(average),
            finished=int(finished),
            succeeded=int(succeeded),
        )


class TaskIndex:
    """The trio side of :class:`IndexDb`: every call in a worker thread, one at a time."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._db: IndexDb | None = None
        self._limiter = trio.CapacityLimiter(1)

    async def call(self, work: Callable[[IndexDb], T]) -> T:
        """Run ``work`` with the open database in a worker thread (opened at the first call)."""

        def run() -> T:
            if self._db is None:
                self._db = IndexDb(self.path)
                # Closed when this object goes (if close() was not awaited), never left to the
                # connection's own finalizer (which warns, and could run mid-statement).
                weakref.finalize(self, self._db.close)
            return work(self._db)

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def reset(self, why: str) -> None:
        """Remove the index and make it anew (``why`` it was: logged by the rebuild)."""

        def remake() -> None:
            if self._db is not None:
                self._db.close()
            remove_index(self.path)
            self._db = IndexDb(self.path, why)
            weakref.finalize(self, self._db.close)

        await trio.to_thread.run_sync(remake, limiter=self._limiter)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await trio.to_thread.run_sync(db.close, limiter=self._limiter)
