"""Method dispatch for both protocol eras, without I/O.

The transport classifies a request, builds its ``Envelope`` (``legacy_envelope`` or
``modern_envelope``) and awaits ``Core.handle``; everything a handler sends before its result
goes through the ``Peer`` the transport passes in. Rendered list pages are cached per registry
revision, so ``tools/list`` costs a dict lookup.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from . import _versions as v
from ._concurrency import McpTaskGroup
from ._context import LOG_LEVELS, Envelope, HandlerContext, NeedInput, Peer, SessionState
from ._errors import (
    InternalError,
    InvalidParams,
    InvalidRequest,
    McpError,
    MethodNotFound,
    ResourceNotFound,
    UnsupportedVersion,
)
from ._input import client_answers, input_required
from ._jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    Response,
    error_message,
    result_message,
)
from ._listen import listen_filter_schema, read_listen_filter
from ._listing import (
    LIST_TTL_MS,
    ListPages,
    prompts_list,
    resources_list,
    templates_list,
    tools_list,
)
from ._mcp_task_calls import McpTaskCalls, wants_task
from ._mcp_tasks import McpTaskRecord, McpTaskStore
from ._negotiate import (
    ServerInfo,
    capabilities,
    initialize,
    legacy_envelope,
    modern_envelope,
)
from ._observers import McpListener
from ._outcomes import (
    Accepted,
    Call,
    CancelRequest,
    DeliverResponse,
    Incoming,
    OpenListen,
    OpenSession,
    Outcome,
    Refuse,
    Reply,
)
from ._registry import JSON, Prompt, Registry, ResourceContents
from ._render import (
    contents_json,
    match_template,
    tool_result_json,
)
from ._schema import clip, kind_of, validate
from ._state import Signer

logger = logging.getLogger("mcp_server.core")

PAGE_SIZE: Final = 100


Handler = Callable[[Request, Envelope, Peer], Awaitable[JSON]]


class Core:
    """The MCP server core: dispatch, negotiation, caching, tasks."""

    def __init__(
        self,
        registry: Registry,
        info: ServerInfo,
        *,
        secret: bytes | None = None,
        page_size: int = PAGE_SIZE,
        max_tasks: int = 1000,
        max_listen_filter: int = 256,
        task_group: McpTaskGroup | None = None,
        task_listener: McpListener[McpTaskRecord] | None = None,
    ) -> None:
        self.registry = registry
        self.info = info
        self.signer = Signer(secret or secrets.token_bytes(32))
        self.tasks = McpTaskStore(max_tasks)
        self.pages = ListPages(registry, self.signer, page_size)
        self.task_calls = McpTaskCalls(
            self.tasks, self.signer, self.pages, task_group, task_listener
        )
        self._listen_schema = listen_filter_schema(max_listen_filter)
        self._legacy: dict[str, Handler] = {
            "ping": self._ping,
            "tools/list": functools.partial(tools_list, self.pages),
            "tools/call": self._tools_call,
            "resources/list": functools.partial(resources_list, self.pages),
            "resources/templates/list": functools.partial(templates_list, self.pages),
            "resources/read": self._resources_read,
            "resources/subscribe": self._subscribe,
            "resources/unsubscribe": self._unsubscribe,
            "prompts/list": functools.partial(prompts_list, self.pages),
            "prompts/get": self._prompts_get,
            "completion/complete": self._complete,
            "logging/setLevel": self._set_level,
            "tasks/get": self.task_calls.get,
            "tasks/result": self.task_calls.result,
            "tasks/list": self.task_calls.listing,
            "tasks/cancel": self.task_calls.cancel,
        }
        self._modern: dict[str, Handler] = {
            "server/discover": self._discover,
            "tools/list": functools.partial(tools_list, self.pages),
            "tools/call": self._tools_call,
            "resources/list": functools.partial(resources_list, self.pages),
            "resources/templates/list": functools.partial(templates_list, self.pages),
            "resources/read": self._resources_read,
            "prompts/list": functools.partial(prompts_list, self.pages),
            "prompts/get": self._prompts_get,
            "completion/complete": self._complete,
            "tasks/get": self.task_calls.get,
            "tasks/update": self.task_calls.update,
            "tasks/cancel": self.task_calls.cancel,
        }

    # -- lifetime -------------------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        """Items per list page (the same for every list)."""
        return self.pages.page_size

    @page_size.setter
    def page_size(self, size: int) -> None:
        self.pages.page_size = size

    # -- negotiation ----------------------------------------------------------------------------

    def initialize(self, params: JSON, session_id: str) -> tuple[SessionState, JSON]:
        """Answer a legacy ``initialize``: negotiate the version and open session state."""
        return initialize(self.info, params, session_id)

    def legacy_envelope(self, request: Request, session: SessionState) -> Envelope:
        """The context of a request on a legacy session."""
        return legacy_envelope(request, session)

    def modern_envelope(self, request: Request, headers: Sequence[tuple[str, str]]) -> Envelope:
        """Validate a 2026-07-28 request's ``_meta`` envelope and routing headers."""
        return modern_envelope(self.registry, request, headers)

    # -- the entry point ------------------------------------------------------------------------

    def receive(self, message: Message, incoming: Incoming) -> Outcome:
        """What to do with one parsed message: the only call the transport makes per message."""
        rid = message.id if isinstance(message, Request) else None
        version = incoming.protocol_version
        if version is not None and version not in v.SUPPORTED_VERSIONS:
            return Refuse(UnsupportedVersion(version, list(v.SUPPORTED_VERSIONS)), 400, rid)
        params = message.params if isinstance(message, Request | Notification) else None
        if v.classify(version, params) == "modern":
            return self._receive_modern(message, incoming)
        return self._receive_legacy(message, incoming)

    def _receive_modern(self, message: Message, incoming: Incoming) -> Outcome:
        if not isinstance(message, Request):
            return Accepted()
        listen = message.method == "subscriptions/listen"
        if not listen and message.method not in self._modern:
            return Refuse(MethodNotFound(message.method), 404, message.id)
        try:
            env = self.modern_envelope(message, incoming.mcp_headers)
            if listen:
                return self._listen(message)
        except McpError as exc:
            return Refuse(exc, exc.http_status if exc.http_status != 200 else 400, message.id)
        return Call("modern", message.id, None, functools.partial(self._answer, message, env))

    def _receive_legacy(self, message: Message, incoming: Incoming) -> Outcome:
        if isinstance(message, Request) and message.method == "initialize":
            return self._open_session(message, incoming)
        session = incoming.session
        if session is None:
            return _no_session(message, incoming)
        if isinstance(message, Notification):
            return _legacy_notification(session, message)
        if isinstance(message, Response | ErrorResponse):
            return DeliverResponse(session, message)
        if message.method not in self._legacy:
            return Refuse(MethodNotFound(message.method), 200, message.id)
        env = self.legacy_envelope(message, session)
        return Call("legacy", message.id, session, functools.partial(self._answer, message, env))

    def _open_session(self, request: Request, incoming: Incoming) -> Outcome:
        if incoming.draining:
            return Refuse(InternalError("Server is shutting down"), 503, request.id)
        try:
            state, result = self.initialize(request.params, secrets.token_urlsafe(24))
        except McpError as exc:
            return Refuse(exc, 200, request.id)
        return OpenSession(state, result_message(request.id, result))

    def _listen(self, request: Request) -> OpenListen:
        listen = read_listen_filter(self._listen_schema, request.id, request.params)
        meta = {
            v.META_SUBSCRIPTION: request.id,
            v.META_SERVER_INFO: {"name": self.info.name, "version": self.info.version},
        }
        final = result_message(request.id, {"resultType": "complete", "_meta": meta})
        return OpenListen(listen, listen.acknowledgement(), final)

    async def _answer(self, request: Request, env: Envelope, peer: Peer) -> Reply:
        """Run ``request`` to its response message (an error response when it fails)."""
        try:
            result = await self.handle(request, env, peer)
        except McpError as exc:
            error = exc
        except Exception as exc:
            found = _mcp_error_in(exc)
            if found is None:
                logger.exception("handler for %s failed", request.method)
                found = InternalError()
            error = found
        else:
            return Reply(result_message(request.id, result))
        status = error.http_status if env.era == "modern" else 200
        return Reply(error_message(request.id, error.to_json()), status)

    # -- dispatch -------------------------------------------------------------------------------

    def knows(self, era: v.Era, method: str) -> bool:
        """True when ``method`` is served in ``era``."""
        return method in (self._legacy if era == "legacy" else self._modern)

    async def handle(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        """Serve one request; raises ``McpError`` for an error response."""
        table = self._legacy if env.era == "legacy" else self._modern
        handler = table.get(request.method)
        if handler is None:
            raise MethodNotFound(request.method)
        result = await handler(request, env, peer)
        if env.era == "modern":
            result.setdefault("resultType", "complete")
            meta = result.setdefault("_meta", {})
            meta[v.META_SERVER_INFO] = {"name": self.info.name, "version": self.info.version}
        return result

    # -- methods --------------------------------------------------------------------------------

    async def _ping(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        return {}

    async def _discover(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        result: JSON = {
            "supportedVersions": list(v.SUPPORTED_VERSIONS),
            "capabilities": capabilities("modern", env.version),
            "ttlMs": LIST_TTL_MS,
            "cacheScope": "public",
        }
        if self.info.instructions:
            result["instructions"] = self.info.instructions
        return result

    async def _tools_call(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        params = request.params
        name = params.get("name")
        if type(name) is not str:
            raise InvalidParams(f"expected string, got {kind_of(name)} @ $.params.name")
        tool = self.registry.tools.get(name)
        if tool is None:
            raise InvalidParams(f"Unknown tool: {clip(name)}")
        arguments = params.get("arguments", {})
        if arguments is None:
            arguments = {}
        if type(arguments) is not dict:
            raise InvalidParams(f"expected object, got {kind_of(arguments)} @ $.params.arguments")
        as_task = wants_task(tool, params, env)
        error = validate(tool.input_schema, arguments, "$.arguments")
        if error is not None:
            return {
                "content": [{"type": "text", "text": f"Invalid arguments: {error}"}],
                "isError": True,
            }
        if as_task:
            return await self.task_calls.start(request, tool, arguments, env)
        ctx = HandlerContext(env, peer, request.id)
        if env.era == "modern":
            ctx.answers = client_answers(self.signer, request, env, name)
            try:
                result = await tool.handler(ctx, arguments)
            except NeedInput as need:
                return input_required(self.signer, request, name, ctx.answers, need)
        else:
            result = await tool.handler(ctx, arguments)
        return tool_result_json(result)

    async def _resources_read(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        uri = request.params.get("uri")
        if type(uri) is not str:
            raise InvalidParams(f"expected string, got {kind_of(uri)} @ $.params.uri")
        contents: list[ResourceContents]
        resource = self.registry.resources.get(uri)
        if resource is not None:
            contents = await resource.read(uri)
        else:
            for template in self.registry.templates.values():
                variables = match_template(template, uri)
                if variables is not None:
                    contents = await template.read(uri, variables)
                    break
            else:
                raise ResourceNotFound(uri)
        result: JSON = {"contents": [contents_json(c) for c in contents]}
        if env.era == "modern":
            result["ttlMs"] = 0
            result["cacheScope"] = "private"
        return result

    async def _subscribe(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        uri = request.params.get("uri")
        if type(uri) is not str:
            raise InvalidParams(f"expected string, got {kind_of(uri)} @ $.params.uri")
        assert env.session is not None  # noqa: S101 (legacy methods always have a session)
        env.session.subscriptions.add(uri)
        return {}

    async def _unsubscribe(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        uri = request.params.get("uri")
        if type(uri) is not str:
            raise InvalidParams(f"expected string, got {kind_of(uri)} @ $.params.uri")
        assert env.session is not None  # noqa: S101 (legacy methods always have a session)
        env.session.subscriptions.discard(uri)
        return {}

    def _prompt_call(self, request: Request) -> tuple[str, Prompt, dict[str, str]]:
        name = request.params.get("name")
        if type(name) is not str:
            raise InvalidParams(f"expected string, got {kind_of(name)} @ $.params.name")
        prompt = self.registry.prompts.get(name)
        if prompt is None:
            raise InvalidParams(f"Unknown prompt: {clip(name)}")
        arguments = request.params.get("arguments") or {}
        if type(arguments) is not dict:
            raise InvalidParams(f"expected object, got {kind_of(arguments)} @ $.params.arguments")
        for key, value in arguments.items():
            if type(value) is not str:
                raise InvalidParams(
                    f"expected string, got {kind_of(value)} @ $.params.arguments.{clip(key)}"
                )
        for arg in prompt.arguments:
            if arg.required and arg.name not in arguments:
                raise InvalidParams(f"required argument missing @ $.params.arguments.{arg.name}")
        return name, prompt, arguments

    async def _prompts_get(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        name, prompt, arguments = self._prompt_call(request)
        if prompt.render_in_context is None:
            rendered = await prompt.render(arguments)
        else:
            ctx = HandlerContext(env, peer, request.id)
            if env.era == "modern":
                ctx.answers = client_answers(self.signer, request, env, name)
                try:
                    rendered = await prompt.render_in_context(ctx, arguments)
                except NeedInput as need:
                    return input_required(self.signer, request, name, ctx.answers, need)
            else:
                rendered = await prompt.render_in_context(ctx, arguments)
        result: JSON = {"messages": rendered.messages}
        if rendered.description is not None:
            result["description"] = rendered.description
        return result

    async def _complete(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        ref = request.params.get("ref")
        argument = request.params.get("argument")
        if type(ref) is not dict:
            raise InvalidParams(f"expected object, got {kind_of(ref)} @ $.params.ref")
        if type(argument) is not dict or type(argument.get("name")) is not str:
            raise InvalidParams("expected {name, value} @ $.params.argument")
        context = request.params.get("context")
        given = context.get("arguments") if type(context) is dict else None
        others = {k: val for k, val in (given or {}).items() if type(val) is str}
        completer = None
        if ref.get("type") == "ref/prompt":
            prompt = self.registry.prompts.get(ref.get("name"))  # type: ignore[arg-type]
            if prompt is None:
                raise InvalidParams(f"Unknown prompt: {clip(ref.get('name'))}")
            completer = prompt.complete
        elif ref.get("type") == "ref/resource":
            template = self.registry.templates.get(ref.get("uri"))  # type: ignore[arg-type]
            if template is None:
                raise InvalidParams(f"Unknown resource template: {clip(ref.get('uri'))}")
            completer = template.complete
        else:
            raise InvalidParams("expected ref/prompt or ref/resource @ $.params.ref.type")
        values: list[str] = []
        if completer is not None:
            value = argument.get("value", "")
            values = await completer(argument["name"], value if type(value) is str else "", others)
        return {
            "completion": {
                "values": values[:100],
                "total": len(values),
                "hasMore": len(values) > 100,
            }
        }

    async def _set_level(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        level = request.params.get("level")
        if level not in LOG_LEVELS:
            raise InvalidParams(f"unknown log level @ $.params.level: {clip(repr(level))}")
        assert env.session is not None  # noqa: S101 (legacy methods always have a session)
        env.session.log_level = level
        return {}


def _mcp_error_in(exc: BaseException) -> McpError | None:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, McpError) else None


def _legacy_notification(session: SessionState, message: Notification) -> Outcome:
    if message.method == "notifications/initialized":
        session.initialized = True
    elif message.method == "notifications/cancelled":
        cancelled = message.params.get("requestId")
        if type(cancelled) in (str, int):
            return CancelRequest(session, cancelled)  # type: ignore[arg-type]
    return Accepted()


def _no_session(message: Message, incoming: Incoming) -> Refuse:
    rid = message.id if isinstance(message, Request) else None
    if incoming.session_id is None:
        return Refuse(InvalidRequest("Missing Mcp-Session-Id header"), 400, rid)
    return Refuse(InvalidRequest("Session not found"), 404, rid)
