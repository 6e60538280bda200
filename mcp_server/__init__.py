"""The Coding Agent MCP server: a generic MCP core, its Streamable HTTP transport and the tools."""

from ._core._errors import (
    InternalError,
    InvalidParams,
    McpError,
    MethodNotFound,
    ResourceNotFound,
)
from ._core._registry import (
    BlobContents,
    Prompt,
    PromptArgument,
    PromptResult,
    Registry,
    RequestContext,
    Resource,
    ResourceTemplate,
    TextContents,
    Tool,
    ToolResult,
)
from ._http import HttpSettings, serve

__all__ = [
    "BlobContents",
    "HttpSettings",
    "InternalError",
    "InvalidParams",
    "McpError",
    "MethodNotFound",
    "Prompt",
    "PromptArgument",
    "PromptResult",
    "Registry",
    "RequestContext",
    "Resource",
    "ResourceNotFound",
    "ResourceTemplate",
    "TextContents",
    "Tool",
    "ToolResult",
    "serve",
]
