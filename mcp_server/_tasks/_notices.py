"""Announcing coding-task changes to MCP clients: the runner's listener.

A change updates the registry: a created task is listed as a resource (read through the
``task://{id}`` template), a deleted one unlisted, and subscribers of the task's resources (and
of the task list, unless only output grew) are told they changed. A change with a notice (a
permission request waits for a person) is also a ``notifications/message`` at level warning, to
clients that log or subscribed to the task.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from mcp_server._core import Registry, Resource, ResourceContents

from ._model import Task
from ._runner import TaskChange

TASK_TEMPLATE = "task://{id}"


@attrs.frozen
class TaskNotices:
    """Turns the runner's :class:`TaskChange` events into the registry's announcements."""

    registry: Registry

    def __call__(self, change: TaskChange) -> None:
        """Announce a task's change to subscribers (the runner rate-limits output)."""
        uri = f"task://{change.task_id}"
        if change.kind == "created":
            if change.task is not None:
                self.registry.add_resource(self._resource(change.task))
        elif change.kind == "deleted":
            self.registry.remove_resource(uri)
        self.registry.resource_updated(uri)
        self.registry.resource_updated(f"{uri}/logs")
        if change.kind != "output":
            self.registry.resource_updated(f"{uri}/result")
            self.registry.resource_updated("agent://tasks")
        if change.notice is not None:
            data = {"task_id": change.task_id, "message": change.notice, "resource": uri}
            if change.task is not None:
                data["status"] = change.task.status
            self.registry.log_message("warning", data, logger="coding-agent", about=uri)

    def list_tasks(self, tasks: Iterable[Task]) -> None:
        """List the tasks that exist already (at startup) as resources."""
        for task in tasks:
            self.registry.add_resource(self._resource(task))

    def _resource(self, task: Task) -> Resource:
        return Resource(
            uri=f"task://{task.id}",
            name=f"task-{task.id}",
            title=task.title,
            description=f"Task {task.title!r}: status, turns and the last run's report.",
            mime_type="application/json",
            read=self._read,
        )

    async def _read(self, uri: str) -> list[ResourceContents]:
        template = self.registry.templates[TASK_TEMPLATE]
        return await template.read(uri, {"id": uri.removeprefix("task://")})
