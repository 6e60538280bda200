"""MCP protocol tasks (not coding tasks): the 2025-11-25 utility and the 2026-07-28
``io.modelcontextprotocol/tasks`` extension.

A task's handler runs in the core's ``McpTaskGroup`` (owned by the server for its lifetime) under
its own cancel scope: ``tasks/cancel`` cancels that scope. The store is bounded: expired tasks are
dropped first, then the oldest terminal ones.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any, Literal

import attrs

from ._concurrency import McpCancelScope, McpEvent, McpTaskGroup
from ._errors import InternalError, InvalidParams
from ._observers import McpListener
from ._schema import clip
from ._versions import Era

McpTaskStatus = Literal["working", "input_required", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
DEFAULT_TTL_MS = 60 * 60 * 1000
POLL_INTERVAL_MS = 500


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@attrs.define(eq=False)
class McpTaskRecord:
    """One task's state; mutated only by the core."""

    task_id: str
    owner: str | None
    era: Era
    ttl_ms: int | None
    group: McpTaskGroup
    status: McpTaskStatus = "working"
    status_message: str | None = None
    created_at: float = attrs.field(factory=time.time)
    updated_at: float = attrs.field(factory=time.time)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    scope: McpCancelScope = attrs.field(
        default=attrs.Factory(lambda self: self.group.cancel_scope(), takes_self=True)
    )
    done: McpEvent = attrs.field(
        default=attrs.Factory(lambda self: self.group.event(), takes_self=True)
    )
    input_requests: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    input_answers: dict[str, Any] = attrs.field(factory=dict)
    input_arrived: McpEvent = attrs.field(
        default=attrs.Factory(lambda self: self.group.event(), takes_self=True)
    )
    on_change: McpListener[McpTaskRecord] | None = None

    @property
    def terminal(self) -> bool:
        """True once completed, failed or cancelled."""
        return self.status in TERMINAL

    def set_status(self, status: McpTaskStatus, message: str | None = None) -> None:
        """Move to ``status`` (terminal states are final) and tell the listener; the status
        message stays unless ``message`` replaces it."""
        if self.terminal:
            return
        self.status = status
        if message is not None:
            self.status_message = message
        self.updated_at = time.time()
        if status in TERMINAL:
            self.input_requests.clear()
            self.done.set()
        if self.on_change is not None:
            self.on_change(self)

    def set_message(self, message: str) -> None:
        """Replace the status message of a task still running and tell the listener."""
        if self.terminal or message == self.status_message:
            return
        self.status_message = message
        self.updated_at = time.time()
        if self.on_change is not None:
            self.on_change(self)

    def deliver(self, answers: dict[str, Any]) -> None:
        """Hand client answers to a parked handler (``tasks/update``)."""
        for key, value in answers.items():
            if key in self.input_requests:
                self.input_requests.pop(key)
                self.input_answers[key] = value
        self.input_arrived.set()
        self.input_arrived = self.group.event()
        if not self.input_requests and self.status == "input_required":
            self.set_status("working")

    def expired(self, now: float) -> bool:
        """True when a terminal task outlived its ttl."""
        return (
            self.terminal and self.ttl_ms is not None and now > self.updated_at + self.ttl_ms / 1000
        )

    def legacy_json(self) -> dict[str, Any]:
        """The 2025-11-25 ``Task`` object."""
        task: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": _iso(self.created_at),
            "lastUpdatedAt": _iso(self.updated_at),
            "ttl": self.ttl_ms,
            "pollInterval": POLL_INTERVAL_MS,
        }
        if self.status_message is not None:
            task["statusMessage"] = self.status_message
        return task

    def modern_json(self, *, inline: bool) -> dict[str, Any]:
        """The 2026-07-28 task object; ``inline`` adds the result/error/input requests."""
        task: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": _iso(self.created_at),
            "lastUpdatedAt": _iso(self.updated_at),
            "ttlMs": self.ttl_ms,
            "pollIntervalMs": POLL_INTERVAL_MS,
        }
        if self.status_message is not None:
            task["statusMessage"] = self.status_message
        if inline:
            if self.result is not None:
                task["result"] = self.result
            if self.error is not None:
                task["error"] = self.error
            if self.status == "input_required" and self.input_requests:
                task["inputRequests"] = dict(self.input_requests)
        return task


class McpTaskStore:
    """Tasks by id, bounded; visible only to their owner (a legacy session) when they have one."""

    def __init__(self, max_tasks: int = 1000) -> None:
        self._tasks: dict[str, McpTaskRecord] = {}
        self._max = max_tasks

    def create(
        self,
        owner: str | None,
        era: Era,
        ttl_ms: int | None,
        group: McpTaskGroup,
        *,
        on_change: McpListener[McpTaskRecord] | None = None,
        task_id: str | None = None,
    ) -> McpTaskRecord:
        """A new ``working`` task, run in ``group``; ``on_change`` hears its status changes.

        Its id is random unless ``task_id`` (a tool's own, unguessable id) is given; a taken
        one is refused: ids stay unique in the store.
        """
        self._evict()
        if task_id is None:
            task_id = secrets.token_urlsafe(16)
        elif task_id in self._tasks:
            raise InternalError(f"task id {clip(task_id)} is taken")
        record = McpTaskRecord(
            task_id=task_id,
            owner=owner,
            era=era,
            ttl_ms=ttl_ms,
            group=group,
            on_change=on_change,
        )
        self._tasks[record.task_id] = record
        return record

    def get(self, task_id: Any, owner: str | None) -> McpTaskRecord:
        """The task, or ``InvalidParams`` when unknown, expired or someone else's."""
        record = self._tasks.get(task_id) if type(task_id) is str else None
        if record is None or record.expired(time.time()) or record.owner != owner:
            raise InvalidParams(f"Unknown task: {clip(task_id)}")
        return record

    def discard(self, task_id: str) -> None:
        """Forget a task that was never announced."""
        self._tasks.pop(task_id, None)

    def listing(self, owner: str | None) -> list[McpTaskRecord]:
        """Every live task of ``owner``, oldest first."""
        now = time.time()
        return [t for t in self._tasks.values() if t.owner == owner and not t.expired(now)]

    def drop_owner(self, owner: str) -> None:
        """Cancel and forget the tasks of an ended session."""
        for task_id, record in list(self._tasks.items()):
            if record.owner == owner:
                record.scope.cancel()
                del self._tasks[task_id]

    def _evict(self) -> None:
        now = time.time()
        for task_id, record in list(self._tasks.items()):
            if record.expired(now):
                del self._tasks[task_id]
        if len(self._tasks) >= self._max:
            for task_id, record in list(self._tasks.items()):
                if record.terminal:
                    del self._tasks[task_id]
                    if len(self._tasks) < self._max:
                        return
            raise InvalidParams("too many tasks in flight")
