"""The status message of an MCP task that follows a coding task: ``task <ID>: <status> — <event>``.

Clients show an MCP task's ``statusMessage`` (``tasks/get``, ``tasks/list``, status
notifications) where they show its id, so the message names the coding task that the tools take,
its status and its latest event, and is kept current while a tool follows the run.
"""

from __future__ import annotations

from typing import NoReturn

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


async def keep_status(ctx: RequestContext, runner: TaskRunner, task_id: str) -> NoReturn:
    """Report the status line as the MCP task's status message at each change of the coding
    task, until cancelled."""
    while True:
        changed = runner.changed(task_id)  # before reading: no missed change
        ctx.report_status(await status_line(runner, task_id))
        await changed.wait()
