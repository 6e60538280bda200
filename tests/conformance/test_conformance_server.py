"""The conformance fixture server as the harness runs it, and the runner's summary parser."""

from __future__ import annotations

import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import trio
from conformance.run import tally

REPO_ROOT = Path(__file__).resolve().parents[2]
MODERN = "2026-07-28"
# Names the harness scenarios call (facts file and scenario sources).
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


async def test_server_command_serves_the_fixtures_and_drains_on_sigterm() -> None:
    """`python tests/conformance/server.py --port 0` from the root serves, then exits on SIGTERM."""
    argv = [sys.executable, "tests/conformance/server.py", "--port", "0"]
    run = partial(trio.run_process, argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, check=False)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery, httpx.AsyncClient() as client:
            process: trio.Process = await nursery.start(run)
            assert process.stdout is not None
            banner = b""
            while b"\n" not in banner:
                chunk = await process.stdout.receive_some()
                assert chunk, "server.py exited before announcing its URL"
                banner += chunk
            base = banner.decode().split("\n")[0].removeprefix("serving ").strip()
            tools = await post_modern(client, f"{base}/mcp", "tools/list")
            prompts = await post_modern(client, f"{base}/mcp", "prompts/list")
            process.send_signal(signal.SIGTERM)
            status = await process.wait()
    names = {tool["name"] for tool in tools.json()["result"]["tools"]}
    assert names >= HARNESS_TOOLS
    prompt_names = {prompt["name"] for prompt in prompts.json()["result"]["prompts"]}
    assert "test_prompt_with_arguments" in prompt_names
    assert status == 0


HARNESS_OUTPUT = """\
✓ server-stateless: 30 passed, 0 failed
✗ caching: 5 passed, 2 failed
✓ tasks-lifecycle: 9 passed, 0 failed
✗ json-schema-2020-12: 5 passed, 3 failed

Total: 49 passed, 5 failed

Not scored for 2026-07-28: 2 scenario(s) run, 1 failing. These do not affect conformance.
  ✓ tasks-lifecycle (extension)
  ✗ json-schema-2020-12 (pending)
"""


def test_tally_counts_scored_and_unscored_checks_apart() -> None:
    """Scenarios listed as not scored are counted on their own line, not as failures."""
    result = tally(HARNESS_OUTPUT)
    assert (result.passed, result.failed) == (35, 2)
    assert (result.unscored_passed, result.unscored_failed) == (14, 3)
    assert result.failing == ("caching",)


def test_tally_of_a_run_without_unscored_section_counts_everything() -> None:
    """Without a 'Not scored' section (0.1.16) every scenario counts."""
    result = tally(HARNESS_OUTPUT.split("\nNot scored", maxsplit=1)[0])
    assert (result.passed, result.failed) == (49, 5)
    assert result.failing == ("caching", "json-schema-2020-12")
