"""``serve()``: the MCP app on Hypercorn's trio worker, with graceful drain."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
import trio
from hypercorn.trio import serve as hypercorn_serve
from quart import Blueprint, Response, request
from quart_trio import QuartTrio

from .._core import Core, Registry, ServerInfo, TrioMcpTaskGroup
from . import _connections, _h11
from ._app import McpApp
from ._asgi import Receive, Scope, Send
from ._authority import HostFence
from ._listens import ListenStreams
from ._settings import HttpSettings


def _quart_app(settings: HttpSettings, blueprints: Sequence[Blueprint] = ()) -> QuartTrio:
    """Health, RFC 9728 metadata and ``blueprints`` (the dashboard); also answers the ASGI
    lifespan Hypercorn requires."""
    app = QuartTrio("mcp_server", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["BODY_TIMEOUT"] = settings.body_timeout_s
    fence = HostFence.from_settings(settings)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', content_type="application/json")

    @app.get("/.well-known/oauth-protected-resource")
    @app.get("/.well-known/oauth-protected-resource/mcp")
    async def resource_metadata() -> Response:
        host_header = request.headers.get("host", "")
        host = fence.allowed_host(host_header)
        if host is None:
            refused = {"error": "invalid_request", "error_description": fence.refusal(host_header)}
            return Response(orjson.dumps(refused), 421, content_type="application/json")
        body: dict[str, Any] = {
            "resource": f"{fence.base_url(request.scheme, host)}/mcp",
            "bearer_methods_supported": ["header"],
            "resource_name": settings.server_name,
        }
        if settings.access_tokens is not None:
            body["authorization_servers"] = [fence.base_url(request.scheme, host)]
            body["scopes_supported"] = ["mcp"]
        return Response(orjson.dumps(body), content_type="application/json")

    return app


def shield_final_send(app: Any) -> Any:
    """Run only the final ``http.response.body`` send shielded (a quart-trio keep-alive bug).

    Without it a request's cancel lands in Hypercorn's final send and kills its idle timer: idle
    keep-alive connections then never close and hold graceful shutdown.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def shielded_send(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        await app(scope, receive, shielded_send)

    return wrapped


def build_app(
    registry: Registry, settings: HttpSettings, blueprints: Sequence[Blueprint] = ()
) -> tuple[TrioMcpTaskGroup, McpApp]:
    """The ASGI app for ``registry`` (``/mcp``) and ``blueprints`` (every other path beside
    ``/healthz`` and the metadata), and its core's task group; run ``group.run`` and ``app.run``
    beside it."""
    info = ServerInfo(settings.server_name, settings.server_version, settings.instructions)
    group = TrioMcpTaskGroup()
    listens = ListenStreams()
    core = Core(
        registry,
        info,
        secret=settings.state_secret,
        max_listen_filter=settings.max_listen_filter,
        task_group=group,
        task_listener=listens,
    )
    return group, McpApp(core, settings, _quart_app(settings, blueprints), listens)


async def serve(
    registry: Registry,
    settings: HttpSettings,
    *,
    shutdown: trio.Event,
    blueprints: Sequence[Blueprint] = (),
    on_drain: Sequence[Callable[[], None]] = (),
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``registry`` on ``/mcp`` (and ``blueprints`` beside it) until ``shutdown`` is set,
    then drain and return.

    ``on_drain`` callbacks run when draining starts: a blueprint's long-lived streams end there,
    or they would hold the graceful shutdown until its timeout. ``task_status.started(urls)``
    reports the bound base URLs (port 0 allowed). Cancelling the caller's scope exits at once.
    """
    _h11.install()
    _connections.install()
    group, app = build_app(registry, settings, blueprints)
    config = _connections.GatedConfig(
        _connections.ConnectionGate(_connections.connection_cap(settings.max_connections))
    )
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.graceful_timeout = settings.graceful_timeout_s
    config.keep_alive_timeout = 5.0
    config.backlog = _connections.LISTEN_BACKLOG
    config.accesslog = None
    config.errorlog = None

    async def trigger() -> None:
        await shutdown.wait()
        app.drain()
        for drain in on_drain:
            drain()

    async with trio.open_nursery() as nursery:
        await nursery.start(group.run)
        await nursery.start(app.run)

        async def run_http(*, task_status: trio.TaskStatus[list[str]]) -> None:
            await hypercorn_serve(
                shield_final_send(app), config, shutdown_trigger=trigger, task_status=task_status
            )
            await app.flush()
            nursery.cancel_scope.cancel()

        urls = await nursery.start(run_http)
        task_status.started(urls)
