"""What the dashboard's routes share: the :class:`Dashboard` (runner, hub, guard), the request's
login, and how a page or a refusal is answered."""

from __future__ import annotations

import datetime
from typing import Any

import attrs
from quart import Response, g, render_template, request

from mcp_server._tasks import TaskResources, TaskRunner, TaskTools, task_page

from ._guard import Refusal, WebGuard
from ._hub import BoardHub
from ._render import Board, BoardFilter, board
from ._sessions import LoginSession

HTMX_CONFIG = '{"includeIndicatorStyles": false, "allowEval": false, "allowScriptTags": false}'
"""htmx settings (a meta tag): no inline styles or eval, which the CSP forbids anyway."""


@attrs.frozen(eq=False)
class Dashboard:
    """What the dashboard's routes share: the runner (through the MCP tools' handlers), the hub
    that wakes its streams, and the guard."""

    tools: TaskTools
    hub: BoardHub
    guard: WebGuard

    @property
    def runner(self) -> TaskRunner:
        return self.tools.runner

    @property
    def resources(self) -> TaskResources:
        return self.tools.resources

    async def board(self, chosen: BoardFilter) -> Board:
        """The board for ``chosen``, from the index (only the rows shown are read)."""
        store = self.runner.store
        listing, shown = await task_page(store, chosen.task_query())
        total = await store.index.call(lambda db: db.count())
        return board(
            shown,
            self.now(),
            total=total,
            matching=listing.matching,
            active=self.runner.active_tasks(),
        )

    def now(self) -> datetime.datetime:
        return self.runner.clock.wall()


def current_session() -> LoginSession:
    """The request's login (the fence let the request in, so there is one)."""
    session: LoginSession = g.dashboard_session
    return session


def notify(kind: str, text: str) -> None:
    """Show ``text`` once on the next page of this login (``ok`` or ``error``)."""
    current_session().notice = (kind, text)


async def page(template: str, code: int = 200, **context: Any) -> Response:
    """A full page: ``template`` with the login's CSRF token and pending notice (shown once)."""
    session: LoginSession | None = getattr(g, "dashboard_session", None)
    notice = None
    if session is not None and not wants_fragment():
        notice, session.notice = session.notice, None
    body = await render_template(
        f"dashboard/{template}",
        csrf=session.csrf if session else "",
        logged_in=session is not None,
        notice=notice,
        htmx_config=HTMX_CONFIG,
        **context,
    )
    return Response(body, code, content_type="text/html; charset=utf-8")


def see_other(location: str) -> Response:
    """A ``303 See Other`` to a path of this server (after a form, or to the login page)."""
    return Response("", 303, headers={"Location": location}, content_type="text/plain")


def wants_fragment() -> bool:
    """Whether htmx asked (it swaps a fragment in) rather than the browser (a whole page)."""
    return request.headers.get("HX-Request") == "true"


async def refused(refusal: Refusal) -> Response:
    """The refusal as a page (a fragment's caller gets the same page)."""
    response = await page("refused.html", refusal.status, message=refusal.message)
    for name, value in refusal.headers.items():
        response.headers[name] = value
    return response
