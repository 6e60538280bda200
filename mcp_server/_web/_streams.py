"""The dashboard's live updates: Server-Sent Events the vendored htmx SSE extension swaps in.

``/events/board``: an ``event: board`` with the board's rows (for the same filter as the page)
on connect and after every change of the board. ``/tasks/<id>/events``: ``event: log`` with the
log lines after the page's last one (``id:`` is the last seq, so a reconnecting browser resumes
with ``Last-Event-ID``), and ``status``, ``facts``, ``approvals``, ``turns`` and ``actions``
events with those parts of the page when the task's status, review, turns or pending permission
requests differ from what the page shows. A
backlog longer than a page is skipped with a line that links to it, so a fast log never floods a
page. Streams end when the server drains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import trio
from jinja2 import Template
from quart import Blueprint, Response, current_app, request

from mcp_server._tasks import TASK_STATUSES, TaskNotFound

from ._base import Dashboard, current_session
from ._hub import wait_any
from ._render import LOG_PAGE, BoardFilter, log_lines, pending_mark
from ._task_pages import read_page, task_context

KEEPALIVE_S: Final = 15.0
"""A comment this often keeps proxies (a tunnel) from closing an idle stream."""
MIN_INTERVAL_S: Final = 0.1
"""Pause after a board render or a big batch of log lines: a burst becomes one message."""
FLOOD_BATCH: Final = 50
"""A log batch this big means a flood: the stream pauses ``MIN_INTERVAL_S`` before the next
(a lone event goes at once)."""
RETRY_MS: Final = 2000
KEEPALIVE: Final = b": keepalive\n\n"


def sse(event: str, data: str, event_id: int | None = None) -> bytes:
    """One SSE message; each line of ``data`` is a ``data:`` field (no field can be injected)."""
    fields = [f"event: {event}"]
    if event_id is not None:
        fields.append(f"id: {event_id}")
    fields += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\n".join(fields) + "\n\n").encode()


def _stream(body: AsyncIterator[bytes]) -> Response:
    response = Response(
        body,
        content_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    response.timeout = None  # Quart would end the stream after RESPONSE_TIMEOUT
    return response


def register(blueprint: Blueprint, dash: Dashboard) -> None:
    """Add the two event streams to the dashboard's blueprint."""

    @blueprint.get("/events/board")
    async def board_events() -> Response:
        chosen = BoardFilter.parse(request.args.get("status"), request.args.get("q"))
        rows = current_app.jinja_env.get_template("dashboard/board_rows.html")
        return _stream(_board_stream(dash, chosen, rows))

    @blueprint.get("/tasks/<task_id>/events")
    async def task_events(task_id: str) -> Response:
        await dash.runner.store.fetch(task_id)  # a task at rest: read in a worker thread
        try:
            dash.runner.get(task_id)
        except TaskNotFound:
            return Response(f"no task {task_id!r}", 404, content_type="text/plain")
        after = _resume_point(request.headers.get("Last-Event-ID"), request.args.get("after"))
        env = current_app.jinja_env
        templates = {
            name: env.get_template(f"dashboard/{name}.html")
            for name in (
                "log_lines",
                "log_gap",
                "task_status",
                "task_facts",
                "task_turns",
                "task_actions",
                "task_approvals",
            )
        }
        turns = request.args.get("turns", "")
        shown = (
            request.args.get("status", ""),
            request.args.get("review") or None,
            int(turns) if turns.isascii() and turns.isdigit() and len(turns) < 9 else -1,
            request.args.get("pending", ""),
        )
        csrf = current_session().csrf
        return _stream(
            _task_stream(dash, task_id, after=after, shown=shown, templates=templates, csrf=csrf)
        )


async def _until_changed(dash: Dashboard, changed: trio.Event) -> AsyncIterator[bytes]:
    """Wait for ``changed`` (or the drain), sending a keepalive comment every ``KEEPALIVE_S``."""
    while not (changed.is_set() or dash.hub.draining.is_set()):
        with trio.move_on_after(KEEPALIVE_S):
            await wait_any(changed, dash.hub.draining)
        if not (changed.is_set() or dash.hub.draining.is_set()):
            yield KEEPALIVE


async def _board_stream(
    dash: Dashboard, chosen: BoardFilter, rows: Template
) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    while not dash.hub.draining.is_set():
        changed = dash.hub.board_changed()
        shown = await dash.board(chosen)
        yield sse("board", await rows.render_async(board=shown, statuses=TASK_STATUSES))
        async for keepalive in _until_changed(dash, changed):
            yield keepalive
        await trio.sleep(MIN_INTERVAL_S)


async def _task_stream(
    dash: Dashboard,
    task_id: str,
    *,
    after: int,
    shown: tuple[str, str | None, int, str],
    templates: dict[str, Template],
    csrf: str,
) -> AsyncIterator[bytes]:
    """``after``: the page's last seq; ``shown``: the status, review, number of turns and
    pending requests' mark the page shows (its status, facts, approvals, turns and buttons are
    re-sent only when the task's differ)."""
    runner = dash.runner

    async def render(name: str, **context: Any) -> str:
        return await templates[name].render_async(**context)

    seen = after
    yield f"retry: {RETRY_MS}\n\n".encode()
    while not dash.hub.draining.is_set():
        try:
            changed = runner.changed(task_id)
            task = runner.get(task_id)
        except TaskNotFound:
            yield sse("status", await render("task_status", task=None))
            return
        last = runner.last_seq(task_id)
        if last - seen > LOG_PAGE:
            skipped = last - LOG_PAGE - seen
            before = seen + 1 + skipped
            gap = await render("log_gap", task_id=task_id, skipped=skipped, before=before)
            seen = last - LOG_PAGE
            yield sse("log", gap, seen)
        if last > seen:
            try:
                events = await read_page(runner, task_id, seen, last)
            except (TaskNotFound, OSError):
                if _exists(dash, task_id):
                    raise
                continue  # deleted meanwhile (clean_state): the loop says so and ends
            if events:
                seen = events[-1].seq
                yield sse("log", await render("log_lines", lines=log_lines(events)), seen)
                if len(events) >= FLOOD_BATCH:
                    await trio.sleep(MIN_INTERVAL_S)  # a flood: fewer, bigger messages
                continue
        now_shown = (task.status, task.review, len(task.turns), pending_mark(task))
        if now_shown != shown:
            shown = now_shown
            context = task_context(task, dash.now()) | {"csrf": csrf}
            for name in ("status", "facts", "approvals", "turns", "actions"):
                yield sse(name, await render(f"task_{name}", **context))
        async for keepalive in _until_changed(dash, changed):
            yield keepalive


def _exists(dash: Dashboard, task_id: str) -> bool:
    try:
        dash.runner.get(task_id)
    except TaskNotFound:
        return False
    return True


def _resume_point(last_event_id: str | None, after: str | None) -> int:
    """Where a task's stream starts: after the browser's last event, else the page's last seq."""
    for text in (last_event_id, after):
        if text is not None and text.isascii() and text.isdigit() and len(text) <= 12:
            return int(text)
    return 0
