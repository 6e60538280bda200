"""The sans-IO MCP core: JSON-RPC messages, the registry, errors, negotiation and dispatch.

Other packages import these names from here, never from the private modules.
"""

from ._errors import InvalidParams, ResourceNotFound
from ._registry import (
    JSON,
    Prompt,
    PromptArgument,
    PromptResult,
    Registry,
    RequestContext,
    Resource,
    ResourceContents,
    ResourceTemplate,
    TextContents,
    Tool,
    ToolResult,
)
from ._schema import validate

__all__ = [
    "JSON",
    "InvalidParams",
    "Prompt",
    "PromptArgument",
    "PromptResult",
    "Registry",
    "RequestContext",
    "Resource",
    "ResourceContents",
    "ResourceNotFound",
    "ResourceTemplate",
    "TextContents",
    "Tool",
    "ToolResult",
    "validate",
]
