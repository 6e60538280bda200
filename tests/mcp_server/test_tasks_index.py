"""The task index (``STATE/index.sqlite``): rebuilt from the files, repaired at start, paging;
tasks at rest read on demand; log pages read without a per-event offset table."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import pathlib
import sqlite3

import attrs
import pytest
import trio
from _support.polling import eventually
from _support.task_server import task_server

from mcp_server._tasks import TaskQuery, TaskStore, task_page
from mcp_server._tasks._files import (
    LOG_SUFFIX,
    MARK_STRIDE,
    RECORD_SUFFIX,
    SCAN_CHUNK,
    encode_task,
)
from mcp_server._tasks._index import INDEX_NAME
from mcp_server._tasks._model import (
    RunReport,
    Task,
    TaskOptions,
    finish_run,
    new_task,
    start_run,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def a_task(title: str = "t", cwd: str = "/w") -> Task:
    return new_task(
        title=title,
        instructions="go",
        agent="claude",
        project_dir=cwd.removeprefix("/w").lstrip("/"),
        cwd=cwd,
        options=TaskOptions(),
        now=T0,
    )


def done(task: Task) -> Task:
    report = RunReport(outcome="success", started_at=T0, finished_at=T0)
    return finish_run(start_run(task, T0), report, T0)


async def finished_tasks(store: TaskStore, count: int, cwd: str = "/w") -> list[str]:
    """Create ``count`` tasks and run each to ``waiting`` (at rest); their ids, oldest first."""
    ids = []
    for n in range(count):
        task = await store.create(a_task(f"task {n}", cwd))
        await store.commit(task.id, done, lambda t: [{"kind": "status", "summary": t.status}])
        ids.append(task.id)
    return ids


async def loaded(root: pathlib.Path) -> TaskStore:
    store = TaskStore(root)
    await store.load()
    return store


async def listed(store: TaskStore, query: TaskQuery | None = None) -> list[str]:
    _, tasks = await task_page(store, query or TaskQuery(limit=100))
    return [task.id for task in tasks]


async def test_deleted_index_is_rebuilt_from_the_files(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With index.sqlite deleted, the next start rebuilds it from the records, saying so."""
    store = await loaded(tmp_path)
    ids = await finished_tasks(store, 3)
    await store.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / (INDEX_NAME + suffix)).unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING, "mcp_server.tasks"):
        again = await loaded(tmp_path)
    assert "rebuilding the task index from 3 task records: there was no index" in caplog.text
    assert await listed(again) == ids
    assert (tmp_path / INDEX_NAME).exists()


async def test_corrupt_index_is_rebuilt_from_the_files(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An index.sqlite that is not a database is made anew from the records, saying why."""
    store = await loaded(tmp_path)
    ids = await finished_tasks(store, 2)
    await store.close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / (INDEX_NAME + suffix)).unlink(missing_ok=True)
    (tmp_path / INDEX_NAME).write_bytes(b"not a database at all; " * 100)
    with caplog.at_level(logging.WARNING, "mcp_server.tasks"):
        again = await loaded(tmp_path)
    assert "rebuilding the task index from 2 task records: the index was unreadable" in caplog.text
    assert await listed(again) == ids


async def test_index_that_fails_its_queries_is_rebuilt(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An index that passes the open's checks but fails a query is rebuilt, saying why."""
    store = await loaded(tmp_path)
    ids = await finished_tasks(store, 2)
    await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / INDEX_NAME)) as db:
        db.execute("DROP TABLE tasks")
        db.execute("CREATE TABLE tasks (id TEXT PRIMARY KEY)")
        db.commit()
    with caplog.at_level(logging.WARNING, "mcp_server.tasks"):
        again = await loaded(tmp_path)
    assert "task records: the index failed (no such column" in caplog.text
    assert await listed(again) == ids


async def test_record_changed_behind_the_index_is_picked_up(tmp_path: pathlib.Path) -> None:
    """Records changed, added or removed behind the index are what the next start sees."""
    store = await loaded(tmp_path)
    first, second = await finished_tasks(store, 2)
    await store.close()
    tasks_dir = tmp_path / "tasks"
    record = tasks_dir / (first + RECORD_SUFFIX)
    changed = attrs.evolve(store.tasks[first], title="renamed behind the index", status="failed")
    record.write_bytes(encode_task(changed))
    unseen = attrs.evolve(done(a_task("never indexed")), seq=3)
    (tasks_dir / (unseen.id + RECORD_SUFFIX)).write_bytes(encode_task(unseen))
    (tasks_dir / (second + RECORD_SUFFIX)).unlink()
    (tasks_dir / (second + LOG_SUFFIX)).unlink()
    again = await loaded(tmp_path)
    failed = await listed(again, TaskQuery(statuses=("failed",)))
    assert failed == [first]
    assert again.tasks[first].title == "renamed behind the index"
    assert await listed(again) == [first, unseen.id]


