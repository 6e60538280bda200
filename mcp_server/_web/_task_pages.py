"""A task's pages: the task (pending permission requests, turns, report, actions, the last page
of its log), older log pages, its diff; and the actions that steer it: approve (allow, allow for
the task, deny), interrupt, follow-up, end, merge, discard.

Actions go through the same runner (and review) the MCP tools use, with the tools' own argument
checks; each answers with a redirect to the task page, which shows what happened once.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any, Literal, get_args
from urllib.parse import quote

from quart import Blueprint, Response, request

from host_daemon import MergeStrategy
from mcp_server._tasks import (
    TOOLS,
    Task,
    TaskError,
    TaskEvent,
    TaskNotFound,
    TaskRunner,
    parse_args,
)

from ._base import Dashboard, notify, page, see_other, wants_fragment
from ._render import (
    LOG_PAGE,
    TEXT_CHARS,
    cut,
    log_lines,
    page_start,
    parse_diff,
    pending_mark,
    pending_rows,
)

MERGE_STRATEGIES: tuple[str, ...] = get_args(MergeStrategy)
_ARGUMENTS = {spec.name: spec.arguments for spec in TOOLS}
DECIDER = "dashboard"
"""Who decided, as the task's log and the daemon record a decision made on these pages."""
CHOICES: dict[str, tuple[Literal["allow", "deny"], Literal["once", "task"]]] = {
    "allow": ("allow", "once"),
    "allow_task": ("allow", "task"),
    "deny": ("deny", "once"),
}
"""The approval buttons: decision and what is remembered."""


def can_follow_up(task: Task) -> bool:
    """Whether the page offers a follow-up (the runner decides; this only hides dead forms)."""
    return task.status != "completed" and task.review is None


def can_end(task: Task) -> bool:
    return task.status != "completed"


def can_merge(task: Task) -> bool:
    return task.has_open_worktree and not task.running


def can_discard(task: Task) -> bool:
    return task.has_open_worktree


def can_interrupt(task: Task) -> bool:
    """A run is in flight (the runner refuses otherwise; this only hides a dead button)."""
    return task.running


def task_context(task: Task, now: datetime.datetime) -> dict[str, Any]:
    """What the task's header, facts, approvals, turns and action fragments show."""
    return {
        "task": task,
        "pending": pending_rows(task, now),
        "pending_mark": pending_mark(task),
        "can_interrupt": can_interrupt(task),
        "turns": [cut(turn.instructions, TEXT_CHARS) for turn in task.turns],
        "final_text": cut(task.report.final_text if task.report else None, TEXT_CHARS),
        "can_follow_up": can_follow_up(task),
        "can_end": can_end(task),
        "can_merge": can_merge(task),
        "can_discard": can_discard(task),
        "strategies": MERGE_STRATEGIES,
    }


async def read_page(runner: TaskRunner, task_id: str, after: int, end: int) -> list[TaskEvent]:
    """The task's events with ``after < seq <= end`` (at most ``LOG_PAGE``), read in as many
    bounded reads as the store's read budget needs."""
    end = min(end, after + LOG_PAGE)
    events: list[TaskEvent] = []
    while after < end:
        batch = await runner.events(task_id, after, end - after)
        if not batch:
            break
        events += [event for event in batch if event.seq <= end]
        after = batch[-1].seq
    return events


async def not_found(task_id: str) -> Response:
    return await page(
        "refused.html", 404, message=f"no task {task_id!r}: it never existed or was deleted"
    )


def register(blueprint: Blueprint, dash: Dashboard) -> None:
    """Add the task pages and actions to the dashboard's blueprint."""
    _register_pages(blueprint, dash)
    _register_actions(blueprint, dash)


def _register_pages(blueprint: Blueprint, dash: Dashboard) -> None:
    runner = dash.runner

    @blueprint.get("/tasks/<task_id>")
    async def task_page(task_id: str) -> Response:
        await runner.store.fetch(task_id)  # a task at rest: read in a worker thread
        try:
            task = runner.get(task_id)
        except TaskNotFound:
            return await not_found(task_id)
        last = runner.last_seq(task_id)
        after = page_start(last)
        events = await read_page(runner, task_id, after, last)
        return await page(
            "task.html",
            lines=log_lines(events),
            first_seq=after + 1,
            last_seq=last,
            **task_context(task, dash.now()),
        )

    @blueprint.get("/tasks/<task_id>/log")
    async def log_page(task_id: str) -> Response:
        await runner.store.fetch(task_id)
        try:
            runner.get(task_id)
        except TaskNotFound:
            return await not_found(task_id)
        before_text = request.args.get("before", "")
        if not (before_text.isascii() and before_text.isdigit()) or len(before_text) > 12:
            return await page(
                "refused.html",
                400,
                message=f"expected a sequence number in 'before', got {before_text[:40]!r}",
            )
        before = int(before_text)
        after = page_start(runner.last_seq(task_id), before)
        lines = log_lines(await read_page(runner, task_id, after, before - 1))
        template = "log_older.html" if wants_fragment() else "log_page.html"
        return await page(
            template, task_id=task_id, lines=lines, first_seq=after + 1, before=before
        )

    @blueprint.get("/tasks/<task_id>/diff")
    async def diff_page(task_id: str) -> Response:
        await runner.store.fetch(task_id)  # a task at rest: read in a worker thread
        try:
            task = runner.get(task_id)
        except TaskNotFound:
            return await not_found(task_id)
        error = None
        diff = None
        try:
            done = await dash.tools.review.diff(task_id)
        except TaskError as exc:
            error = str(exc)
        else:
            diff = parse_diff(done.diff)
        template = "diff.html" if wants_fragment() else "diff_page.html"
        return await page(template, task=task, diff=diff, error=error)


