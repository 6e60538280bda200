"""Both TypeScript SDK clients against a real ``coding-agent up``.

The tools in sequence and a resource; the same client object carrying on after the server
restarts on the same port and state.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import pytest
import trio
from _support.agent_up import coding_agent_up
from _support.mcp_clients import SDK_V1, SDK_V2, NpmPin, running_script, sdk_script, stand_in_setup

pytestmark = pytest.mark.real_clients

# (pin, script, MCP_MODE, the protocol version the client must end up speaking)
CLIENTS = {
    "v1-legacy": (SDK_V1, "sdk_v1.mjs", "legacy", "2025-11-25"),
    "v2-legacy": (SDK_V2, "sdk_v2.mjs", "legacy", "2025-11-25"),
    "v2-modern": (SDK_V2, "sdk_v2.mjs", "modern", "2026-07-28"),
}


async def argv_for(pin: NpmPin, script: str, directory: pathlib.Path) -> list[str]:
    """The script's argv, installing Node and the SDK first if needed."""
    return await trio.to_thread.run_sync(sdk_script, pin, script, directory)


def result_of(step: dict[str, Any]) -> Any:
    """A tool step's ``result`` after checking the call succeeded."""
    assert step["isError"] is False, step
    assert step["structured"]["status"] == "success", step
    return step["structured"]["result"]


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_sdk_client_runs_the_tools_in_sequence(tmp_path: pathlib.Path, client: str) -> None:
    """Tools listed with annotations; the documented calls in sequence and a task resource."""
    pin, script, mode, version = CLIENTS[client]
    argv = await argv_for(pin, script, tmp_path / "script")
    setup = stand_in_setup(tmp_path)
    async with coding_agent_up(setup.state, setup.root, setup.env) as up:
        env = {"MCP_URL": up.url, "MCP_TOKEN": up.token, "MCP_MODE": mode}
        async with running_script([*argv, "sequence"], tmp_path / "client", env) as run:
            await run.rest()
            assert run.process.returncode == 0, run.report()
    steps = run.by_step()
    assert steps["connected"]["protocolVersion"] == version, run.report()
    assert steps["connected"]["server"] == "coding-agent"
    annotations = steps["tools"]["annotations"]
    for tool in ("check_status", "report", "wait_task"):
        assert (annotations.get(tool) or {}).get("readOnlyHint") is True, (tool, annotations)
    for tool in ("end_task", "clean_state"):
        assert (annotations.get(tool) or {}).get("destructiveHint") is True, (tool, annotations)
    assert result_of(steps["check_status"])["daemon"]["reachable"] is True
    task_id = result_of(steps["create_task"])["task_id"]
    assert result_of(steps["wait_task"])["status"] == "waiting"
    report = result_of(steps["report"])
    assert (report["task_id"], report["status"]) == (task_id, "waiting")
    assert report["outcome"] == "success"
    (content,) = steps["read_resource"]["contents"]
    assert content["uri"] == f"task://{task_id}"
    assert json.loads(content["text"])["task_id"] == task_id
    assert result_of(steps["end_task"])["status"] == "completed"


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_sdk_client_carries_on_after_a_server_restart(
    tmp_path: pathlib.Path, client: str
) -> None:
    """The same client object calls report, task://{id} and end_task after up restarts."""
    pin, script, mode, _ = CLIENTS[client]
    argv = await argv_for(pin, script, tmp_path / "script")
    setup = stand_in_setup(tmp_path)
    async with coding_agent_up(setup.state, setup.root, setup.env) as first:
        env = {"MCP_URL": first.url, "MCP_TOKEN": first.token, "MCP_MODE": mode}
        async with running_script([*argv, "restart"], tmp_path / "client", env) as run:
            await run.until("paused")
            port = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/mcp", first.url)
            assert port is not None, first.url
            first.terminate()
            with trio.fail_after(60):
                await first.process.wait()
            async with coding_agent_up(
                setup.state, setup.root, setup.env, extra_args=("--port", port[1])
            ) as second:
                assert (second.url, second.token) == (first.url, first.token)
                await run.send("go")
                await run.rest()
    assert run.process.returncode == 0, run.report()
    steps = run.by_step()
    task_id = result_of(steps["create_task"])["task_id"]
    assert result_of(steps["report"])["task_id"] == task_id
    assert json.loads(steps["read_resource"]["contents"][0]["text"])["task_id"] == task_id
    assert result_of(steps["end_task"])["status"] == "completed"
    assert steps["after_restart"]["sessionId"] == steps["connected"]["sessionId"], run.report()


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_sdk_client_hears_wait_task_progress(tmp_path: pathlib.Path, client: str) -> None:
    """wait_task with the SDK's progress callback hears each new event, values increasing."""
    pin, script, mode, _ = CLIENTS[client]
    argv = await argv_for(pin, script, tmp_path / "script")
    setup = stand_in_setup(tmp_path)
    pace = tmp_path / "pace"  # the stand-in says "step 1" once pace/1 exists, ends on pace/done
    await trio.Path(pace).mkdir()
    async with coding_agent_up(setup.state, setup.root, setup.env) as up:
        env = {
            "MCP_URL": up.url,
            "MCP_TOKEN": up.token,
            "MCP_MODE": mode,
            "TASK_INSTRUCTIONS": f"steps {pace} 1",
        }
        async with running_script([*argv, "progress"], tmp_path / "client", env) as run:
            await run.until("progress")  # the task as it is when the wait begins
            await trio.Path(pace / "1").touch()
            while (await run.until("progress"))["message"] != "in_progress: text: step 1":
                pass
            await trio.Path(pace / "done").touch()
            await run.rest()
    assert run.process.returncode == 0, run.report()
    values = [step["progress"] for step in run.steps if step["step"] == "progress"]
    assert values == sorted(set(values)), run.report()
    assert result_of(run.by_step()["wait_task"])["status"] == "waiting"