async def test_record_rewritten_with_its_size_and_mtime_is_picked_up(
    tmp_path: pathlib.Path,
) -> None:
    """A same-size rewrite with the same mtime is still read again (its inode is new)."""
    store = await loaded(tmp_path)
    (task_id,) = await finished_tasks(store, 1)
    await store.close()
    record = tmp_path / "tasks" / (task_id + RECORD_SUFFIX)
    before = record.stat()
    renamed = attrs.evolve(store.tasks[task_id], title="task X")  # was "task 0": same size
    staged = record.with_name("staged")
    staged.write_bytes(encode_task(renamed))
    os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(staged, record)
    assert (record.stat().st_size, record.stat().st_mtime_ns) == (
        before.st_size,
        before.st_mtime_ns,
    )
    again = await loaded(tmp_path)
    assert await listed(again, TaskQuery(words=("task", "x"))) == [task_id]


async def test_tasks_at_rest_are_not_held_in_memory(tmp_path: pathlib.Path) -> None:
    """After a start, tasks at rest are on disk only, yet each reads by id (then is cached)."""
    store = await loaded(tmp_path)
    ids = await finished_tasks(store, 4)
    queued = await store.create(a_task("still pending"))
    await store.close()
    again = await loaded(tmp_path)
    assert list(again.tasks.resident) == []  # the pending one became interrupted
    assert again.tasks.cached() == 1  # that one, just rewritten
    assert [again.tasks.peek(task_id) for task_id in ids] == [None] * 4
    task = await again.fetch(ids[0])
    assert task is not None
    assert (task.id, task.status) == (ids[0], "waiting")
    assert [e.summary for e in await again.read_events(ids[0], 0, 10)] == ["waiting"]
    assert again.tasks.cached() == 2
    assert (await again.fetch(queued.id)) == again.tasks[queued.id]
    assert again.tasks[queued.id].status == "interrupted"


async def test_cached_tasks_at_rest_are_bounded(tmp_path: pathlib.Path) -> None:
    """However many tasks at rest are read, at most the cache's capacity stay in memory."""
    store = await loaded(tmp_path)
    ids = await finished_tasks(store, 6)
    await store.close()
    again = await loaded(tmp_path)
    again.tasks.capacity = 2
    for task_id in ids:
        assert (await again.fetch(task_id)) is not None
        await again.read_events(task_id, 0, 10)
    assert again.tasks.cached() == 2
    assert set(again._logs) == set(ids[-2:])  # the logs of the others are let go too


async def test_pages_are_stable_across_inserts(tmp_path: pathlib.Path) -> None:
    """Paging back with a cursor gives the same page after new tasks arrive; filters hold."""
    store = await loaded(tmp_path)
    ids = await finished_tasks(store, 5, cwd="/w/a")
    others = await finished_tasks(store, 2, cwd="/w/b")
    newest, newest_tasks = await task_page(store, TaskQuery(limit=3))
    assert [t.id for t in newest_tasks] == [ids[4], *others]
    older, older_tasks = await task_page(store, TaskQuery(limit=3, before=newest.seqs[0]))
    assert [t.id for t in older_tasks] == ids[1:4]
    assert (older.older, older.newer, older.matching) == (True, True, 7)
    await finished_tasks(store, 3, cwd="/w/a")
    again, again_tasks = await task_page(store, TaskQuery(limit=3, before=newest.seqs[0]))
    assert [t.id for t in again_tasks] == ids[1:4]
    assert again.matching == 10
    in_a = TaskQuery(cwd="/w/a", limit=100)
    assert len(await listed(store, in_a)) == 8
    assert await listed(store, TaskQuery(cwd="/w/b", limit=100)) == others
    assert await listed(store, TaskQuery(project_dir="b", limit=100)) == others
    assert await listed(store, TaskQuery(host="elsewhere", limit=100)) == []
    assert await listed(store, TaskQuery(statuses=("pending",), limit=100)) == []
    forward, forward_tasks = await task_page(store, TaskQuery(limit=2, after=0))
    assert [t.id for t in forward_tasks] == ids[:2]
    assert (forward.older, forward.newer) == (False, True)
    late = T0 + datetime.timedelta(days=1)
    assert await listed(store, TaskQuery(updated_after=late.timestamp())) == []
    assert len(await listed(store, TaskQuery(created_after=T0.timestamp()))) == 10


