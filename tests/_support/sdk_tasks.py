"""The coding-task tools and resources through the official MCP SDK client, for e2e tests.

task_id = (await ok(client, "create_task", title="t", instructions="go"))["task_id"]
task = await wait_done(client, task_id)
message = await refused(client, "merge_task", id=task_id)
"""

from __future__ import annotations

import json
from typing import Any

import trio
from mcp import Client
from mcp.types import CallToolResult, TextContent, TextResourceContents

__all__ = ["events", "ok", "read_diff", "read_json", "refused", "said", "wait_done"]


def said(result: CallToolResult) -> str:
    """Everything a tool's answer says (its text content: message and result)."""
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def ok(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its ``result``."""
    result = await client.call_tool(name, arguments)
    assert not result.is_error, said(result)
    assert result.structured_content is not None
    value: dict[str, Any] = result.structured_content["result"]
    return value


async def refused(client: Client, name: str, **arguments: Any) -> str:
    """Call a tool that must fail; all its answer says."""
    result = await client.call_tool(name, arguments)
    assert result.is_error, said(result)
    return said(result)


async def wait_done(client: Client, task_id: str, *, timeout: float = 90.0) -> dict[str, Any]:
    """wait_task until the task leaves in_progress (at most ``timeout`` seconds in all)."""
    with trio.fail_after(timeout):
        while True:
            task = await ok(client, "wait_task", id=task_id, timeout_s=20)
            if task["status"] != "in_progress":
                return task


async def read_json(client: Client, uri: str) -> Any:
    """A resource's (first) contents, parsed as JSON."""
    read = await client.read_resource(uri)
    content = read.contents[0]
    assert isinstance(content, TextResourceContents), content
    return json.loads(content.text)


async def events(client: Client, task_id: str) -> list[dict[str, Any]]:
    """Every logged event of a task, following the pages of ``task://{id}/logs``."""
    out: list[dict[str, Any]] = []
    uri: str | None = f"task://{task_id}/logs"
    while uri is not None:
        page = await read_json(client, uri)
        out += page["events"]
        uri = page["next"]
    return out


async def read_diff(client: Client, task_id: str) -> str:
    """The whole ``task://{id}/diff``, following its pages."""
    parts: list[str] = []
    uri: str | None = f"task://{task_id}/diff"
    while uri is not None:
        page = await read_json(client, uri)
        parts.append(page["diff"])
        uri = page["next"]
    return "".join(parts)
