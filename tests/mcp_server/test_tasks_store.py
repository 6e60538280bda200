"""The task store with real files: write-through, events, crash leftovers and recovery."""

from __future__ import annotations

import datetime
import gc
import logging
import os
import pathlib
import tracemalloc
from collections.abc import Callable

import orjson
import pytest
import trio
from _support.polling import eventually

from mcp_server._tasks._files import (
    MAX_DATA_CHARS,
    MAX_EVENT_BYTES,
    MAX_RAW_CHARS,
    decode_event,
    encode_bounded,
)
from mcp_server._tasks._model import TaskEvent, TaskOptions, new_task, start_run
from mcp_server._tasks._store import (
    LOG_SUFFIX,
    MAX_PENDING_EVENTS,
    RECORD_SUFFIX,
    StateWriteError,
    StoreEvent,
    TaskStore,
    Visible,
    decode_task,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


async def stored_task(root: pathlib.Path, *, events: int = 0, running: bool = False) -> str:
    store = TaskStore(root)
    await store.load()
    task = new_task(
        title="t",
        instructions="go",
        agent="claude",
        project_dir="p",
        cwd="/w/p",
        options=TaskOptions(max_turns=3),
        now=T0,
    )
    await store.create(task)
    if running:
        await store.commit(task.id, lambda t: start_run(t, T0))
    for n in range(events):
        store.append_event(task.id, kind="agent", summary=f"event {n}", data={"n": n})
    await store.save(task.id)
    return task.id


async def test_record_round_trips(tmp_path: pathlib.Path) -> None:
    """A saved task loads back equal, with its event count."""
    task_id = await stored_task(tmp_path, events=3)
    store = TaskStore(tmp_path)
    (task,) = await store.load()
    assert task.id == task_id
    assert task.options.max_turns == 3
    assert task.event_count == 3
    assert not store.quarantined


async def test_store_tells_its_listener_what_became_visible(tmp_path: pathlib.Path) -> None:
    """The listener given at construction hears of a created record and of written output."""
    heard: list[StoreEvent] = []
    store = TaskStore(tmp_path, heard.append)
    await store.load()
    task = new_task(
        title="t",
        instructions="go",
        agent="claude",
        project_dir="p",
        cwd="/w/p",
        options=TaskOptions(),
        now=T0,
    )
    await store.create(task)
    assert heard == [Visible(task.id)]
    store.append_event(task.id, kind="agent", summary="out")
    assert heard == [Visible(task.id)]  # queued, not yet visible
    await store.flush()
    assert heard == [Visible(task.id), Visible(task.id)]
    assert [e.summary for e in await store.read_events(task.id, 0, 10)] == ["out"]


async def test_record_file_is_whole_json(tmp_path: pathlib.Path) -> None:
    """The record on disk is one JSON document with tz-aware times, no temp file left."""
    task_id = await stored_task(tmp_path)
    path = tmp_path / "tasks" / (task_id + RECORD_SUFFIX)
    assert decode_task(path.read_bytes()).created_at == T0
    assert not list((tmp_path / "tasks").glob("*.tmp"))


async def test_events_contiguous_and_paged(tmp_path: pathlib.Path) -> None:
    """Written events read back from any point in order; queued ones only once written."""
    task_id = await stored_task(tmp_path, events=10)
    store = TaskStore(tmp_path)
    await store.load()
    for n in range(5):
        store.append_event(task_id, kind="agent", summary=f"late {n}")
    assert [e.seq for e in await store.read_events(task_id, after=7, limit=5)] == [8, 9, 10]
    assert store.last_seq(task_id) == 10
    await store.flush()
    events = await store.read_events(task_id, after=7, limit=5)
    assert [e.seq for e in events] == [8, 9, 10, 11, 12]
    assert [e.seq for e in await store.read_events(task_id, after=0, limit=100)] == list(
        range(1, 16)
    )


async def test_flusher_writes_and_fsyncs(tmp_path: pathlib.Path) -> None:
    """The flusher writes queued events to the log without a transition."""
    task_id = await stored_task(tmp_path)
    store = TaskStore(tmp_path)
    await store.load()
    log_path = tmp_path / "tasks" / (task_id + LOG_SUFFIX)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run_flusher)
        store.append_event(task_id, kind="agent", summary="hello")
        await eventually(lambda: log_path.exists() and b"hello" in log_path.read_bytes())
        nursery.cancel_scope.cancel()
    assert orjson.loads(log_path.read_bytes().splitlines()[0])["seq"] == 1


