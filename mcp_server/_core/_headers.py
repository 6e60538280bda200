"""The 2026-07-28 routing headers: present, single, and equal to what the body says."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Any

from ._errors import HeaderMismatch
from ._jsonrpc import Request
from ._registry import Registry, Tool


def check_headers(
    registry: Registry, request: Request, version: str, headers: Sequence[tuple[str, str]]
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
        tool = registry.tools.get(request.params.get("name"))  # type: ignore[arg-type]
        arguments = request.params.get("arguments")
        if tool is not None and type(arguments) is dict:
            for prop, header in _header_params(tool):
                if prop in arguments:
                    _expect(seen, f"Mcp-Param-{header}", _header_text(arguments[prop]))
                elif f"mcp-param-{header.lower()}" in seen:
                    raise HeaderMismatch(f"Mcp-Param-{header} header without a body value")

    # -- dispatch -------------------------------------------------------------------------------


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
