"""Method dispatch for both protocol eras, without I/O.

The transport classifies a request, builds its ``Envelope`` (``legacy_envelope`` or
``modern_envelope``) and awaits ``Core.handle``; everything a handler sends before its result
goes through the ``Peer`` the transport passes in. Rendered list pages are cached per registry
revision, so ``tools/list`` costs a dict lookup.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import attrs
import trio

from . import _versions as v
from ._errors import (
    HeaderMismatch,
    InvalidParams,
    McpError,
    MethodNotFound,
    MissingCapability,
    ResourceNotFound,
    UnsupportedVersion,
)
from ._jsonrpc import Request, RequestId
from ._mcp_tasks import DEFAULT_TTL_MS, McpTaskRecord, McpTaskStore
from ._registry import (
    JSON,
    BlobContents,
    ListKind,
    LogLevel,
    Prompt,
    Registry,
    ResourceContents,
    ResourceTemplate,
    Tool,
    ToolResult,
)
from ._schema import clip, validate
from ._state import Signer, open_state, sign_state

logger = logging.getLogger("mcp_server.core")

LOG_LEVELS: Final[dict[str, int]] = {
    name: rank
    for rank, name in enumerate(
        ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
    )
}
PAGE_SIZE: Final = 100
LIST_TTL_MS: Final = 60_000


class Peer(Protocol):
    """What the transport offers one request: related messages on its response stream."""

    async def notify(self, method: str, params: JSON) -> None:
        """Send a notification related to the request."""

    async def request(self, method: str, params: JSON) -> JSON:
        """Send a server→client request and await its result (legacy sessions only)."""

    def close_stream(self) -> None:
        """End the request's SSE response early; the client resumes it with GET."""


@attrs.frozen
class ServerInfo:
    """Who we are, as told in ``initialize`` and ``server/discover``."""

    name: str
    version: str
    instructions: str | None = None


@attrs.define(eq=False)
class SessionState:
    """A legacy session's protocol state; the transport owns its streams."""

    session_id: str
    version: str
    client_capabilities: JSON
    client_info: JSON
    log_level: LogLevel | None = None
    subscriptions: set[str] = attrs.field(factory=set)
    initialized: bool = False
    peer: Peer | None = None
    """The standalone (GET) stream: task notifications and requests made outside a request."""


@attrs.frozen
class Envelope:
    """One request's protocol context."""

    era: v.Era
    version: str
    client_capabilities: JSON
    log_level: LogLevel | None
    progress_token: str | int | None
    session: SessionState | None = None
    input_responses: JSON | None = None
    request_state: Any = None


class _NeedInput(Exception):
    """A modern-leg handler needs client input: the call ends with ``input_required``."""

    def __init__(self, requests: dict[str, JSON]) -> None:
        super().__init__("input required")
        self.requests = requests


_DEFAULT_KEYS: Final = {
    "elicitation/create": "elicit",
    "sampling/createMessage": "sample",
    "roots/list": "roots",
}
_CAPABILITY_OF: Final = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}


PRE_TASK_WINDOW_S: Final = 0.05
"""How long a 2026-07-28 task call waits for ``ask(..., before_task=True)`` (a timing rule).

The call answers as soon as the handler decides: it asks ``before_task`` input (missing answers
end the call ``input_required``, no task is created), or it reports progress, logs, asks
ordinary input or returns (the task is announced). A handler that does none of these within
the window gets its task announced at the window's end; a ``before_task`` ask after that is
treated as ordinary input asked by the running task. So a handler that needs input before its
task must ask it first, before any slow work. Waiting without a bound instead would hold every
silent long-running call until it finished, which is what a task exists to avoid.
"""


@attrs.define(eq=False)
class _PreTask:
    """A 2026-07-28 task call not yet answered: its handler may still ask for pre-task input."""

    decided: trio.Event = attrs.field(factory=trio.Event)
    need: dict[str, JSON] | None = None