async def test_running_task_becomes_interrupted(tmp_path: pathlib.Path) -> None:
    """A task found in_progress at startup with no run_id (its run was not detachable) is
    recorded interrupted, durably."""
    await stored_task(tmp_path, running=True)
    (task,) = await TaskStore(tmp_path).load()
    assert task.status == "interrupted"
    (again,) = await TaskStore(tmp_path).load()
    assert again.status == "interrupted"


async def test_a_detachable_run_stays_in_flight(tmp_path: pathlib.Path) -> None:
    """A task found in_progress with a run_id stays in_progress: the daemon kept its run, the
    runner re-attaches to it."""
    store = TaskStore(tmp_path)
    await store.load()
    task = new_task(
        title="t",
        instructions="go",
        agent="claude",
        project_dir="p",
        cwd="/w/p",
        options=TaskOptions(),
        now=T0,
    )
    await store.create(task)
    await store.commit(task.id, lambda t: start_run(t, T0, run_id="0123456789abcdef"))
    (loaded,) = await TaskStore(tmp_path).load()
    assert (loaded.status, loaded.run_id) == ("in_progress", "0123456789abcdef")
    assert loaded.reattachable


async def test_an_event_keeps_its_daemon_frame_number(tmp_path: pathlib.Path) -> None:
    """An event recorded from a daemon frame keeps the frame's number; others have none and
    their log lines have no such field."""
    task_id = await stored_task(tmp_path)
    store = TaskStore(tmp_path)
    await store.load()
    store.append_event(task_id, kind="agent", summary="from a frame", daemon_seq=7)
    store.append_event(task_id, kind="steer", summary="from the server")
    await store.save(task_id)
    framed, own = await store.read_events(task_id, 0, 10)
    assert (framed.daemon_seq, own.daemon_seq) == (7, None)
    lines = (tmp_path / "tasks" / (task_id + LOG_SUFFIX)).read_bytes().splitlines()
    assert [b"daemon_seq" in line for line in lines] == [True, False]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"\x00garbage\xff", id="garbage"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: data.replace(b'"claude"', b'"cobol"'), id="bad-agent"),
        pytest.param(
            lambda data: data.replace(b'"event_count": 2', b'"event_count": "2"'), id="str-int"
        ),
    ],
)
async def test_bad_record_quarantined(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, damage: Callable[[bytes], bytes]
) -> None:
    """A damaged record and its log are moved to quarantine with a log line; no crash."""
    task_id = await stored_task(tmp_path, events=2)
    path = tmp_path / "tasks" / (task_id + RECORD_SUFFIX)
    path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="mcp_server.tasks"):
        store = TaskStore(tmp_path)
        assert await store.load() == []
    assert not path.exists()
    names = sorted(p.name for p in (tmp_path / "quarantine").iterdir())
    assert [n.split(".")[0] for n in names] == [task_id, task_id]
    assert "quarantined" in caplog.text
    assert task_id in caplog.text


async def test_torn_last_line_cut_back(tmp_path: pathlib.Path) -> None:
    """A log whose last line was cut mid-write keeps its whole lines; the torn bytes go aside."""
    task_id = await stored_task(tmp_path, events=4)
    log_path = tmp_path / "tasks" / (task_id + LOG_SUFFIX)
    with log_path.open("ab") as handle:
        handle.write(b'{"seq": 5, "time": "2026-')
    store = TaskStore(tmp_path)
    (task,) = await store.load()
    assert task.event_count == 4
    assert log_path.read_bytes().endswith(b"\n")
    (torn,) = (tmp_path / "quarantine").iterdir()
    assert torn.read_bytes() == b'{"seq": 5, "time": "2026-'
    event = store.append_event(task_id, kind="agent", summary="next")
    assert event.seq == 5


