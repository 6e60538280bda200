"""End to end in the 2026-07-28 era: the SDK negotiates it, tools work, listen streams notify."""

from __future__ import annotations

import pathlib
import sys

import trio
from _support.agent_up import base_env, coding_agent_up, sdk_client
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated

STAND_IN = pathlib.Path(__file__).parent / "stand_in_claude.py"


async def test_e2e_modern_listen_gets_task_updates(tmp_path: pathlib.Path) -> None:
    """A listen stream subscribed to a task gets resources/updated; its list change too."""
    root = tmp_path / "root"
    root.mkdir()
    agent = tmp_path / "claude"
    agent.write_text(f"#!{sys.executable}\n{STAND_IN.read_text()}")
    agent.chmod(0o755)
    env = base_env(CLAUDE_PATH=str(agent))
    async with (
        coding_agent_up(tmp_path / "state", root, env) as up,
        sdk_client(up, mode="auto") as client,
    ):
        assert client.session.protocol_version == "2026-07-28"
        async with client.listen(resources_list_changed=True) as listing:
            first = await client.call_tool("create_task", {"title": "t", "instructions": "hello"})
            assert not first.is_error, first
            with trio.fail_after(30):
                assert isinstance(await anext(listing), ResourcesListChanged)
        created = await client.call_tool("create_task", {"title": "t", "instructions": "sleep 1"})
        assert created.structured_content is not None
        uri = f"task://{created.structured_content['result']['task_id']}"
        async with client.listen(resource_subscriptions=[uri]) as sub:
            with trio.fail_after(30):
                async for event in sub:
                    if isinstance(event, ResourceUpdated) and event.uri == uri:
                        break
        waited = await client.call_tool(
            "wait_task", {"id": uri.removeprefix("task://"), "timeout_s": 30}
        )
        assert waited.structured_content is not None
        assert waited.structured_content["result"]["status"] == "waiting"
