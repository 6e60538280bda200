"""A full state disk (a real 1 MiB tmpfs) fails the task that hit it, never the server."""

from __future__ import annotations

import datetime
import pathlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import trio
from _support.polling import eventually
from _support.small_disk import fill, mounted_tmpfs
from _support.task_server import Client, all_events, up_client

from mcp_server._tasks._model import (
    RunReport,
    Task,
    TaskOptions,
    finish_run,
    new_task,
    start_run,
)
from mcp_server._tasks._store import RECORD_SUFFIX, StateWriteError, TaskStore

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def small_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A 1 MiB tmpfs mounted at ``tmp_path/state``."""
    with mounted_tmpfs(tmp_path / "state", "1m") as mount:
        yield mount


async def wait_ended(client: Client, task_id: str) -> dict[str, Any]:
    with trio.fail_after(120):
        while True:
            task = await client.ok("wait_task", id=task_id, timeout_s=20)
            if task["status"] != "in_progress":
                return task


def on_disk(state: pathlib.Path, task_id: str) -> dict[str, Any]:
    record: dict[str, Any] = orjson.loads(
        (state / "tasks" / (task_id + RECORD_SUFFIX)).read_bytes()
    )
    return record


async def test_full_disk_fails_the_task_not_the_server(
    tmp_path: pathlib.Path, small_disk: pathlib.Path
) -> None:
    """Disk full mid-run: that task fails with the reason, the server serves, writes resume."""
    filler = small_disk / "filler"
    async with up_client(tmp_path, small_disk) as (up, client):
        before = (await client.ok("create_task", title="a", instructions="hello"))["task_id"]
        assert (await wait_ended(client, before))["status"] == "waiting"
        before_events = await all_events(client, before)

        await trio.to_thread.run_sync(fill, filler, 128 * 1024)
        flooded = (await client.ok("create_task", title="b", instructions="flood"))["task_id"]
        failed = await wait_ended(client, flooded)
        assert failed["status"] == "failed", failed
        assert "state disk full" in failed["report"]["error"], failed["report"]
        await trio.to_thread.run_sync(fill, small_disk / "filler-2", 0)

        status = await client.call("check_status")
        assert status["isError"], status
        assert status["structuredContent"]["error"]["code"] == "state_unwritable"
        assert "state disk full" in status["structuredContent"]["message"]
        assert (await client.ok("report", id=before))["status"] == "waiting"
        assert await all_events(client, before) == before_events
        refused = await client.call("create_task", title="c", instructions="hello")
        assert refused["isError"], refused
        assert refused["structuredContent"]["error"]["code"] == "state_unwritable"
        assert "state disk full" in refused["structuredContent"]["message"]
        assert str(small_disk) in refused["structuredContent"]["message"]

        await trio.to_thread.run_sync(filler.unlink)
        await trio.to_thread.run_sync((small_disk / "filler-2").unlink)
        after = (await client.ok("create_task", title="d", instructions="hello"))["task_id"]
        assert (await wait_ended(client, after))["status"] == "waiting"
        await eventually(lambda: on_disk(small_disk, flooded)["status"] == "failed")
        assert (await client.ok("check_status"))["total_tasks"] == 3
        assert up.process.returncode is None

    async with up_client(tmp_path, small_disk) as (_, client):
        assert (await client.ok("report", id=before))["status"] == "waiting"
        assert await all_events(client, before) == before_events
        again = await client.ok("report", id=flooded)
        assert again["status"] == "failed"
        assert "state disk full" in again["report"]["error"]
        assert (await client.ok("report", id=after))["status"] == "waiting"


def a_task() -> Task:
    return new_task(
        title="t",
        instructions="go",
        agent="claude",
        project_dir="",
        cwd="/w",
        options=TaskOptions(),
        now=T0,
    )


async def test_refused_run_end_is_kept_until_the_disk_takes_it(small_disk: pathlib.Path) -> None:
    """A run's end the full disk refuses is published, kept in memory, written once it can be."""
    store = TaskStore(small_disk)
    await store.load()
    task_id = (await store.create(a_task())).id
    await store.commit(task_id, lambda t: start_run(t, T0))
    filler = small_disk / "filler"
    report = RunReport(outcome="error", started_at=T0, finished_at=T0, error="run stopped: why")
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run_flusher)  # idle: nothing queued, nothing refused yet
        fill(filler, 0)
        ended = await store.commit(
            task_id,
            lambda t: finish_run(t, report, T0),
            lambda t: [{"kind": "status", "summary": t.status}],
            defer=True,
        )
        assert (ended.status, store.tasks[task_id].status) == ("failed", "failed")
        assert "state disk full" in str(store.fault)
        assert on_disk(small_disk, task_id)["status"] == "in_progress"
        refused = a_task()
        with pytest.raises(StateWriteError, match=f"state disk full: .* at {small_disk}/"):
            await store.create(refused)
        assert not list((small_disk / "tasks").glob(refused.id + "*"))

        filler.unlink()
        await eventually(lambda: on_disk(small_disk, task_id)["status"] == "failed")
        await eventually(lambda: store.fault is None)
        nursery.cancel_scope.cancel()
    assert [e.summary for e in await store.read_events(task_id, 0, 10)] == ["failed"]
    reloaded = TaskStore(small_disk)
    await reloaded.load()
    again = reloaded.tasks[task_id]
    assert (again.status, again.event_count) == ("failed", 1)


async def test_read_only_disk_refused_clearly(small_disk: pathlib.Path) -> None:
    """On a read-only state disk a create is refused naming the condition; reads still work."""
    store = TaskStore(small_disk)
    await store.load()
    task_id = (await store.create(a_task())).id
    await store.close()  # the index's open database would keep the disk busy (rw)
    await trio.run_process(["mount", "-o", "remount,ro", str(small_disk)])
    try:
        with pytest.raises(StateWriteError, match="state disk read-only: Read-only file system"):
            await store.create(a_task())
        await store.retry(probe=True)
        assert "state disk read-only" in str(store.fault)
        assert store.tasks[task_id].status == "pending"
    finally:
        with trio.CancelScope(shield=True):
            await trio.run_process(["mount", "-o", "remount,rw", str(small_disk)])
    await store.retry(probe=True)
    assert store.fault is None
    assert (await store.create(a_task())).seq == 3
