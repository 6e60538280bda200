"""The MCP Inspector's CLI mode against a real ``coding-agent up``, in both protocol eras.

``--strict`` reports every tool-schema portability problem on stderr (``Warning: tool "X"`` with
its path and issue); a server whose schemas a client cannot rely on shows up there (issue 15
item 8: ``result`` properties with no validation keyword).
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import re
import socket
import subprocess
import urllib.parse

import pytest
import trio
from _support.agent_up import coding_agent_up
from _support.mcp_clients import (
    consent_as_owner,
    inspector_argv,
    run_inspector,
    run_to_end,
    stand_in_setup,
)

pytestmark = pytest.mark.real_clients

SERVER_INFO = "io.modelcontextprotocol/serverInfo"
STRICT_PROBLEM = re.compile(r'^(Warning|Error): tool "([^"]+)"', re.MULTILINE)
NAVIGATE = re.compile(r"Please navigate to: (\S+)")
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


def free_loopback_port() -> int:
    """A loopback port nobody listens on right now (for the Inspector's OAuth callback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_inspector_with_no_token_logs_in_with_oauth(tmp_path: pathlib.Path, era: str) -> None:
    """No token: the Inspector's OAuth login through the consent page, then tools/list works."""
    setup = stand_in_setup(tmp_path)
    home = tmp_path / "home"
    await trio.Path(home).mkdir()
    # The Inspector "opens a browser" with xdg-open: a no-op here, the test is the browser.
    no_browser = tmp_path / "no-browser"
    await trio.Path(no_browser).mkdir()
    await trio.Path(no_browser / "xdg-open").write_text("#!/bin/sh\nexit 0\n")
    await trio.Path(no_browser / "xdg-open").chmod(0o755)
    listing = tmp_path / "tools.json"
    callback = f"http://127.0.0.1:{free_loopback_port()}/oauth/callback"
    async with coding_agent_up(setup.state, setup.root, setup.env) as up:
        argv = await trio.to_thread.run_sync(inspector_argv, up)
        argv = argv[: argv.index("--header")]  # no bearer token
        env = {
            "PATH": f"{no_browser}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),
            "MCP_AUTO_OPEN_ENABLED": "true",
            "MCP_INSPECTOR_SECRET_STORE": "file",  # under HOME: no OS keychain here
        }
        stderr = b""
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                functools.partial(
                    trio.run_process,
                    [*argv, "--method", "tools/list", "--protocol-era", era,
                     "--callback-url", callback, "--output", str(listing)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    check=False,
                    env=env,
                )
            )  # fmt: skip
            with trio.fail_after(120):
                while (found := NAVIGATE.search(stderr.decode(errors="replace"))) is None:
                    chunk = await process.stderr.receive_some(65536)
                    assert chunk, f"the Inspector ended without asking to log in: {stderr!r}"
                    stderr += chunk
                redirected = await consent_as_owner(found[1], up.token)
                target, _, query = redirected.partition("?")
                assert target == callback, redirected
                assert "code" in urllib.parse.parse_qs(query), redirected
                async for chunk in process.stderr:
                    stderr += chunk
        assert process.returncode == 0, stderr.decode(errors="replace")
        # The login was stored: the next run uses it without asking anyone.
        stored = await run_to_end(
            [*argv, "--method", "tools/call", "--tool-name", "check_status",
            "--protocol-era", era, "--stored-auth-only", "--format", "json"],
            env,
        )  # fmt: skip
    tools = json.loads(await trio.Path(listing).read_text())["tools"]
    assert {tool["name"] for tool in tools} >= TOOLS
    assert stored.returncode == 0, stored.stderr
    assert json.loads(stored.stdout)["result"]["structuredContent"]["status"] == "success"
