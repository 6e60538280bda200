"""Declarations of what an MCP server offers: tools, resources, templates and prompts.

Each is declared once and served in every protocol revision; the dispatcher adapts shapes to the
revision in use. Handlers are plain async callables and never see the transport: what they may do
beyond returning a value (progress, logging, asking the client) goes through ``RequestContext``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

import attrs

from ._observers import McpListener

JSON = dict[str, Any]
LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
TaskSupport = Literal["forbidden", "optional", "required"]
ListKind = Literal["tools", "resources", "prompts"]


class RequestContext(Protocol):
    """What a handler may do while it serves one request."""

    @property
    def request_id(self) -> str | int:
        """The JSON-RPC id of the request being served."""

    @property
    def as_task(self) -> bool:
        """True when the client asked for an MCP task: the handler may run long."""

    @property
    def task_id(self) -> str | None:
        """The MCP task's id when the client asked for one (see ``Tool.mint_task_id``)."""

    @property
    def client_capabilities(self) -> JSON:
        """The capabilities the client declared (session or 2026-07-28 envelope)."""

    def report_status(self, message: str) -> None:
        """As an MCP task: make ``message`` its ``statusMessage`` (``tasks/get``, ``tasks/list``,
        status notifications); otherwise nothing. The task's last message stays once it ends."""

    def close_sse_stream(self) -> None:
        """End this request's SSE response now (legacy); the client resumes with GET +
        ``Last-Event-ID`` and gets the rest there. Does nothing for JSON or 2026-07-28 answers."""

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Send ``notifications/progress`` if the client sent a progress token; else nothing."""

    async def log(self, level: LogLevel, data: Any, logger: str | None = None) -> None:
        """Send ``notifications/message`` when the client's log level lets it through."""

    async def elicit(self, message: str, requested_schema: JSON, *, key: str | None = None) -> JSON:
        """Ask the user for input (``elicitation/create``); returns the client's result.

        On a legacy session this is a server→client request. On the 2026-07-28 leg the call
        ends with an ``input_required`` result whose input request is named ``key`` (default:
        numbered per call); the client's retry replays the handler and this returns the answer.
        """

    async def sample(self, params: JSON, *, key: str | None = None) -> JSON:
        """Ask the client's model (``sampling/createMessage``); returns the client's result."""

    async def list_roots(self, *, key: str | None = None) -> JSON:
        """Ask the client for its roots (``roots/list``); returns the client's result."""

    async def ask(
        self, requests: Mapping[str, tuple[str, JSON]], *, before_task: bool = False
    ) -> dict[str, JSON]:
        """Send several client requests at once (key -> (method, params)); returns key -> result.

        ``before_task=True`` marks input a task needs before it starts: on the 2026-07-28 leg,
        asked right away by a task handler (before any progress, log, other ask or slow work:
        within 50 ms, see ``_server.PRE_TASK_WINDOW_S``), it is gathered through
        ``input_required`` rounds before the task is created (MRTR, then the task); otherwise it
        is an ordinary ask.
        """


@attrs.frozen
class ToolResult:
    """A tool call's answer: content blocks, optional structured content, and whether it failed."""

    content: list[JSON]
    structured_content: JSON | None = None
    is_error: bool = False


ToolHandler = Callable[[RequestContext, JSON], Awaitable[ToolResult]]


@attrs.frozen
class Tool:
    """A tool; ``input_schema`` validates arguments before the handler runs."""

    name: str
    description: str
    input_schema: JSON
    handler: ToolHandler
    output_schema: JSON | None = None
    title: str | None = None
    annotations: JSON | None = None
    task_support: TaskSupport = "forbidden"
    mint_task_id: Callable[[], str] | None = None
    """When set, the MCP task running this tool takes its id from here (the tool's own id for
    what the task makes, so a client sees one id), and the handler reads it as ``ctx.task_id``.
    The task is announced only once the handler commits (progress, ``report_status``, a log, an
    ask, or its end), so the id names something when the client learns it. Ids must be
    unguessable: on 2026-07-28 an id alone reaches a task. A taken id fails the call."""


@attrs.frozen
class TextContents:
    """Text contents of a resource."""

    uri: str
    text: str
    mime_type: str | None = None


@attrs.frozen
class BlobContents:
    """Binary contents of a resource, base64-encoded."""

    uri: str
    blob: str
    mime_type: str | None = None


ResourceContents = TextContents | BlobContents
ResourceReader = Callable[[str], Awaitable[list[ResourceContents]]]
TemplateReader = Callable[[str, Mapping[str, str]], Awaitable[list[ResourceContents]]]
Completer = Callable[[str, str, Mapping[str, str]], Awaitable[list[str]]]
"""(argument name, partial value, other arguments already given) -> candidate values."""


@attrs.frozen
class Resource:
    """A resource with a fixed URI."""

    uri: str
    name: str
    read: ResourceReader
    description: str | None = None
    mime_type: str | None = None
    title: str | None = None


@attrs.frozen
class ResourceTemplate:
    """Resources addressed by an RFC 6570 level-1 template such as ``task://{id}/logs``."""

    uri_template: str
    name: str
    read: TemplateReader
    description: str | None = None
    mime_type: str | None = None
    title: str | None = None
    complete: Completer | None = None


