"""Typed MCP errors and their JSON-RPC codes.

A handler raises one of these; the dispatcher renders it as a JSON-RPC error object. The transport
maps a few of them to HTTP statuses (``http_status``) on the stateless 2026-07-28 leg.
"""

from __future__ import annotations

from typing import Any

from ._schema import clip

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HEADER_MISMATCH = -32020
MISSING_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022
RESOURCE_NOT_FOUND = -32002


class McpError(Exception):
    """An error a handler may raise; rendered as a JSON-RPC error object."""

    http_status = 200

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The JSON-RPC ``error`` member."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(McpError):
    """The body is not JSON."""

    http_status = 400

    def __init__(self, message: str = "Parse error") -> None:
        super().__init__(PARSE_ERROR, message)


class InvalidRequest(McpError):
    """The body is JSON but not a JSON-RPC 2.0 message."""

    http_status = 400

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(INVALID_REQUEST, message, data)
        self.request_id: str | int | None = None


class MethodNotFound(McpError):
    """The method is unknown (or not offered in this protocol revision)."""

    def __init__(self, method: str) -> None:
        super().__init__(METHOD_NOT_FOUND, f"Method not found: {clip(method)}")


class InvalidParams(McpError):
    """The params do not match what the method or tool expects."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(INVALID_PARAMS, message, data)


class InternalError(McpError):
    """The server failed; the message never carries internals."""

    def __init__(self, message: str = "Internal error", data: Any = None) -> None:
        super().__init__(INTERNAL_ERROR, message, data)


class ResourceNotFound(McpError):
    """No resource has this URI (-32602 with ``data.uri``, as 2025-11-25 and later specify)."""

    def __init__(self, uri: str) -> None:
        super().__init__(
            INVALID_PARAMS, f"Resource not found: {clip(uri)}", {"uri": clip(uri, 2048)}
        )
        self.uri = uri


class HeaderMismatch(McpError):
    """A 2026-07-28 routing header is missing, duplicated or differs from the body."""

    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(HEADER_MISMATCH, message)


class MissingCapability(McpError):
    """The client did not declare a capability this call needs."""

    http_status = 400

    def __init__(self, message: str, required: dict[str, Any]) -> None:
        super().__init__(MISSING_CAPABILITY, message, {"requiredCapabilities": required})


class UnsupportedVersion(McpError):
    """The requested protocol revision is not served here."""

    http_status = 400

    def __init__(self, requested: str, supported: list[str]) -> None:
        super().__init__(
            UNSUPPORTED_VERSION,
            f"Unsupported protocol version: {clip(requested)} (supported: {', '.join(supported)})",
            {"supported": supported, "requested": requested},
        )