def _register_actions(blueprint: Blueprint, dash: Dashboard) -> None:
    runner = dash.runner

    async def act(task_id: str, action: Callable[[], Awaitable[str]], failed: str) -> Response:
        """Run an action; its result (or why it failed) is shown once on the task page."""
        try:
            notify("ok", await action())
        except TaskNotFound:
            return await not_found(task_id)
        except TaskError as exc:
            notify("error", f"{failed}: {exc}")
        return see_other("/tasks/" + quote(task_id, safe=""))

    @blueprint.post("/tasks/<task_id>/approve")
    async def approve(task_id: str) -> Response:
        form = await request.form

        async def decide() -> str:
            choice = form.get("decision", "")
            if choice not in CHOICES:
                raise TaskError(
                    f"expected decision {', '.join(CHOICES)}, got {choice[:40]!r} @ decision"
                )
            behavior, remember = CHOICES[choice]
            message = form.get("message", "").strip() if behavior == "deny" else ""
            arguments = {
                "id": task_id,
                "request_id": form.get("request_id", ""),
                "decision": behavior,
                "remember": remember,
            }
            args = parse_args(
                _ARGUMENTS["approve"], arguments | ({"message": message} if message else {})
            )
            asked = runner.get(task_id).pending_request(args.request_id)
            task = await runner.live.approve(
                task_id,
                args.request_id,
                args.decision,
                message=args.message,
                remember=args.remember,
                decider=DECIDER,
            )
            what = f"{asked.tool_name} request" if asked else "request"
            done = "allowed" if behavior == "allow" else "denied"
            extra = " for the rest of the task" if remember == "task" else ""
            sent = (
                ""
                if task.pending_request(args.request_id) is None
                else (" (sent; the agent has not confirmed it yet)")
            )
            return f"{what} {done}{extra}{sent}; the task is {task.status}"

        return await act(task_id, decide, "decision refused")

    @blueprint.post("/tasks/<task_id>/interrupt")
    async def interrupt(task_id: str) -> Response:
        async def stop() -> str:
            task = await runner.live.interrupt(task_id)
            return f"turn interrupted: the task is {task.status} (a follow-up goes on from here)"

        return await act(task_id, stop, "interrupt refused")

    @blueprint.post("/tasks/<task_id>/follow-up")
    async def follow_up(task_id: str) -> Response:
        form = await request.form

        async def send() -> str:
            args = parse_args(
                _ARGUMENTS["update_task"],
                {"id": task_id, "instructions": form.get("instructions", "")},
            )
            await runner.follow_up(task_id, args.instructions)
            return "follow-up sent: the agent is working"

        return await act(task_id, send, "follow-up refused")

    @blueprint.post("/tasks/<task_id>/end")
    async def end(task_id: str) -> Response:
        async def close() -> str:
            task = await runner.end(task_id)
            return f"task ended: it is {task.status}"

        return await act(task_id, close, "end refused")

    @blueprint.post("/tasks/<task_id>/merge")
    async def merge(task_id: str) -> Response:
        form = await request.form

        async def land() -> str:
            args = parse_args(
                _ARGUMENTS["merge_task"],
                {"id": task_id, "strategy": form.get("strategy", "merge")},
            )
            task, done = await dash.tools.review.merge(task_id, args.strategy, None)
            return (
                f"merged into {done.base_branch} at {done.commit[:12]} ({done.strategy}); "
                f"the task is {task.status}"
            )

        return await act(task_id, land, "merge refused")

    @blueprint.post("/tasks/<task_id>/discard")
    async def discard(task_id: str) -> Response:
        async def drop() -> str:
            task, _ = await dash.tools.review.discard(task_id)
            return f"worktree and branch discarded; the task is {task.status}"

        return await act(task_id, drop, "discard refused")
