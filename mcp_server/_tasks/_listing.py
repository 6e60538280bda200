"""Reading many tasks through the index: pages, filters, counts and completion, for
``agent://tasks``, the dashboard's board, ``report`` and ``check_status``.

A listing never walks every record: the index (:mod:`._index`) picks the page, and only its
records are read (those in memory as they are, the others from their files in a worker thread).
``agent://tasks?{query}`` takes the filters as URI query parameters (:func:`parse_query`).
"""

from __future__ import annotations

import datetime
import urllib.parse

import trio

from mcp_server._core import JSON

from ._index import IndexDb, Listing, Stats, TaskQuery
from ._model import TASK_STATUSES, Task
from ._store import TaskStore
from ._taskmap import read_records

MAX_PAGE = 200
"""The most tasks one page lists."""
_QUERY_KEYS = ("status", "project", "cwd", "host", "created_after", "updated_after", "q")
_CURSOR_KEYS = ("before", "after", "limit")


class BadQuery(ValueError):
    """A listing's query parameters that do not parse (the message says which and why)."""


async def page(store: TaskStore, query: TaskQuery) -> tuple[Listing, list[Task]]:
    """A page of the tasks ``query`` selects (oldest first): records in memory as they are, the
    others read from their files (not cached: a page does not push out the tasks in use)."""
    listing = await store.index.call(lambda db: db.page(query))
    missing = [tid for tid in listing.ids if store.tasks.peek(tid) is None]
    read = await trio.to_thread.run_sync(read_records, store.tasks_dir, missing)
    found = {task.id: task for task in read}
    tasks = [store.tasks.peek(tid) or found.get(tid) for tid in listing.ids]
    return listing, [task for task in tasks if task is not None]


async def ids(store: TaskStore, limit: int = -1) -> list[str]:
    """Every task's id (at most ``limit``), oldest first, from the index."""
    return await store.index.call(lambda db: db.ids(limit=limit))


async def stats(store: TaskStore) -> Stats:
    """Counts over every task, from the index."""
    return await store.index.call(IndexDb.stats)


async def complete(store: TaskStore, prefix: str, limit: int = 100) -> list[str]:
    """Task ids that start with ``prefix`` (for completion), oldest first."""
    upper = prefix + "\U0010ffff"
    return await store.index.call(
        lambda db: db.ids("WHERE id >= ? AND id < ?", [prefix, upper], limit)
    )


async def recent(store: TaskStore, since: datetime.datetime, limit: int = 10_000) -> list[Task]:
    """The tasks in memory and those updated since ``since`` (the notifier's catch-up)."""
    _, tasks = await page(store, TaskQuery(updated_after=since.timestamp(), limit=limit))
    known = {task.id for task in tasks}
    return [*tasks, *(t for t in store.tasks.resident.values() if t.id not in known)]


def _time(value: str, key: str, uri: str) -> float:
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise BadQuery(f"expected an ISO 8601 time, got {value!r} @ {uri} ({key})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _count(value: str, key: str, uri: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise BadQuery(f"expected a non-negative integer, got {value!r} @ {uri} ({key})")
    return int(value)


def parse_query(text: str, uri: str, default_limit: int) -> TaskQuery:
    """The listing ``text`` (a URI's query string) asks for: ``status`` (comma-separated),
    ``project``, ``cwd``, ``host``, ``created_after``, ``updated_after`` (ISO times), ``q``
    (words), ``before``/``after`` (cursors: creation sequence numbers), ``limit``."""
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise BadQuery(f"expected key=value pairs joined by &, got {text!r} @ {uri}") from None
    values: dict[str, str] = {}
    for key, value in pairs:
        if key not in _QUERY_KEYS + _CURSOR_KEYS:
            known = ", ".join(_QUERY_KEYS + _CURSOR_KEYS)
            raise BadQuery(f"expected one of {known}, got {key!r} @ {uri}")
        if key in values:
            raise BadQuery(f"expected {key!r} once, got it twice @ {uri}")
        values[key] = value
    statuses = tuple(s for s in values.get("status", "").split(",") if s)
    for status in statuses:
        if status not in TASK_STATUSES:
            raise BadQuery(
                f"expected statuses among {', '.join(TASK_STATUSES)}, got {status!r} @ {uri}"
            )
    limit = _count(values["limit"], "limit", uri) if "limit" in values else default_limit
    if not 1 <= limit <= MAX_PAGE:
        raise BadQuery(f"expected a limit from 1 to {MAX_PAGE}, got {limit} @ {uri}")
    return TaskQuery(
        statuses=statuses,
        project_dir=values.get("project"),
        cwd=values.get("cwd"),
        host=values.get("host"),
        created_after=_time(values["created_after"], "created_after", uri)
        if "created_after" in values
        else None,
        updated_after=_time(values["updated_after"], "updated_after", uri)
        if "updated_after" in values
        else None,
        words=tuple(values.get("q", "").lower().split()),
        before=_count(values["before"], "before", uri) if "before" in values else None,
        after=_count(values["after"], "after", uri) if "after" in values else None,
        limit=limit,
    )


def page_links(base: str, text: str, listing: Listing) -> JSON:
    """The URIs of the older and newer pages (``None`` at either end)."""
    kept = [
        (key, value)
        for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True)
        if key not in ("before", "after")
    ]

    def link(key: str, seq: int) -> str:
        return f"{base}?{urllib.parse.urlencode([*kept, (key, str(seq))])}"

    return {
        "older": link("before", listing.seqs[0]) if listing.older else None,
        "newer": link("after", listing.seqs[-1]) if listing.newer else None,
    }
