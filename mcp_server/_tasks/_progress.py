"""Progress of a task while a client waits on it (``wait_task`` with a progress token).

A waiting client otherwise hears nothing for up to 50 s: with ``notifications/progress`` on each
new event or status change it can show what the agent does and reset its idle timeout. The
core sends them where the request's answer goes (the legacy request's SSE stream, or the
2026-07-28 POST's SSE response).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio

from mcp_server._core import RequestContext, clip

from ._errors import TaskNotFound
from ._runner import TaskRunner

MAX_PROGRESS_MESSAGE_CHARS = 500
"""Cap on one progress message (an event summary can quote a long agent text)."""


async def latest_summary(runner: TaskRunner, task_id: str, seq: int) -> str | None:
    """The summary of the task's event ``seq`` (its latest visible one); None before any."""
    if seq <= 0:
        return None
    try:
        events = await runner.events(task_id, seq - 1, 1)
    except FileNotFoundError:
        return None  # its log was deleted meanwhile (clean_state)
    return events[0].summary if events else None


async def report_progress(ctx: RequestContext, runner: TaskRunner, task_id: str) -> None:
    """Send progress now and on each new event or status change, until cancelled or the task is
    deleted: ``progress`` is the latest event's seq (one more than the last sent when only the
    status changed: it never repeats nor goes back), ``message`` ``<status>: <latest summary>``.
    Changes that come while one is being sent are coalesced into the next."""
    sent: tuple[int, str] | None = None
    progress = 0.0
    try:
        while True:
            changed = runner.changed(task_id)  # before reading: no missed wake-up
            status = runner.get(task_id).status
            seq = runner.last_seq(task_id)
            if (seq, status) != sent:
                summary = await latest_summary(runner, task_id, seq)
                progress = max(float(seq), progress + 1)
                message = status if summary is None else f"{status}: {summary}"
                await ctx.progress(progress, None, clip(message, MAX_PROGRESS_MESSAGE_CHARS))
                sent = (seq, status)
            await changed.wait()
    except TaskNotFound:
        return  # deleted meanwhile (clean_state): the wait answers that


@contextlib.asynccontextmanager
async def progress_while(
    ctx: RequestContext, runner: TaskRunner, task_id: str
) -> AsyncIterator[None]:
    """Report the task's progress (:func:`report_progress`) while the block runs, when the
    client asked for progress; the block's own error comes out as it would without it."""
    if not ctx.wants_progress:
        yield
        return
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(report_progress, ctx, runner, task_id)
            yield
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            # The block's one error (an unknown task, a 2026-07-28 "input required"), not a group.
            raise group.exceptions[0] from None
        raise