async def test_corrupt_middle_line_keeps_prefix(tmp_path: pathlib.Path) -> None:
    """A garbage line mid-log: the whole log is quarantined, the good prefix stays in place."""
    task_id = await stored_task(tmp_path, events=5)
    log_path = tmp_path / "tasks" / (task_id + LOG_SUFFIX)
    lines = log_path.read_bytes().splitlines(keepends=True)
    lines[2] = b"not json\n"
    log_path.write_bytes(b"".join(lines))
    store = TaskStore(tmp_path)
    (task,) = await store.load()
    assert task.event_count == 2
    assert [e.seq for e in await store.read_events(task_id, 0, 10)] == [1, 2]
    (moved,) = (tmp_path / "quarantine").iterdir()
    assert moved.read_bytes().count(b"\n") == 5


async def test_sequence_gap_quarantined(tmp_path: pathlib.Path) -> None:
    """A log whose seq jumps is cut at the gap and the original kept in quarantine."""
    task_id = await stored_task(tmp_path, events=3)
    log_path = tmp_path / "tasks" / (task_id + LOG_SUFFIX)
    lines = log_path.read_bytes().splitlines(keepends=True)
    log_path.write_bytes(lines[0] + lines[2])
    (task,) = await TaskStore(tmp_path).load()
    assert task.event_count == 1
    assert len(list((tmp_path / "quarantine").iterdir())) == 1


async def test_orphan_log_and_temp_file(tmp_path: pathlib.Path) -> None:
    """A log without a record is quarantined; a leftover temp record is removed."""
    task_id = await stored_task(tmp_path, events=1)
    (tmp_path / "tasks" / "orphan.events.ndjson").write_bytes(b"{}\n")
    (tmp_path / "tasks" / (task_id + ".json.tmp")).write_bytes(b"{half")
    tasks = await TaskStore(tmp_path).load()
    assert [t.id for t in tasks] == [task_id]
    assert [p.name.split(".")[0] for p in (tmp_path / "quarantine").iterdir()] == ["orphan"]
    assert not list((tmp_path / "tasks").glob("*.tmp"))


async def test_delete_removes_files(tmp_path: pathlib.Path) -> None:
    """Deleting a task removes its record and log."""
    task_id = await stored_task(tmp_path, events=1)
    store = TaskStore(tmp_path)
    await store.load()
    await store.delete(task_id)
    assert os.listdir(tmp_path / "tasks") == []
    assert await TaskStore(tmp_path).load() == []


async def test_backpressure_waits_for_the_flusher(tmp_path: pathlib.Path) -> None:
    """A producer with too many unwritten events waits until the flusher drains them."""
    task_id = await stored_task(tmp_path)
    store = TaskStore(tmp_path)
    await store.load()
    for n in range(MAX_PENDING_EVENTS):
        store.append_event(task_id, kind="agent", summary=f"e{n}")
    with trio.move_on_after(0.3) as blocked:
        await store.backpressure(task_id)
    assert blocked.cancelled_caught
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run_flusher)
        with trio.fail_after(30):
            await store.backpressure(task_id)
        nursery.cancel_scope.cancel()
    assert store.last_seq(task_id) == MAX_PENDING_EVENTS


async def test_written_events_cost_little_memory(tmp_path: pathlib.Path) -> None:
    """Once written, an event costs the store about one 8-byte offset (the event is on disk)."""
    task_id = await stored_task(tmp_path)
    store = TaskStore(tmp_path)
    await store.load()
    count = 40_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, count, 1000):
            for n in range(start, start + 1000):
                store.append_event(task_id, kind="agent", summary=f"event {n}", data={"n": n})
            await store.flush()
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert store.last_seq(task_id) == count
    assert retained / count < 20, f"{retained / count:.1f} bytes per written event"


async def test_unwritable_transition_is_not_published(tmp_path: pathlib.Path) -> None:
    """A transition whose record cannot be written raises; readers keep the old record and log."""
    task_id = await stored_task(tmp_path, events=2)
    store = TaskStore(tmp_path)
    await store.load()
    store.append_event(task_id, kind="agent", summary="queued")
    blocker = tmp_path / "tasks" / (task_id + RECORD_SUFFIX + ".tmp")
    blocker.mkdir()  # the record's temp file cannot be created
    status = {"kind": "status", "summary": "in_progress"}
    before = store.tasks[task_id]
    with pytest.raises(StateWriteError, match="state write failed: Is a directory"):
        await store.commit(task_id, lambda t: start_run(t, T0, "again"), lambda t: [status])
    assert store.tasks[task_id] == before
    assert [e.seq for e in await store.read_events(task_id, 0, 10)] == [1, 2]
    blocker.rmdir()
    await store.flush()
    events = await store.read_events(task_id, 0, 10)
    assert [(e.seq, e.summary) for e in events] == [(1, "event 0"), (2, "event 1"), (3, "queued")]
    (again,) = await TaskStore(tmp_path).load()
    assert (again.status, again.event_count) == (before.status, 3)


