"""The dashboard blueprint: its fence (every request), login and logout, the board, the status
panel; the task pages and the live streams register their routes on it from their modules.

Everything shown is read from the same :class:`~mcp_server._tasks.TaskRunner` the MCP tools
use, at the moment of the request: the dashboard keeps no copy of task state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from quart import Blueprint, Response, g, request

from mcp_server._http import HttpSettings
from mcp_server._tasks import TASK_STATUSES, TaskTools

from . import _oauth_pages, _streams, _task_pages
from ._base import Dashboard, page, refused, see_other
from ._guard import SECURITY_HEADERS, Refusal, WebGuard, local_path
from ._hub import BoardHub
from ._render import BoardFilter
from ._settings import DashboardSettings

if TYPE_CHECKING:
    from mcp_server._oauth import OAuthService

PUBLIC_ENDPOINTS = frozenset({"dashboard.login", "dashboard.login_post", "dashboard.static"})
"""Endpoints a browser reaches before logging in."""
STREAM_ENDPOINTS = frozenset({"dashboard.board_events", "dashboard.task_events"})
"""Event streams: refused with 401 when not logged in (a redirect would be retried forever)."""


def dashboard_blueprint(
    tools: TaskTools,
    hub: BoardHub,
    http: HttpSettings,
    settings: DashboardSettings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    oauth: OAuthService | None = None,
) -> Blueprint:
    """The dashboard at ``/`` over ``tools``' runner; ``hub`` must be one of the runner's
    listeners, and ``serve()`` must call ``hub.drain`` when it drains. Logins use
    ``http.auth_token`` and the same Host/Origin fence as ``/mcp``. With ``oauth``, ``/clients``
    lists the built-in authorization server's granted clients, with Revoke."""
    guard = WebGuard.build(http, settings or DashboardSettings(), clock)
    dash = Dashboard(tools=tools, hub=hub, guard=guard)
    blueprint = Blueprint(
        "dashboard",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    _register_fence(blueprint, dash)
    _register_login(blueprint, dash)
    _register_board(blueprint, dash)
    _task_pages.register(blueprint, dash)
    _streams.register(blueprint, dash)
    if oauth is not None:
        _oauth_pages.register(blueprint, oauth)

    @blueprint.context_processor
    async def navigation() -> dict[str, bool]:
        return {"oauth_clients": oauth is not None}

    return blueprint


def _register_fence(blueprint: Blueprint, dash: Dashboard) -> None:
    guard = dash.guard

    @blueprint.before_request
    async def fence() -> Response | None:
        try:
            guard.check_host(request.headers.get("host", ""))
            if request.method not in ("GET", "HEAD"):
                guard.check_origin(
                    request.headers.get("origin"),
                    request.headers.get("sec-fetch-site"),
                    request.scheme,
                    request.headers.get("host", ""),
                )
            session = guard.session(request.cookies.get(guard.settings.cookie_name))
            g.dashboard_session = session
            if request.endpoint in PUBLIC_ENDPOINTS:
                return None
            if session is None:
                if request.method == "GET" and request.endpoint not in STREAM_ENDPOINTS:
                    target = request.full_path.rstrip("?")
                    return see_other("/login?next=" + quote(target, safe="/"))
                return await refused(Refusal(401, "not logged in: log in at /login first"))
            if request.method not in ("GET", "HEAD"):
                form = await request.form
                guard.check_csrf(session, form.get("csrf") or request.headers.get("X-CSRF-Token"))
        except Refusal as refusal:
            return await refused(refusal)
        return None

    @blueprint.after_app_request
    async def headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response


def _register_login(blueprint: Blueprint, dash: Dashboard) -> None:
    guard = dash.guard
    cookie = guard.settings.cookie_name

    @blueprint.get("/login")
    async def login() -> Response:
        return await page("login.html", next=local_path(request.args.get("next")))

    @blueprint.post("/login")
    async def login_post() -> Response:
        form = await request.form
        target = local_path(form.get("next"))
        try:
            session_id, _ = guard.log_in(request.remote_addr or "", form.get("token", ""))
        except Refusal as refusal:
            response = await page("login.html", refusal.status, next=target, error=refusal.message)
            response.headers.update(refusal.headers)
            return response
        guard.log_out(request.cookies.get(cookie))
        response = see_other(target)
        response.set_cookie(
            cookie,
            session_id,
            httponly=True,
            samesite="Strict",
            path="/",
            secure=guard.secure(request.scheme, request.headers.get("host", "")),
        )
        return response

    @blueprint.post("/logout")
    async def logout() -> Response:
        guard.log_out(request.cookies.get(cookie))
        response = see_other("/login")
        response.delete_cookie(cookie, path="/", httponly=True, samesite="Strict")
        return response


def _register_board(blueprint: Blueprint, dash: Dashboard) -> None:
    @blueprint.get("/")
    async def board_page() -> Response:
        chosen = BoardFilter.parse(request.args.get("status"), request.args.get("q"))
        return await page(
            "board.html",
            board=await dash.board(chosen),
            chosen=chosen,
            statuses=TASK_STATUSES,
        )

    @blueprint.get("/status")
    async def status_page() -> Response:
        status = await dash.resources.status_view()
        return await page("status.html", status=status)
