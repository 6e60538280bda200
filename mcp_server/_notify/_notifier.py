"""The notifier: hears task changes, keeps the outbox on disk, delivers with httpx (trio).

:class:`Notifier` is a runner :class:`~mcp_server._tasks.Listener`: a change is only queued
there (the runner is never slowed), and the notifier's own task turns it into an event, writes
the event's outbox file (fsynced) and then records the task's state as announced. Start-up reads
the outbox back and derives an event for each task whose state differs from the one recorded:
a crash between the task's transition and the outbox write loses nothing (the event id is derived
from the change, so an event written already is not made twice).

Each target has a lane (a trio task in the notifier's nursery, there while it has deliveries
pending) that sends one delivery at a time, earliest due first: a failing or slow target delays
only its own lane.
"""

from __future__ import annotations

import collections
import datetime
import logging
import pathlib
import random
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import httpx
import trio

from mcp_server._tasks import Task, TaskChange, utcnow

from ._disk import NotifyDir
from ._events import NotifyEvent, change_key, event_for, json_body, ntfy_request
from ._outbox import OutboxEntry, Result, Target, after_attempt, drop_gone, new_entry, verdict
from ._settings import NotifyConfig, NotifyUrlRefused, check_notify_url
from ._signing import signed_headers

log = logging.getLogger("mcp_server.notify")

LAST_FAILURES = 10
"""How many recent failed attempts ``check_status`` shows."""


@attrs.define
class _Lane:
    wake: trio.Event = attrs.field(factory=trio.Event)


