"""Declarations of what an MCP server offers: tools, resources, templates and prompts.

Each is declared once and served in every protocol revision; the dispatcher adapts shapes to the
revision in use. Handlers are plain async callables and never see the transport: what they may do
beyond returning a value (progress, logging, asking the client) goes through ``RequestContext``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

import attrs

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

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Send ``notifications/progress`` if the client sent a progress token; else nothing."""

    async def log(self, level: LogLevel, data: Any, logger: str | None = None) -> None:
        """Send ``notifications/message`` when the client's log level lets it through."""

    async def elicit(self, message: str, requested_schema: JSON) -> JSON:
        """Ask the user for input (``elicitation/create``); returns the client's result."""

    async def sample(self, params: JSON) -> JSON:
        """Ask the client's model (``sampling/createMessage``); returns the client's result."""


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


@attrs.frozen
class Prompt:
    """A prompt template."""

    name: str
    description: str
    render: PromptRenderer
    arguments: tuple[PromptArgument, ...] = ()
    title: str | None = None
    complete: Completer | None = None