async def test_last_log_page_reads_from_the_end(tmp_path: pathlib.Path) -> None:
    """A log's last page is read back from its end, and offsets are kept per MARK_STRIDE."""
    store = await loaded(tmp_path)
    task = await store.create(a_task())
    await store.commit(task.id, lambda t: start_run(t, T0))
    events = 5 * MARK_STRIDE + 7
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run_flusher)
        for n in range(events):
            store.append_event(task.id, kind="agent", summary=f"event {n + 1}")
            await store.backpressure(task.id)
        await store.flush(force_fsync=True)
        nursery.cancel_scope.cancel()
    state = store._logs[task.id]
    assert state.written == events
    assert len(state.marks) == events // MARK_STRIDE + 1
    page = await store.read_events(task.id, events - 10, 200)
    assert [e.seq for e in page] == list(range(events - 9, events + 1))
    report = RunReport(outcome="success", started_at=T0, finished_at=T0)
    await store.commit(task.id, lambda t: finish_run(t, report, T0))  # at rest: left alone
    await store.close()

    again = await loaded(tmp_path)
    assert task.id not in again._logs
    tail = await again.read_events(task.id, events - 10, 200)
    assert [e.summary for e in tail] == [f"event {n}" for n in range(events - 9, events + 1)]
    reopened = again._logs[task.id]
    size = (tmp_path / "tasks" / (task.id + LOG_SUFFIX)).stat().st_size
    assert size > 8 * SCAN_CHUNK
    assert reopened.scanned <= SCAN_CHUNK, f"read {reopened.scanned} of {size} bytes to find it"
    assert len(reopened.marks) == 0
    middle = await again.read_events(task.id, 2 * MARK_STRIDE + 3, 5)
    assert [e.seq for e in middle] == list(range(2 * MARK_STRIDE + 4, 2 * MARK_STRIDE + 9))


async def test_agent_tasks_resource_pages_and_filters(tmp_path: pathlib.Path) -> None:
    """agent://tasks and agent://tasks?{query} page and filter; a bad query is an error."""
    tasks_dir = tmp_path / "state" / "tasks"
    tasks_dir.mkdir(parents=True)
    tasks = [
        attrs.evolve(done(a_task(f"task {n}", "/w/a" if n % 2 else "/w/b")), seq=n + 1)
        for n in range(60)
    ]
    for task in tasks:
        (tasks_dir / (task.id + RECORD_SUFFIX)).write_bytes(encode_task(task))
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]  # no daemon: listing needs none
    async with task_server(tmp_path, port=free_port) as env:
        first = await env.client.read("agent://tasks")
        assert [t["task_id"] for t in first["tasks"]] == [t.id for t in tasks[10:]]
        assert (first["total_tasks"], first["tasks_omitted"], first["newer"]) == (60, 10, None)
        older = await env.client.read(first["older"])
        assert [t["task_id"] for t in older["tasks"]] == [t.id for t in tasks[:10]]
        assert older["older"] is None
        in_a = await env.client.read("agent://tasks?cwd=%2Fw%2Fa&status=waiting&limit=5")
        assert [t["task_id"] for t in in_a["tasks"]] == [t.id for t in tasks[51::2]]
        assert in_a["matching_tasks"] == 30
        before = await env.client.read(in_a["older"])
        assert [t["task_id"] for t in before["tasks"]] == [t.id for t in tasks[41:51:2]]
        answer = await env.client.rpc("resources/read", {"uri": "agent://tasks?status=nope"})
        assert "expected statuses among" in answer["error"]["message"]


async def test_a_transition_cancelled_while_the_index_is_busy_is_published_and_indexed(
    tmp_path: pathlib.Path,
) -> None:
    """A commit cancelled while the index is busy is published at once and indexed after."""
    store = await loaded(tmp_path)
    task = await store.create(a_task())
    await store.commit(task.id, lambda t: start_run(t, T0))
    report = RunReport(outcome="success", started_at=T0, finished_at=T0)
    holder = object()
    await store.index._limiter.acquire_on_behalf_of(holder)  # the index is busy
    scope = trio.CancelScope()

    async def finish() -> None:
        with scope:
            await store.commit(task.id, lambda t: finish_run(t, report, T0))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(finish)
        await eventually(lambda: store.tasks[task.id].status == "waiting")  # before its row
        scope.cancel()
        store.index._limiter.release_on_behalf_of(holder)
    assert await listed(store, TaskQuery(statuses=("waiting",))) == [task.id]