class Notifier:
    """Announces task changes to the configured targets and tasks' ``notify_url``."""

    def __init__(
        self,
        config: NotifyConfig,
        state: pathlib.Path,
        *,
        clock: Callable[[], datetime.datetime] = utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.dashboard_url: str | None = None
        """Where the dashboard is (events link to the task's page), once the server listens."""
        self._dir = NotifyDir(state)
        self._clock = clock
        self._rand = rand
        self._changes: collections.deque[Task] = collections.deque()
        self._changed = trio.Event()
        self._entries: dict[str, OutboxEntry] = {}
        self._seen: dict[str, str] = {}
        self._forgotten: set[str] = set()  # deleted tasks: dropped from the seen states
        self._lanes: dict[str, _Lane] = {}
        self._processing = trio.Lock()
        self._writing = trio.Lock()
        self._failures: collections.deque[dict[str, Any]] = collections.deque(maxlen=LAST_FAILURES)
        self._dead = 0
        self._delivered = 0
        self._nursery: trio.Nursery | None = None
        self._http: httpx.AsyncClient | None = None

    # -- the runner's listener ----------------------------------------------------------

    def __call__(self, change: TaskChange) -> None:
        """Queue a task that reached a state worth announcing (never blocks)."""
        task = change.task
        if change.kind in ("created", "transition") and task and change_key(task) is not None:
            self._changes.append(task)
            self._changed.set()
        elif change.kind == "deleted":
            self._forgotten.add(change.task_id)
            self._changed.set()

    # -- lifetime -------------------------------------------------------------------------

    async def run(
        self,
        tasks: Callable[[], Iterable[Task]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Load the outbox, derive what a crash lost from ``tasks()``, then deliver until
        cancelled (deliveries still pending stay in the outbox for the next start)."""
        loaded = await trio.to_thread.run_sync(self._dir.load)
        self._entries = {entry.event.id: entry for entry in loaded.entries}
        self._dead = loaded.dead
        current = {task.id: (task, change_key(task)) for task in tasks()}
        if loaded.seen is None:
            # First start on this state dir: what the tasks are now is no news.
            self._seen = {tid: key for tid, (_, key) in current.items() if key is not None}
            await trio.to_thread.run_sync(self._dir.save_seen, dict(self._seen))
        else:
            self._seen = loaded.seen
            missed = [
                task for task, key in current.values() if key and key != self._seen.get(task.id)
            ]
            # Ahead of what was heard meanwhile, oldest first.
            self._changes.extendleft(sorted(missed, key=lambda t: t.updated_at, reverse=True))
        timeout = httpx.Timeout(self.config.policy.timeout_s)
        async with (
            httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=False) as http,
            trio.open_nursery() as nursery,
        ):
            self._http, self._nursery = http, nursery
            try:
                for entry in self._entries.values():
                    self._wake_lanes(entry)
                await self._process()
                task_status.started()
                while True:
                    await self._changed.wait()
                    self._changed = trio.Event()
                    await self._process()
            finally:
                self._nursery = None

    async def flush(self) -> None:
        """Write the changes heard so far to the outbox (at shutdown, after the runs ended)."""
        await self._process()

    # -- events into the outbox ------------------------------------------------------------

    async def _process(self) -> None:
        async with self._processing:
            written = bool(self._forgotten & self._seen.keys())
            for task_id in self._forgotten:
                self._seen.pop(task_id, None)
            self._forgotten.clear()
            while self._changes:
                task = self._changes.popleft()
                key = change_key(task)
                if key is None or self._seen.get(task.id) == key:
                    continue
                await self._enqueue(event_for(task, key, self._clock(), self.dashboard_url), task)
                self._seen[task.id] = key
                written = True
            if written:
                try:
                    await trio.to_thread.run_sync(self._dir.save_seen, dict(self._seen))
                except OSError as exc:
                    log.warning("notify: cannot record announced states: %s", exc)

    async def _enqueue(self, event: NotifyEvent, task: Task) -> None:
        targets = self.config.targets + self._task_target(task)
        if not targets or event.id in self._entries:
            return
        entry = new_entry(event, targets)
        try:
            if await trio.to_thread.run_sync(self._dir.exists, event.id):
                return  # written before a crash; start-up loaded it
            await trio.to_thread.run_sync(self._dir.write, entry)
        except OSError as exc:
            log.warning("notify: cannot write event %s to the outbox: %s", event.id, exc)
            self._failed(entry.event, targets[0], Result(error=f"outbox write failed: {exc}"))
        self._entries[event.id] = entry
        self._wake_lanes(entry)
        log.info("notify: %s for task %s queued for %d targets", event.type, task.id, len(targets))

    def _task_target(self, task: Task) -> tuple[Target, ...]:
        url = task.options.notify_url
        if url is None:
            return ()
        try:
            return (check_notify_url(url, self.config),)
        except NotifyUrlRefused as exc:
            log.warning("notify: task %s: %s (no longer allowed; not sent)", task.id, exc)
            return ()

    # -- delivery -------------------------------------------------------------------------

    def _wake_lanes(self, entry: OutboxEntry) -> None:
        for delivery in entry.deliveries:
            if delivery.state != "pending":
                continue
            url = delivery.target.url
            lane = self._lanes.get(url)
            if lane is not None:
                lane.wake.set()
            elif self._nursery is not None:
                self._lanes[url] = lane = _Lane()
                self._nursery.start_soon(self._run_lane, url, lane)

    async def _run_lane(self, url: str, lane: _Lane) -> None:
        try:
            while True:
                lane.wake = trio.Event()  # before looking: no wake-up is missed
                due = [
                    (delivery.next_at, entry.event.at, entry.event.id)
                    for entry in self._entries.values()
                    if (delivery := entry.delivery(url)) is not None and delivery.state == "pending"
                ]
                if not due:
                    return
                next_at, _, event_id = min(due)
                wait_s = (next_at - self._clock()).total_seconds()
                if wait_s > 0:
                    with trio.move_on_after(wait_s):
                        await lane.wake.wait()
                    continue
                await self._deliver(event_id, url)
        finally:
            del self._lanes[url]

    async def _deliver(self, event_id: str, url: str) -> None:
        entry = self._entries[event_id]
        delivery = entry.delivery(url)
        if delivery is None or self._http is None:
            return
        result = await self._attempt(self._http, entry.event, delivery.target)
        now = self._clock()
        entry = self._entries[event_id]
        changed = [event_id]
        self._entries[event_id] = after_attempt(
            entry, url, result, now=now, policy=self.config.policy, rand=self._rand()
        )
        outcome = verdict(result)
        if outcome == "delivered":
            self._delivered += 1
        else:
            self._failed(entry.event, delivery.target, result, delivery.attempts + 1)
        if outcome == "gone":
            for other_id, other in self._entries.items():
                settled = drop_gone(other, url, now)
                if settled != other:
                    self._entries[other_id] = settled
                    changed.append(other_id)
        for changed_id in changed:
            await self._save(changed_id)

    async def _attempt(self, http: httpx.AsyncClient, event: NotifyEvent, target: Target) -> Result:
        if target.format == "ntfy":
            headers, body = ntfy_request(event)
        else:
            headers, body = {"Content-Type": "application/json"}, json_body(event)
        timestamp = int(self._clock().timestamp())
        headers |= signed_headers(self.config.secret, event.type, event.id, timestamp, body)
        headers["User-Agent"] = "coding-agent-notify/1"
        timeout_s = self.config.policy.timeout_s
        with trio.move_on_after(timeout_s * 2):  # httpx's limit is per phase; this one is all
            try:
                response = await http.post(target.url, content=body, headers=headers)
            except httpx.TimeoutException:
                return Result(error=f"timed out after {timeout_s:g} s")
            except httpx.HTTPError as exc:
                return Result(error=f"{type(exc).__name__}: {exc}"[:300])
            return Result(status=response.status_code)
        return Result(error=f"timed out after {timeout_s * 2:g} s")

    async def _save(self, event_id: str) -> None:
        async with self._writing:
            entry = self._entries.get(event_id)
            if entry is None:
                return
            try:
                await trio.to_thread.run_sync(self._dir.write, entry)
            except OSError as exc:
                log.warning("notify: cannot update outbox entry %s: %s", event_id, exc)
                return
            if entry.settled:
                del self._entries[event_id]
                self._dead += entry.dead

    def _failed(
        self, event: NotifyEvent, target: Target, result: Result, attempt: int | None = None
    ) -> None:
        failure = {
            "at": self._clock().isoformat(),
            "target": target.redacted(),
            "event": event.type,
            "delivery": event.id,
            "attempt": attempt,
            "error": result.describe(),
        }
        self._failures.append(failure)
        log.warning(
            "notify: delivery %s to %s failed: %s", event.id, target.redacted(), result.describe()
        )

    # -- views ----------------------------------------------------------------------------

    def status_view(self) -> dict[str, Any]:
        """``check_status``'s ``notifications``: targets (redacted), outbox, failures."""
        pending = [
            d for entry in self._entries.values() for d in entry.deliveries if d.state == "pending"
        ]
        return {
            "targets": [target.redacted() for target in self.config.targets],
            "format": self.config.default_format,
            "notify_url_allowed_hosts": sorted(self.config.allowed_hosts),
            "outbox": len(self._entries),
            "pending_deliveries": len(pending),
            "delivered": self._delivered,
            "dead_letters": self._dead,
            "dead_letters_dir": str(self._dir.dead),
            "last_failures": list(reversed(self._failures)),
        }
