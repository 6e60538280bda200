"""The conformance fixture server as the harness runs it."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

REPO_ROOT = Path(__file__).resolve().parents[2]
MODERN = "2026-07-28"
# Names the harness scenarios call (read from the conformance suite's scenario sources).
HARNESS_TOOLS = {
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_reconnection",
    "test_missing_capability",
    "test_x_mcp_header",
    "test_trigger_tool_change",
    "test_input_required_result_elicitation",
    "slow_compute",
    "test_tool_with_task",
}


async def post_modern(client: httpx.AsyncClient, url: str, method: str) -> httpx.Response:
    """A 2026-07-28 request with the envelope and headers it needs."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": method,
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    return await client.post(url, json=body, headers=headers)


@contextlib.asynccontextmanager
async def conformance_server() -> AsyncIterator[tuple[trio.Process, str]]:
    """`python tests/conformance/server.py --port 0` from the root: the process and its URL."""
    argv = [sys.executable, "tests/conformance/server.py", "--port", "0"]
    run = partial(trio.run_process, argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, check=False)
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(run)
        assert process.stdout is not None
        banner = b""
        while b"\n" not in banner:
            chunk = await process.stdout.receive_some()
            assert chunk, "server.py exited before announcing its URL"
            banner += chunk
        yield process, banner.decode().split("\n")[0].removeprefix("serving ").strip()


async def test_server_command_serves_the_fixtures_and_exits_on_sigterm() -> None:
    """The server lists the tools and prompts the harness calls, then exits 0 on SIGTERM."""
    with trio.fail_after(60):
        async with conformance_server() as (process, base), httpx.AsyncClient() as client:
            tools = await post_modern(client, f"{base}/mcp", "tools/list")
            prompts = await post_modern(client, f"{base}/mcp", "prompts/list")
            process.send_signal(signal.SIGTERM)
            status = await process.wait()
    names = {tool["name"] for tool in tools.json()["result"]["tools"]}
    assert names >= HARNESS_TOOLS
    prompt_names = {prompt["name"] for prompt in prompts.json()["result"]["prompts"]}
    assert "test_prompt_with_arguments" in prompt_names
    assert status == 0


async def test_server_command_drains_a_call_in_flight_on_sigterm() -> None:
    """SIGTERM while a tool call is in flight: the call still gets its result, then exit 0."""
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "progress_then_sleep",
            "arguments": {"seconds": 3},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "progressToken": "in-flight",
            },
        },
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "progress_then_sleep",
    }
    messages: list[dict[str, Any]] = []
    with trio.fail_after(60):
        async with (
            conformance_server() as (process, base),
            httpx.AsyncClient(timeout=30) as client,
            client.stream("POST", f"{base}/mcp", json=body, headers=headers) as response,
        ):
            async for line in response.aiter_lines():
                if not line.startswith("data:") or not line[5:].strip():
                    continue
                messages.append(json.loads(line[5:]))
                if messages[-1].get("method") == "notifications/progress":
                    process.send_signal(signal.SIGTERM)  # the call is in its sleep now
            status = await process.wait()
    assert [m.get("method") for m in messages] == ["notifications/progress", None]
    assert messages[-1]["id"] == 7
    assert messages[-1]["result"]["content"][0]["text"] == "Slept 3s after reporting progress"
    assert status == 0