async def test_creation_sequence_survives_restart(tmp_path: pathlib.Path) -> None:
    """Each task gets the next creation number; after a restart numbering goes on from the last."""
    first = await stored_task(tmp_path)
    second = await stored_task(tmp_path)
    store = TaskStore(tmp_path)
    await store.load()
    assert (store.tasks[first].seq, store.tasks[second].seq) == (1, 2)
    third = new_task(
        title="t",
        instructions="go",
        agent="claude",
        project_dir="",
        cwd="/w",
        options=TaskOptions(),
        now=T0,
    )
    assert (await store.create(third)).seq == 3


async def test_reads_bounded_by_bytes(tmp_path: pathlib.Path) -> None:
    """A read takes at most max_bytes of the log (at least one event); the next read goes on."""
    task_id = await stored_task(tmp_path)
    store = TaskStore(tmp_path)
    await store.load()
    for n in range(10):
        store.append_event(task_id, kind="agent", summary=f"e{n}", raw="x" * 50_000)
    await store.flush()
    assert [e.seq for e in await store.read_events(task_id, 0, 100, max_bytes=120_000)] == [1, 2]
    assert [e.seq for e in await store.read_events(task_id, 2, 100, max_bytes=10)] == [3]
    assert [e.seq for e in await store.read_events(task_id, 3, 100)] == list(range(4, 11))


async def test_queued_event_capped_with_a_marker(tmp_path: pathlib.Path) -> None:
    """A huge raw line and data string are cut when queued; the markers say how much was cut."""
    task_id = await stored_task(tmp_path)
    store = TaskStore(tmp_path)
    await store.load()
    event = store.append_event(
        task_id, kind="agent", summary="s", raw="r" * 1_000_000, data={"text": "t" * 1_000_000}
    )
    assert event.raw is not None
    assert event.raw.endswith(f"[cut: {1_000_000 - MAX_RAW_CHARS} more characters of 1000000]")
    assert event.data is not None
    assert len(event.data["text"]) < MAX_DATA_CHARS + 100
    assert "more characters of 1000000; the line is in raw]" in event.data["text"]


def test_every_log_line_fits_the_cap() -> None:
    """An event whose capped fields still add up (escapes, many strings) is stored as a preview."""
    many = {f"k{n}": "\x01" * MAX_DATA_CHARS for n in range(100)}
    event = TaskEvent(
        seq=1, time=T0, kind="agent", summary="s" * 5000, data=many, raw="\x02" * 10**6
    )
    line = encode_bounded(event)
    assert len(line) <= MAX_EVENT_BYTES
    data = decode_event(line).data
    assert data is not None
    assert list(data) == ["cut"]


async def test_record_from_before_worktrees_loads(tmp_path: pathlib.Path) -> None:
    """A record written before issue 9 (no isolation, worktree, commits, review, report.commit)
    loads with isolation none and no commits."""
    task_id = await stored_task(tmp_path)
    path = tmp_path / "tasks" / (task_id + RECORD_SUFFIX)
    record = orjson.loads(path.read_bytes())
    for key in ("isolation", "isolation_note", "worktree", "commits", "review"):
        del record[key]
    record["report"] = {
        "outcome": "success",
        "started_at": T0.isoformat(),
        "finished_at": T0.isoformat(),
        "files_changed": ["a.py"],
    }
    path.write_bytes(orjson.dumps(record))
    store = TaskStore(tmp_path)
    (task,) = await store.load()
    assert not store.quarantined
    assert (task.isolation, task.worktree, task.commits, task.review) == ("none", None, (), None)
    assert task.report is not None
    assert task.report.commit is None
