"""The MCP Inspector's CLI mode against a real ``coding-agent up``, in both protocol eras.

``--strict`` reports every tool-schema portability problem on stderr (``Warning: tool "X"`` with
its path and issue); a server whose schemas a client cannot rely on shows up there (issue 15
item 8: ``result`` properties with no validation keyword).
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest
from _support.agent_up import coding_agent_up
from _support.mcp_clients import run_inspector, stand_in_setup

pytestmark = pytest.mark.real_clients

SERVER_INFO = "io.modelcontextprotocol/serverInfo"
STRICT_PROBLEM = re.compile(r'^(Warning|Error): tool "([^"]+)"', re.MULTILINE)
TOOLS = {"check_status", "create_task", "wait_task", "report", "end_task", "update_task"}


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_inspector_strict_finds_no_schema_problem(tmp_path: pathlib.Path, era: str) -> None:
    """tools/list --strict and a tools/call exit 0 with no warning, in the era asked for."""
    setup = stand_in_setup(tmp_path)
    home = tmp_path / "home"
    async with coding_agent_up(setup.state, setup.root, setup.env) as up:
        listed = await run_inspector(
            up, home, "--method", "tools/list", "--strict", "--protocol-era", era,
            "--format", "json",
        )  # fmt: skip
        called = await run_inspector(
            up, home, "--method", "tools/call", "--tool-name", "check_status",
            "--protocol-era", era, "--format", "json",
        )  # fmt: skip
    problems = [f"{kind} {tool}" for kind, tool in STRICT_PROBLEM.findall(listed.stderr)]
    assert problems == [], listed.stderr
    assert listed.returncode == 0, listed
    assert {tool["name"] for tool in json.loads(listed.stdout)["result"]["tools"]} >= TOOLS
    assert called.returncode == 0, called
    assert not re.search(r"warn|error", called.stderr, re.IGNORECASE), called.stderr
    result = json.loads(called.stdout)["result"]
    assert result.get("isError") is not True, result
    assert result["structuredContent"]["status"] == "success"
    # Only the 2026-07-28 era stamps every result with the server's identity.
    assert (SERVER_INFO in result.get("_meta", {})) is (era == "modern"), result.get("_meta")
