"""The status message of an MCP task that follows a coding task: ``task <ID>: <status> — <event>``.

Clients show an MCP task's ``statusMessage`` (``tasks/get``, ``tasks/list``, status
notifications) where they show its id, so the message names the coding task that the tools take,
its status and its latest event, and is kept current while a tool follows the run (checked at
each progress tick, about once a second).
"""

from __future__ import annotations

import attrs

from mcp_server._core import RequestContext, clip

from ._runner import TaskRunner

SUMMARY_CHARS = 200


async def status_line(runner: TaskRunner, task_id: str) -> str:
    """The coding task's status line: its id, status and latest visible event's summary (the
    one before when the latest only repeats the status, as the ``waiting`` event of a run's end
    does)."""
    task = runner.get(task_id)
    seq = runner.last_seq(task_id)
    latest = await runner.events(task_id, max(0, seq - 2), 2) if seq else []
    news = [event.summary for event in latest if event.summary != task.status] or ["no news"]
    return f"task {task.id}: {task.status} — {clip(news[-1], SUMMARY_CHARS)}"


@attrs.define
class StatusReporter:
    """Keeps an MCP task's status message on the status line of the coding task it follows."""

    runner: TaskRunner
    task_id: str
    _shown: tuple[str, int] | None = None

    async def update(self, ctx: RequestContext) -> None:
        """Report the status line if the task's status or latest event changed since."""
        key = (self.runner.get(self.task_id).status, self.runner.last_seq(self.task_id))
        if key != self._shown:
            self._shown = key
            ctx.report_status(await status_line(self.runner, self.task_id))
