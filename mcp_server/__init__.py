"""The Coding Agent MCP server: a generic MCP core, its Streamable HTTP transport and the tools."""

from ._core import (
    BlobContents,
    InternalError,
    InvalidParams,
    McpError,
    MethodNotFound,
    Prompt,
    PromptArgument,
    PromptResult,
    Registry,
    RequestContext,
    Resource,
    ResourceNotFound,
    ResourceTemplate,
    TextContents,
    Tool,
    ToolAnnotations,
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
    "ToolAnnotations",
    "ToolResult",
    "serve",
]
