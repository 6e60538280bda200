"""Huge agent lines cost bounded memory: stored once, capped, paged by bytes, streamed on load."""

from __future__ import annotations

import datetime
import gc
import pathlib
import tracemalloc
from typing import Any

import httpx
import trio
from _support.task_server import Client, up_client

from mcp_server._tasks._model import TaskEvent, TaskOptions, new_task
from mcp_server._tasks._store import LOG_SUFFIX, RECORD_SUFFIX, TaskStore, encode_event
from mcp_server._tasks._views import MAX_TEXT_CHARS

MIB = 1 << 20
READ_RSS_BOUND = 64 * MIB
"""What reading log pages of a task with 20 lines of 4 MiB may add to the server's peak RSS.

Before the fix one page read 20 events of 8 MiB each (line and text) and peaked ~0.5 GB above.
"""
RECOVERY_BOUND = 8 * MIB
"""What loading a 48 MiB log may allocate at its peak (before the fix: the whole file, and more)."""


def status_kib(pid: int, field: str) -> int:
    """A ``VmRSS``/``VmHWM``-like field of ``/proc/PID/status``, in bytes."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


async def read_text(client: Client, uri: str) -> str:
    answer = await client.rpc("resources/read", {"uri": uri})
    assert "result" in answer, answer
    text: str = answer["result"]["contents"][0]["text"]
    return text


async def test_huge_lines_read_under_an_rss_bound(tmp_path: pathlib.Path) -> None:
    """20 lines of 4 MiB: reading log pages (3 at once) stays under READ_RSS_BOUND; pages chain."""
    async with up_client(tmp_path, tmp_path / "state") as (up, client):
        created = await client.ok("create_task", title="t", instructions="huge 20 4")
        with trio.fail_after(300):
            while (await client.ok("wait_task", id=created["task_id"]))["status"] == "in_progress":
                pass
        first = f"task://{created['task_id']}/logs"
        pid = up.process.pid
        await trio.Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS now
        baseline = status_kib(pid, "VmRSS")
        readers = [Client(client.http, client.url) for _ in range(3)]
        for reader in readers:
            await reader.initialize()
        async with trio.open_nursery() as nursery:
            for reader in readers:
                nursery.start_soon(read_text, reader, first)
        grown = status_kib(pid, "VmHWM") - baseline
        assert grown < READ_RSS_BOUND, f"log reads raised peak RSS by {grown / MIB:.0f} MiB"

        seqs: list[int] = []
        uri: str | None = first
        while uri is not None:
            text = await read_text(client, uri)
            assert len(text) < MAX_TEXT_CHARS + 20_000
            page: dict[str, Any] = httpx.Response(200, content=text).json()
            seqs += [event["seq"] for event in page["events"]]
            uri = page["next"]
        assert seqs == list(range(1, len(seqs) + 1))
        assert seqs[-1] == page["last_seq"]


async def test_huge_line_stored_once_and_capped(tmp_path: pathlib.Path) -> None:
    """A 4 MiB line is stored once, cut with a marker that says how much was cut."""
    async with up_client(tmp_path, tmp_path / "state") as (_, client):
        created = await client.ok("create_task", title="t", instructions="huge 1 4")
        with trio.fail_after(300):
            while (await client.ok("wait_task", id=created["task_id"]))["status"] == "in_progress":
                pass
    log = tmp_path / "state" / "tasks" / (created["task_id"] + LOG_SUFFIX)
    assert log.stat().st_size < 512 * 1024
    assert b"more characters of" in log.read_bytes()


async def test_recovery_streams_a_big_log(tmp_path: pathlib.Path) -> None:
    """Loading a 48 MiB log allocates at most RECOVERY_BOUND at its peak (no whole-file read)."""
    store = TaskStore(tmp_path)
    await store.load()
    task_id = await _task_with_events(store)
    log = tmp_path / "tasks" / (task_id + LOG_SUFFIX)
    now = datetime.datetime.now(datetime.UTC)
    with log.open("ab") as handle:
        for seq in range(2, 50):
            event = TaskEvent(seq=seq, time=now, kind="agent", summary="big", raw="r" * MIB)
            handle.write(encode_event(event))
    assert log.stat().st_size > 48 * MIB
    assert (tmp_path / "tasks" / (task_id + RECORD_SUFFIX)).exists()
    gc.collect()
    tracemalloc.start()
    try:
        (task,) = await TaskStore(tmp_path).load()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert task.event_count == 49
    assert peak < RECOVERY_BOUND, f"recovery peaked at {peak / MIB:.0f} MiB"


async def _task_with_events(store: TaskStore) -> str:
    task = new_task(
        title="t",
        instructions="go",
        agent="claude",
        project_dir="",
        cwd="/w",
        options=TaskOptions(),
        now=datetime.datetime.now(datetime.UTC),
    )
    await store.create(task, lambda t: [{"kind": "turn", "summary": "turn 1"}])
    return task.id