@attrs.define(eq=False)
class _Context:
    """The ``RequestContext`` a handler sees."""

    core: Core
    env: Envelope
    peer: Peer
    rid: RequestId
    task: McpTaskRecord | None = None
    answers: dict[str, Any] = attrs.field(factory=dict)
    pre_task: _PreTask | None = None
    _counter: int = 0
    _last_progress: float | None = None

    @property
    def request_id(self) -> str | int:
        return self.rid

    @property
    def as_task(self) -> bool:
        return self.task is not None

    @property
    def client_capabilities(self) -> JSON:
        return self.env.client_capabilities

    def close_sse_stream(self) -> None:
        if self.env.era == "legacy" and self.task is None:
            self.peer.close_stream()

    def commit(self) -> None:
        """The handler is past its pre-task input: the 2026-07-28 task can be announced."""
        if self.pre_task is not None:
            self.pre_task.decided.set()
            self.pre_task = None

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        self.commit()
        if self.env.progress_token is None:
            return
        if self._last_progress is not None and progress < self._last_progress:
            progress = self._last_progress
        self._last_progress = progress
        params: JSON = {"progressToken": self.env.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.peer.notify("notifications/progress", params)

    async def log(self, level: LogLevel, data: Any, logger: str | None = None) -> None:
        self.commit()
        threshold = self.env.session.log_level if self.env.session else self.env.log_level
        if self.env.era == "modern" and threshold is None:
            return
        if threshold is not None and LOG_LEVELS[level] < LOG_LEVELS[threshold]:
            return
        params: JSON = {"level": level, "data": data}
        if logger is not None:
            params["logger"] = logger
        await self.peer.notify("notifications/message", params)

    async def elicit(self, message: str, requested_schema: JSON, *, key: str | None = None) -> JSON:
        params = {"message": message, "requestedSchema": requested_schema}
        return await self._one("elicitation/create", params, key)

    async def sample(self, params: JSON, *, key: str | None = None) -> JSON:
        return await self._one("sampling/createMessage", params, key)

    async def list_roots(self, *, key: str | None = None) -> JSON:
        return await self._one("roots/list", {}, key)

    async def _one(self, method: str, params: JSON, key: str | None) -> JSON:
        if key is None:
            key = f"{_DEFAULT_KEYS[method]}-{self._counter}"
            self._counter += 1
        return (await self.ask({key: (method, params)}))[key]

    async def ask(
        self, requests: Mapping[str, tuple[str, JSON]], *, before_task: bool = False
    ) -> dict[str, JSON]:
        self._check_capabilities(requests)
        pre = self.pre_task
        if pre is not None and before_task:
            missing = {
                key: {"method": method, "params": params}
                for key, (method, params) in requests.items()
                if key not in self.answers
            }
            if missing:
                pre.need = missing
                pre.decided.set()
                await trio.sleep_forever()
            return {key: self.answers[key] for key in requests}
        self.commit()
        if self.task is not None and self.env.era == "modern":
            return await self._ask_parked(requests)
        if self.env.era == "modern":
            missing = {
                key: {"method": method, "params": params}
                for key, (method, params) in requests.items()
                if key not in self.answers
            }
            if missing:
                raise _NeedInput(missing)
            return {key: self.answers[key] for key in requests}
        peer = self.peer
        if self.task is not None and self.env.session is not None:
            peer = self.env.session.peer or self.peer
            self.task.set_status("input_required")
        results: dict[str, JSON] = {}
        for key, (method, params) in requests.items():
            results[key] = await peer.request(method, params)
        if self.task is not None:
            self.task.set_status("working")
        return results

    async def _ask_parked(self, requests: Mapping[str, tuple[str, JSON]]) -> dict[str, JSON]:
        task = self.task
        assert task is not None  # noqa: S101 (only called for tasks)
        for key, (method, params) in requests.items():
            if key not in task.input_answers:
                task.input_requests[key] = {"method": method, "params": params}
        if task.input_requests:
            task.set_status("input_required")
        while any(key not in task.input_answers for key in requests):
            await task.input_arrived.wait()
        return {key: task.input_answers.pop(key) for key in requests}

    def _check_capabilities(self, requests: Mapping[str, tuple[str, JSON]]) -> None:
        caps = self.env.client_capabilities
        for method, _ in requests.values():
            capability = _CAPABILITY_OF.get(method)
            if capability is not None and not isinstance(caps.get(capability), dict):
                raise MissingCapability(f"Client does not support {method}", {capability: {}})


Handler = Callable[["Core", Request, Envelope, Peer], Awaitable[JSON]]


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
    ) -> None:
        self.registry = registry
        self.info = info
        self.signer = Signer(secret or secrets.token_bytes(32))
        self.tasks = McpTaskStore(max_tasks)
        self.page_size = page_size
        self._nursery: trio.Nursery | None = None
        self.task_listeners: list[Callable[[McpTaskRecord], None]] = []
        self._pages: dict[tuple[str, str, Any], tuple[int, JSON]] = {}
        self._legacy: dict[str, Handler] = {
            "ping": Core._ping,
            "tools/list": Core._tools_list,
            "tools/call": Core._tools_call,
            "resources/list": Core._resources_list,
            "resources/templates/list": Core._templates_list,
            "resources/read": Core._resources_read,
            "resources/subscribe": Core._subscribe,
            "resources/unsubscribe": Core._unsubscribe,
            "prompts/list": Core._prompts_list,
            "prompts/get": Core._prompts_get,
            "completion/complete": Core._complete,
            "logging/setLevel": Core._set_level,
            "tasks/get": Core._tasks_get,
            "tasks/result": Core._tasks_result,
            "tasks/list": Core._tasks_list,
            "tasks/cancel": Core._tasks_cancel,
        }
        self._modern: dict[str, Handler] = {
            "server/discover": Core._discover,
            "tools/list": Core._tools_list,
            "tools/call": Core._tools_call,
            "resources/list": Core._resources_list,
            "resources/templates/list": Core._templates_list,
            "resources/read": Core._resources_read,
            "prompts/list": Core._prompts_list,
            "prompts/get": Core._prompts_get,
            "completion/complete": Core._complete,
            "tasks/get": Core._tasks_get,
            "tasks/update": Core._tasks_update,
            "tasks/cancel": Core._tasks_cancel,
        }

    # -- lifetime -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery that task handlers run in, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    # -- capabilities and negotiation -----------------------------------------------------------

    def capabilities(self, era: v.Era, version: str) -> JSON:
        """The server capabilities for one revision."""
        caps: JSON = {
            "tools": {"listChanged": True},
            "resources": {"listChanged": True},
            "prompts": {"listChanged": True},
            "completions": {},
            "logging": {},
        }
        if era == "legacy":
            caps["resources"]["subscribe"] = True
            if version >= "2025-11-25":
                caps["tasks"] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
        else:
            caps["resources"]["subscribe"] = True
            caps["extensions"] = {v.TASKS_EXTENSION: {}}
        return caps

    def initialize(self, params: JSON, session_id: str) -> tuple[SessionState, JSON]:
        """Answer a legacy ``initialize``: negotiate the version and open session state."""
        caps = params.get("capabilities", {})
        info = params.get("clientInfo", {})
        if type(caps) is not dict or type(info) is not dict:
            raise InvalidParams("expected object @ $.params.capabilities")
        version = v.negotiate_legacy(params.get("protocolVersion"))
        state = SessionState(session_id, version, caps, info)
        result: JSON = {
            "protocolVersion": version,
            "capabilities": self.capabilities("legacy", version),
            "serverInfo": {"name": self.info.name, "version": self.info.version},
        }
        if self.info.instructions:
            result["instructions"] = self.info.instructions
        return state, result

    def legacy_envelope(self, request: Request, session: SessionState) -> Envelope:
        """The context of a request on a legacy session."""
        meta = request.params.get("_meta")
        token = meta.get("progressToken") if type(meta) is dict else None
        return Envelope(
            era="legacy",
            version=session.version,
            client_capabilities=session.client_capabilities,
            log_level=session.log_level,
            progress_token=token if type(token) in (str, int) else None,
            session=session,
        )

    def modern_envelope(self, request: Request, headers: Sequence[tuple[str, str]]) -> Envelope:
        """Validate a 2026-07-28 request's ``_meta`` envelope and routing headers."""
        meta = request.params.get("_meta")
        if type(meta) is not dict:
            raise InvalidParams("required field missing @ $.params._meta")
        version = meta.get(v.META_VERSION)
        if type(version) is not str:
            raise InvalidParams(f"required field missing @ $.params._meta['{v.META_VERSION}']")
        self.check_headers(request, version, headers)
        if version not in v.MODERN_VERSIONS:
            raise UnsupportedVersion(version, list(v.SUPPORTED_VERSIONS))
        caps = meta.get(v.META_CAPABILITIES)
        if type(caps) is not dict:
            raise InvalidParams(f"required field missing @ $.params._meta['{v.META_CAPABILITIES}']")
        level = meta.get(v.META_LOG_LEVEL)
        if level is not None and level not in LOG_LEVELS:
            raise InvalidParams(f"unknown log level @ $.params._meta['{v.META_LOG_LEVEL}']")
        token = meta.get("progressToken")
        return Envelope(
            era="modern",
            version=version,
            client_capabilities=caps,
            log_level=level,
            progress_token=token if type(token) in (str, int) else None,
            input_responses=request.params.get("inputResponses"),
            request_state=request.params.get("requestState"),
        )

    def check_headers(
        self, request: Request, version: str, headers: Sequence[tuple[str, str]]
    ) -> None:
        """The 2026-07-28 routing headers must be present, single and equal to the body."""
        seen: dict[str, str] = {}
        for name, value in headers:
            lower = name.lower()
            if lower.startswith("mcp-"):
                if lower in seen:
                    raise HeaderMismatch(f"{lower} header appears more than once")
                seen[lower] = value.strip()
        _expect(seen, "MCP-Protocol-Version", version)
        method = request.method
        _expect(seen, "Mcp-Method", method)
        if method in {"tools/call", "prompts/get"}:
            _expect(seen, "Mcp-Name", request.params.get("name"))
        elif method == "resources/read":
            _expect(seen, "Mcp-Name", request.params.get("uri"))
        elif method.startswith("tasks/"):
            _expect(seen, "Mcp-Name", request.params.get("taskId"))
        if method == "tools/call":
            tool = self.registry.tools.get(request.params.get("name"))  # type: ignore[arg-type]
            arguments = request.params.get("arguments")
            if tool is not None and type(arguments) is dict:
                for prop, header in _header_params(tool):
                    if prop in arguments:
                        _expect(seen, f"Mcp-Param-{header}", _header_text(arguments[prop]))
                    elif f"mcp-param-{header.lower()}" in seen:
                        raise HeaderMismatch(f"Mcp-Param-{header} header without a body value")

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
        result = await handler(self, request, env, peer)
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
            "capabilities": self.capabilities("modern", env.version),
            "ttlMs": LIST_TTL_MS,
            "cacheScope": "public",
        }
        if self.info.instructions:
            result["instructions"] = self.info.instructions
        return result

    def _page(
        self, kind: str, env: Envelope, request: Request, items: Callable[[], list[JSON]]
    ) -> JSON:
        cursor = request.params.get("cursor")
        offset = 0
        if cursor is not None:
            payload = self.signer.verify(cursor, "cursor")
            if (
                type(payload) is not dict
                or payload.get("k") != kind
                or type(payload.get("o")) is not int
            ):
                raise InvalidParams("invalid cursor")
            offset = payload["o"]
        list_kind: ListKind = "resources" if kind.startswith("resource") else kind  # type: ignore[assignment]
        revision = self.registry.revisions[list_kind]
        key = (kind, env.era + (env.version if kind == "tools" else ""), offset)
        cached = self._pages.get(key)
        if cached is not None and cached[0] == revision:
            return dict(cached[1])
        everything = items()
        page: JSON = {_LIST_FIELD[kind]: everything[offset : offset + self.page_size]}
        if offset + self.page_size < len(everything):
            page["nextCursor"] = self.signer.sign({"k": kind, "o": offset + self.page_size})
        if env.era == "modern":
            page["ttlMs"] = LIST_TTL_MS
            page["cacheScope"] = "public"
        self._pages[key] = (revision, page)
        return dict(page)

    async def _tools_list(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        with_execution = env.era == "modern" or env.version >= "2025-11-25"
        return self._page(
            "tools",
            env,
            request,
            lambda: [_tool_json(t, with_execution) for t in self.registry.tools.values()],
        )

    async def _resources_list(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        return self._page(
            "resources",
            env,
            request,
            lambda: [
                _drop_none(
                    {
                        "uri": r.uri,
                        "name": r.name,
                        "title": r.title,
                        "description": r.description,
                        "mimeType": r.mime_type,
                    }
                )
                for r in self.registry.resources.values()
            ],
        )

    async def _templates_list(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        return self._page(
            "resourceTemplates",
            env,
            request,
            lambda: [
                _drop_none(
                    {
                        "uriTemplate": t.uri_template,
                        "name": t.name,
                        "title": t.title,
                        "description": t.description,
                        "mimeType": t.mime_type,
                    }
                )
                for t in self.registry.templates.values()
            ],
        )

    async def _prompts_list(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        return self._page(
            "prompts",
            env,
            request,
            lambda: [_prompt_json(p) for p in self.registry.prompts.values()],
        )

    async def _tools_call(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        params = request.params
        name = params.get("name")
        if type(name) is not str:
            raise InvalidParams(f"expected string, got {_kind(name)} @ $.params.name")
        tool = self.registry.tools.get(name)
        if tool is None:
            raise InvalidParams(f"Unknown tool: {clip(name)}")
        arguments = params.get("arguments", {})
        if arguments is None:
            arguments = {}
        if type(arguments) is not dict:
            raise InvalidParams(f"expected object, got {_kind(arguments)} @ $.params.arguments")
        as_task = self._wants_task(tool, params, env)
        error = validate(tool.input_schema, arguments, "$.arguments")
        if error is not None:
            return {
                "content": [{"type": "text", "text": f"Invalid arguments: {error}"}],
                "isError": True,
            }
        if as_task:
            return await self._start_task(request, tool, arguments, env, peer)
        ctx = _Context(self, env, peer, request.id)
        if env.era == "modern":
            ctx.answers = self._answers(request, env, name)
            try:
                result = await tool.handler(ctx, arguments)
            except _NeedInput as need:
                return self._input_required(request, env, name, ctx.answers, need)
        else:
            result = await tool.handler(ctx, arguments)
        return _tool_result_json(result)

    def _wants_task(self, tool: Tool, params: JSON, env: Envelope) -> bool:
        if env.era == "legacy":
            task = params.get("task")
            if task is None:
                if tool.task_support == "required":
                    raise MethodNotFound(f"tools/call without a task for {tool.name}")
                return False
            if type(task) is not dict:
                raise InvalidParams(f"expected object, got {_kind(task)} @ $.params.task")
            return tool.task_support != "forbidden"
        declared = _declares_tasks(env)
        if tool.task_support == "required" and not declared:
            raise MissingCapability(
                f"{tool.name} runs only as a task",
                {"extensions": {v.TASKS_EXTENSION: {}}},
            )
        return declared and tool.task_support != "forbidden"

    async def _start_task(
        self, request: Request, tool: Tool, arguments: JSON, env: Envelope, peer: Peer
    ) -> JSON:
        """Create a task and run the handler in the core's nursery.

        On the 2026-07-28 leg the handler first gets ``PRE_TASK_WINDOW_S`` (or until it reports
        progress, logs, asks ordinary input or returns) to ask ``before_task`` input: missing
        answers end the call with ``input_required`` (MRTR) and no task is created.
        """
        if self._nursery is None:
            raise McpError(-32603, "tasks are not available")
        ttl = DEFAULT_TTL_MS
        task_params = request.params.get("task")
        if type(task_params) is dict and type(task_params.get("ttl")) is int:
            ttl = max(1000, min(task_params["ttl"], 24 * 3600 * 1000))
        owner = env.session.session_id if env.session else None
        record = self.tasks.create(owner, env.era, ttl)
        session = env.session
        if session is not None and session.peer is not None:
            session_peer = session.peer

            def announce(task: McpTaskRecord) -> None:
                _spawn_notify(
                    self._nursery, session_peer, "notifications/tasks/status", task.legacy_json()
                )

            record.on_change = announce
        elif env.era == "modern":
            record.on_change = self._task_changed
        task_peer: Peer = session.peer if session is not None and session.peer else _NullPeer()
        ctx = _Context(self, env, task_peer, request.id, task=record)
        if env.era == "modern":
            name = str(request.params.get("name"))
            ctx.answers = self._answers(request, env, name)
            pre = ctx.pre_task = _PreTask()
            self._nursery.start_soon(self._run_task, record, tool, arguments, ctx)
            with trio.move_on_after(PRE_TASK_WINDOW_S):
                await pre.decided.wait()
            ctx.pre_task = None
            if pre.need is not None:
                record.scope.cancel()
                self.tasks.discard(record.task_id)
                return self._input_required(request, env, name, ctx.answers, _NeedInput(pre.need))
            result = record.modern_json(inline=False)
            result["resultType"] = "task"
            return result
        self._nursery.start_soon(self._run_task, record, tool, arguments, ctx)
        return {"task": record.legacy_json()}

    def _task_changed(self, record: McpTaskRecord) -> None:
        for listener in self.task_listeners:
            listener(record)

    async def _run_task(
        self, record: McpTaskRecord, tool: Tool, arguments: JSON, ctx: _Context
    ) -> None:
        with record.scope:
            try:
                result = await tool.handler(ctx, arguments)
                ctx.commit()
            except McpError as exc:
                ctx.commit()
                record.error = exc.to_json()
                record.set_status("failed", exc.message)
                return
            except Exception:
                logger.exception("task handler of %s failed", tool.name)
                record.error = {"code": -32603, "message": "Internal error"}
                record.set_status("failed", "Internal error")
                return
            record.result = _tool_result_json(result)
            failed = result.is_error and record.era == "legacy"
            record.set_status("failed" if failed else "completed")
        if not record.terminal:
            record.set_status("cancelled", "Cancelled")

    def _answers(self, request: Request, env: Envelope, name: str) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        if env.request_state is not None:
            answers.update(open_state(self.signer, env.request_state, request.method, name))
        responses = env.input_responses
        if responses is not None:
            if type(responses) is not dict:
                raise InvalidParams(
                    f"expected object, got {_kind(responses)} @ $.params.inputResponses"
                )
            for key, value in responses.items():
                if type(value) is not dict:
                    raise InvalidParams(
                        f"expected object, got {_kind(value)} @ $.params.inputResponses.{clip(key)}"
                    )
            answers.update(responses)
        return answers

    def _input_required(
        self, request: Request, env: Envelope, name: str, answers: dict[str, Any], need: _NeedInput
    ) -> JSON:
        return {
            "resultType": "input_required",
            "inputRequests": need.requests,
            "requestState": sign_state(self.signer, request.method, name, answers),
        }

    async def _resources_read(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        uri = request.params.get("uri")
        if type(uri) is not str:
            raise InvalidParams(f"expected string, got {_kind(uri)} @ $.params.uri")
        contents: list[ResourceContents]
        resource = self.registry.resources.get(uri)
        if resource is not None:
            contents = await resource.read(uri)
        else:
            for template in self.registry.templates.values():
                variables = _match_template(template, uri)
                if variables is not None:
                    contents = await template.read(uri, variables)
                    break
            else:
                raise ResourceNotFound(uri)
        result: JSON = {"contents": [_contents_json(c) for c in contents]}
        if env.era == "modern":
            result["ttlMs"] = 0
            result["cacheScope"] = "private"
        return result

    async def _subscribe(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        uri = request.params.get("uri")
        if type(uri) is not str:
            raise InvalidParams(f"expected string, got {_kind(uri)} @ $.params.uri")
        assert env.session is not None  # noqa: S101 (legacy methods always have a session)
        env.session.subscriptions.add(uri)
        return {}

    async def _unsubscribe(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        uri = request.params.get("uri")
        if type(uri) is not str:
            raise InvalidParams(f"expected string, got {_kind(uri)} @ $.params.uri")
        assert env.session is not None  # noqa: S101 (legacy methods always have a session)
        env.session.subscriptions.discard(uri)
        return {}

    def _prompt_call(self, request: Request) -> tuple[str, Prompt, dict[str, str]]:
        name = request.params.get("name")
        if type(name) is not str:
            raise InvalidParams(f"expected string, got {_kind(name)} @ $.params.name")
        prompt = self.registry.prompts.get(name)
        if prompt is None:
            raise InvalidParams(f"Unknown prompt: {clip(name)}")
        arguments = request.params.get("arguments") or {}
        if type(arguments) is not dict:
            raise InvalidParams(f"expected object, got {_kind(arguments)} @ $.params.arguments")
        for key, value in arguments.items():
            if type(value) is not str:
                raise InvalidParams(
                    f"expected string, got {_kind(value)} @ $.params.arguments.{clip(key)}"
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
            ctx = _Context(self, env, peer, request.id)
            if env.era == "modern":
                ctx.answers = self._answers(request, env, name)
                try:
                    rendered = await prompt.render_in_context(ctx, arguments)
                except _NeedInput as need:
                    return self._input_required(request, env, name, ctx.answers, need)
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
            raise InvalidParams(f"expected object, got {_kind(ref)} @ $.params.ref")
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

    def _task_of(self, request: Request, env: Envelope) -> McpTaskRecord:
        if env.era == "modern" and not _declares_tasks(env):
            raise MissingCapability(
                f"{request.method} needs the {v.TASKS_EXTENSION} extension",
                {"extensions": {v.TASKS_EXTENSION: {}}},
            )
        owner = env.session.session_id if env.session else None
        return self.tasks.get(request.params.get("taskId"), owner)

    async def _tasks_get(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        record = self._task_of(request, env)
        if env.era == "modern":
            result = record.modern_json(inline=True)
            result["resultType"] = "complete"
            return result
        return record.legacy_json()

    async def _tasks_result(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        record = self._task_of(request, env)
        await record.done.wait()
        if record.result is None:
            error = record.error or {"code": -32603, "message": f"Task {record.status}"}
            raise McpError(error["code"], error["message"], error.get("data"))
        result = dict(record.result)
        meta = dict(result.get("_meta") or {})
        meta[v.META_RELATED_TASK] = {"taskId": record.task_id}
        result["_meta"] = meta
        return result

    async def _tasks_list(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        owner = env.session.session_id if env.session else None
        records = self.tasks.listing(owner)
        offset = 0
        cursor = request.params.get("cursor")
        if cursor is not None:
            payload = self.signer.verify(cursor, "cursor")
            if (
                type(payload) is not dict
                or payload.get("k") != "tasks"
                or type(payload.get("o")) is not int
            ):
                raise InvalidParams("invalid cursor")
            offset = payload["o"]
        page: JSON = {"tasks": [r.legacy_json() for r in records[offset : offset + self.page_size]]}
        if offset + self.page_size < len(records):
            page["nextCursor"] = self.signer.sign({"k": "tasks", "o": offset + self.page_size})
        return page

    async def _tasks_cancel(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        record = self._task_of(request, env)
        if env.era == "modern":
            record.scope.cancel()
            record.set_status("cancelled", "Cancelled by the client")
            return {}
        if record.terminal:
            raise InvalidParams(f"Task {record.task_id} is already {record.status}")
        record.scope.cancel()
        record.set_status("cancelled", "Cancelled by the client")
        return record.legacy_json()

    async def _tasks_update(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        record = self._task_of(request, env)
        responses = request.params.get("inputResponses")
        if type(responses) is not dict:
            raise InvalidParams(
                f"expected object, got {_kind(responses)} @ $.params.inputResponses"
            )
        if not record.terminal:
            record.deliver(responses)
        return {}


class _NullPeer:
    """Where a task's notifications go when no stream can carry them."""

    async def notify(self, method: str, params: JSON) -> None:
        return None

    async def request(self, method: str, params: JSON) -> JSON:
        raise MissingCapability(f"No stream to send {method} on", {})

    def close_stream(self) -> None:
        return None


def _declares_tasks(env: Envelope) -> bool:
    extensions = env.client_capabilities.get("extensions")
    return isinstance(extensions, dict) and v.TASKS_EXTENSION in extensions


def _spawn_notify(nursery: trio.Nursery | None, peer: Peer, method: str, params: JSON) -> None:
    if nursery is not None:
        nursery.start_soon(peer.notify, method, params)


_LIST_FIELD: Final = {
    "tools": "tools",
    "resources": "resources",
    "resourceTemplates": "resourceTemplates",
    "prompts": "prompts",
}


def _kind(value: Any) -> str:
    return {
        type(None): "null",
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _drop_none(d: JSON) -> JSON:
    return {k: val for k, val in d.items() if val is not None}


def _tool_json(tool: Tool, with_execution: bool) -> JSON:
    out: JSON = {
        "name": tool.name,
        "description": tool.description,
        "inputSchema": tool.input_schema,
    }
    if tool.title is not None:
        out["title"] = tool.title
    if tool.output_schema is not None:
        out["outputSchema"] = tool.output_schema
    if tool.annotations is not None:
        out["annotations"] = tool.annotations
    if with_execution and tool.task_support != "forbidden":
        out["execution"] = {"taskSupport": tool.task_support}
    return out


def _prompt_json(prompt: Prompt) -> JSON:
    out: JSON = {"name": prompt.name, "description": prompt.description}
    if prompt.title is not None:
        out["title"] = prompt.title
    if prompt.arguments:
        out["arguments"] = [
            _drop_none({"name": a.name, "description": a.description, "required": a.required})
            for a in prompt.arguments
        ]
    return out


def _tool_result_json(result: ToolResult) -> JSON:
    out: JSON = {"content": result.content}
    if result.structured_content is not None:
        out["structuredContent"] = result.structured_content
    if result.is_error:
        out["isError"] = True
    return out


def _contents_json(contents: ResourceContents) -> JSON:
    out: JSON = {"uri": contents.uri}
    if contents.mime_type is not None:
        out["mimeType"] = contents.mime_type
    if isinstance(contents, BlobContents):
        out["blob"] = contents.blob
    else:
        out["text"] = contents.text
    return out


_TEMPLATE_CACHE: dict[str, re.Pattern[str]] = {}


def _match_template(template: ResourceTemplate, uri: str) -> dict[str, str] | None:
    pattern = _TEMPLATE_CACHE.get(template.uri_template)
    if pattern is None:
        parts = re.split(r"\{([A-Za-z0-9_]+)\}", template.uri_template)
        regex = "".join(
            f"(?P<{part}>[^/?#]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
        )
        pattern = re.compile(regex + r"\Z")
        _TEMPLATE_CACHE[template.uri_template] = pattern
    match = pattern.match(uri)
    return match.groupdict() if match else None


def _header_params(tool: Tool) -> list[tuple[str, str]]:
    properties = tool.input_schema.get("properties")
    if type(properties) is not dict:
        return []
    return [
        (name, schema["x-mcp-header"])
        for name, schema in properties.items()
        if type(schema) is dict and type(schema.get("x-mcp-header")) is str
    ]


def _header_text(value: Any) -> Any:
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) in (int, float):
        return str(value)
    return value


_B64 = re.compile(r"=\?base64\?(.*)\?=\Z", re.IGNORECASE | re.DOTALL)


def _expect(seen: dict[str, str], name: str, body_value: Any) -> None:
    value = seen.get(name.lower())
    if value is None:
        raise HeaderMismatch(f"{name} header missing")
    decoded = _decode_header(value, name)
    if decoded != body_value:
        raise HeaderMismatch(
            f"{name} header does not match the request body: "
            f"header {decoded!r}, body {body_value!r}"
        )


def _decode_header(value: str, name: str) -> str:
    if not value.startswith("=?"):
        return value
    match = _B64.match(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group(1), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HeaderMismatch(f"{name} header has invalid base64") from None
