"""What clients see of the tools in tools/list: strict-clean schemas and annotations.

Through a real ``coding-agent up`` and the official ``mcp`` SDK client, in both eras (``legacy``:
the initialize handshake; ``auto``: 2026-07-28).
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _support.agent_up import base_env, coding_agent_up, sdk_client
from _support.daemon import install_stand_in_agent
from _support.schema_lint import lint_schema, lint_tools
from mcp import Client

MODES = ["legacy", "auto"]


async def _listed(client: Client) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += [t.model_dump(by_alias=True, exclude_none=True) for t in page.tools]
        cursor = page.next_cursor
        if cursor is None:
            return tools


@contextlib.asynccontextmanager
async def _up_client(tmp_path: pathlib.Path, mode: str) -> AsyncIterator[Client]:
    root = tmp_path / "root"
    root.mkdir()
    env = base_env(CLAUDE_PATH=install_stand_in_agent(tmp_path))
    async with coding_agent_up(tmp_path / "state", root, env) as up, sdk_client(up, mode) as client:
        yield client


def test_lint_flags_a_schema_without_validation_keyword() -> None:
    """The Inspector's rule, mirrored: a property schema with no validation keyword is flagged."""
    schema = {"type": "object", "properties": {"result": {"description": "anything"}}}
    assert [str(f) for f in lint_schema(schema, "outputSchema")] == [
        "warning untyped-schema @ outputSchema.properties.result"
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_tool_schemas_are_strict_clean(tmp_path: pathlib.Path, mode: str) -> None:
    """Every tool's input and output schema passes the Inspector's --strict lint."""
    async with _up_client(tmp_path, mode) as client:
        tools = await _listed(client)
        assert len(tools) == 12
        assert all("outputSchema" in t for t in tools)
        assert lint_tools(tools) == {}


@pytest.mark.parametrize("mode", MODES)
async def test_list_result_validates_against_output_schema(
    tmp_path: pathlib.Path, mode: str
) -> None:
    """get_prompt without an id answers a list, which the SDK validates against the schema."""
    async with _up_client(tmp_path, mode) as client:
        await _listed(client)  # the SDK validates structured content of tools it has listed
        answer = await client.call_tool("get_prompt", {})
        assert not answer.is_error, answer
        assert answer.structured_content is not None
        assert isinstance(answer.structured_content["result"], list)


READ_ONLY = {"check_status", "get_prompt", "report", "wait_task"}
DESTRUCTIVE = {
    "approve",
    "clean_state",
    "create_task",
    "discard_task",
    "end_task",
    "interrupt_task",
    "merge_task",
    "update_task",
}


@pytest.mark.parametrize("mode", MODES)
async def test_tools_carry_annotations(tmp_path: pathlib.Path, mode: str) -> None:
    """Every tool states all four hints and a title; reads are read-only, the rest destructive."""
    async with _up_client(tmp_path, mode) as client:
        listed = (await client.list_tools()).tools
    hints = {t.name: t.annotations for t in listed}
    assert set(hints) == READ_ONLY | DESTRUCTIVE
    for name, annotation in hints.items():
        assert annotation is not None, name
        assert annotation.title, name
        assert annotation.read_only_hint is (name in READ_ONLY), name
        assert annotation.destructive_hint is (name in DESTRUCTIVE), name
        assert annotation.idempotent_hint is (name not in {"create_task", "update_task"}), name
        assert annotation.open_world_hint is (name in {"create_task", "update_task"}), name