@attrs.frozen
class PromptArgument:
    """One argument of a prompt; required ones are enforced before rendering."""

    name: str
    description: str | None = None
    required: bool = False


@attrs.frozen
class PromptResult:
    """A rendered prompt: MCP ``PromptMessage`` objects."""

    messages: list[JSON]
    description: str | None = None


PromptRenderer = Callable[[Mapping[str, str]], Awaitable[PromptResult]]
ContextPromptRenderer = Callable[[RequestContext, Mapping[str, str]], Awaitable[PromptResult]]


@attrs.frozen
class Prompt:
    """A prompt template."""

    name: str
    description: str
    render: PromptRenderer
    arguments: tuple[PromptArgument, ...] = ()
    title: str | None = None
    complete: Completer | None = None
    render_in_context: ContextPromptRenderer | None = None
    """Used instead of ``render`` when set: for prompts that ask the client (``ctx.elicit``)."""


@attrs.frozen
class ListChanged:
    """Registry event: the list of tools, resources or prompts changed."""

    kind: ListKind


@attrs.frozen
class ResourceUpdated:
    """Registry event: the resource at ``uri`` changed."""

    uri: str


@attrs.frozen
class LogMessage:
    """Registry event: a ``notifications/message`` for clients outside any request: every
    legacy session whose log level lets ``level`` through, and every session or listen stream
    subscribed to ``about`` (a resource URI the message concerns)."""

    level: LogLevel
    data: Any
    logger: str | None = None
    about: str | None = None


RegistryEvent = ListChanged | ResourceUpdated | LogMessage


class Registry:
    """What the server offers, declared once and served in every revision.

    Changes bump a per-kind revision (the dispatcher caches rendered list pages per revision) and
    fan out ``list_changed``/``resource_updated`` to listeners: each listener is a synchronous
    callable that must never block (sessions and listen streams push into bounded buffers).
    """

    def __init__(self) -> None:
        self.tools: dict[str, Tool] = {}
        self.resources: dict[str, Resource] = {}
        self.templates: dict[str, ResourceTemplate] = {}
        self.prompts: dict[str, Prompt] = {}
        self.revisions: dict[ListKind, int] = {"tools": 0, "resources": 0, "prompts": 0}
        self._listeners: dict[int, McpListener[RegistryEvent]] = {}
        self._next_listener = 0

    def add_tool(self, tool: Tool) -> None:
        """Add or replace a tool; announces ``tools`` list_changed."""
        self.tools[tool.name] = tool
        self.list_changed("tools")

    def remove_tool(self, name: str) -> None:
        """Remove a tool if present; announces ``tools`` list_changed."""
        if self.tools.pop(name, None) is not None:
            self.list_changed("tools")

    def add_resource(self, resource: Resource) -> None:
        """Add or replace a fixed-URI resource; announces ``resources`` list_changed."""
        self.resources[resource.uri] = resource
        self.list_changed("resources")

    def remove_resource(self, uri: str) -> None:
        """Remove a resource if present; announces ``resources`` list_changed."""
        if self.resources.pop(uri, None) is not None:
            self.list_changed("resources")

    def add_template(self, template: ResourceTemplate) -> None:
        """Add or replace a resource template; announces ``resources`` list_changed."""
        self.templates[template.uri_template] = template
        self.list_changed("resources")

    def remove_template(self, uri_template: str) -> None:
        """Remove a resource template if present; announces ``resources`` list_changed."""
        if self.templates.pop(uri_template, None) is not None:
            self.list_changed("resources")

    def remove_prompt(self, name: str) -> None:
        """Remove a prompt if present; announces ``prompts`` list_changed."""
        if self.prompts.pop(name, None) is not None:
            self.list_changed("prompts")

    def add_prompt(self, prompt: Prompt) -> None:
        """Add or replace a prompt; announces ``prompts`` list_changed."""
        self.prompts[prompt.name] = prompt
        self.list_changed("prompts")

    def resource_updated(self, uri: str) -> None:
        """Tell every subscriber of ``uri`` that it changed. Never blocks."""
        self._emit(ResourceUpdated(uri))

    def log_message(
        self, level: LogLevel, data: Any, *, logger: str | None = None, about: str | None = None
    ) -> None:
        """Tell logging clients, and subscribers of ``about``, something. Never blocks."""
        self._emit(LogMessage(level, data, logger, about))

    def list_changed(self, kind: ListKind) -> None:
        """Tell every interested client that a list changed. Never blocks."""
        self.revisions[kind] += 1
        self._emit(ListChanged(kind))

    def add_listener(self, listener: McpListener[RegistryEvent]) -> Callable[[], None]:
        """Register a non-blocking listener; returns the function that removes it."""
        key = self._next_listener
        self._next_listener += 1
        self._listeners[key] = listener

        def remove() -> None:
            self._listeners.pop(key, None)

        return remove

    def _emit(self, event: RegistryEvent) -> None:
        for listener in list(self._listeners.values()):
            listener(event)
