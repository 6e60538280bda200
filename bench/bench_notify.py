"""Benchmark notifications: from a task's transition to the webhook receiver's 2xx, on loopback.

    .venv/bin/python bench/bench_notify.py [--events 200]

A :class:`~mcp_server._notify.Notifier` (the one ``serve``/``up`` run, with its durable outbox
in a temporary state dir: each event's file fsynced before delivery, removed when settled) is
told of ``--events`` tasks reaching ``waiting`` at once (a burst: the latency is mostly the
queue), then of as many one at a time (the next after the previous arrived). A Hypercorn
receiver in the same process notes the monotonic time each delivery arrived. Side by side, the
reference: the same signed bodies POSTed straight with httpx (no outbox, no fsync). Printed:
median and p95 of transition → receiver, and the throughput of each.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time
from typing import Any

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from mcp_server._notify import (
    Notifier,
    NotifyConfig,
    NotifyEvent,
    Target,
    change_key,
    event_for,
    json_body,
    signed_headers,
)
from mcp_server._tasks import RunReport, Task, TaskChange, TaskOptions, utcnow
from mcp_server._tasks._model import finish_run, new_task, start_run

SECRET = "bench-only"  # noqa: S105 (signs loopback requests of this benchmark)


class Receiver:
    """An ASGI app that notes when each delivery arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.changed = trio.Event()

    async def until(self, event_ids: set[str]) -> None:
        """Wait until all of ``event_ids`` arrived."""
        while not event_ids <= self.arrived.keys():
            await self.changed.wait()
            self.changed = trio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        while (await receive()).get("more_body"):
            pass
        headers = dict(scope["headers"])
        self.arrived[headers[b"x-coding-agent-delivery"].decode()] = time.monotonic()
        self.changed.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def waiting_task(index: int) -> tuple[Task, NotifyEvent]:
    """A task that just reached ``waiting``, and the event announcing it."""
    now = utcnow()
    task = new_task(
        title=f"bench {index}",
        instructions="hello",
        agent="claude",
        project_dir="",
        cwd="/",
        options=TaskOptions(),
        now=now,
    )
    done = finish_run(start_run(task, now), RunReport("success", now, now, final_text="ok"), now)
    key = change_key(done)
    if key is None:
        raise AssertionError(done.status)
    return done, event_for(done, key, now)


def summary(name: str, latencies: list[float], total_s: float) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[max(0, round(0.95 * len(ms)) - 1)]
    return (
        f"{name:<28} median {statistics.median(ms):7.2f} ms  p95 {p95:7.2f} ms  "
        f"{len(ms) / total_s:7.1f} events/s"
    )


async def burst(notifier: Notifier, receiver: Receiver, events: int) -> tuple[list[float], float]:
    told: dict[str, float] = {}
    start = time.monotonic()
    for task, event in (waiting_task(i) for i in range(events)):
        told[event.id] = time.monotonic()
        notifier(TaskChange(task.id, "transition", task))
    await receiver.until(set(told))
    return [receiver.arrived[i] - t for i, t in told.items()], time.monotonic() - start


async def paced(notifier: Notifier, receiver: Receiver, events: int) -> tuple[list[float], float]:
    latencies = []
    start = time.monotonic()
    for task, event in (waiting_task(i) for i in range(events)):
        begun = time.monotonic()
        notifier(TaskChange(task.id, "transition", task))
        await receiver.until({event.id})
        latencies.append(receiver.arrived[event.id] - begun)
    return latencies, time.monotonic() - start


async def direct(url: str, receiver: Receiver, events: int) -> tuple[list[float], float]:
    latencies = []
    start = time.monotonic()
    async with httpx.AsyncClient() as http:
        for _, event in (waiting_task(i) for i in range(events)):
            body = json_body(event)
            headers = signed_headers(SECRET, event.type, event.id, int(time.time()), body)
            begun = time.monotonic()
            await http.post(url, content=body, headers=headers)
            latencies.append(receiver.arrived[event.id] - begun)
    return latencies, time.monotonic() - start


async def main(events: int) -> None:
    receiver = Receiver()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    stop = trio.Event()

    async def serving(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(receiver, config, shutdown_trigger=stop.wait, task_status=task_status)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        url = (await nursery.start(serving))[0] + "/hook"
        with tempfile.TemporaryDirectory() as state:
            notifier = Notifier(
                NotifyConfig(targets=(Target(url),), secret=SECRET), pathlib.Path(state)
            )
            async with trio.open_nursery() as notifying:
                await notifying.start(notifier.run, list)
                rows = [
                    ("notifier, a burst", *await burst(notifier, receiver, events)),
                    ("notifier, one at a time", *await paced(notifier, receiver, events)),
                ]
                notifying.cancel_scope.cancel()
        rows.append(("reference (bare httpx POST)", *await direct(url, receiver, events)))
        print(f"{events} events, loopback, one target")
        for name, latencies, total_s in rows:
            print(summary(name, latencies, total_s))
        stop.set()
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200)
    trio.run(main, parser.parse_args().events)
