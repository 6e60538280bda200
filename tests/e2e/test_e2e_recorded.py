"""End to end with Codex and Gemini CLI streams replayed from H-agents' recorded fixtures.

The official SDK client talks to a real ``coding-agent up``; the agent binaries are a replay
script (``replay_agent.py``) that prints a recorded stream and exits as the real CLI did.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import pytest
import trio
from _support.agent_up import base_env, coding_agent_up, sdk_client

FIXTURES = pathlib.Path(__file__).parents[1] / "host_daemon" / "fixtures"
REPLAY = pathlib.Path(__file__).parent / "replay_agent.py"


def install_replay(directory: pathlib.Path, name: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{REPLAY.read_text()}")
    path.chmod(0o755)
    return str(path)


CASES = [
    pytest.param("codex", "codex_success 0", "waiting", [], id="codex-success"),
    pytest.param("codex", "codex_turn_failed 0", "failed", [], id="codex-turn-failed"),
    pytest.param(
        "codex",
        "codex_file_change 0",
        "waiting",
        ["/work/project/hello.py", "/work/project/README.md"],
        id="codex-file-change",
    ),
    pytest.param("gemini", "gemini_success 0", "waiting", [], id="gemini-success"),
    pytest.param("gemini", "gemini_error 1", "failed", [], id="gemini-error"),
    pytest.param("gemini", "gemini_turn_limit 53", "failed", [], id="gemini-turn-limit"),
]


async def test_e2e_recorded_streams(tmp_path: pathlib.Path) -> None:
    """Each recorded stream ends its task as the CLI's terminal event says, with a report."""
    root = tmp_path / "root"
    root.mkdir()
    bin_dir = tmp_path / "bin"
    env = base_env(
        CODEX_PATH=install_replay(bin_dir, "codex"),
        GEMINI_PATH=install_replay(bin_dir, "gemini"),
        REPLAY_FIXTURES=str(FIXTURES),
    )
    async with coding_agent_up(tmp_path / "state", root, env) as up, sdk_client(up) as client:
        for case in CASES:
            agent, prompt, status, files = case.values
            created = await client.call_tool(
                "create_task", {"title": case.id, "instructions": prompt, "agent": agent}
            )
            assert not created.is_error, created
            assert created.structured_content is not None
            task_id = created.structured_content["result"]["task_id"]
            task = await _wait(client, task_id)
            assert task["agent"] == agent
            assert task["status"] == status, (case.id, task["report"])
            assert task["report"]["files_changed"] == files
            if status == "waiting":
                assert task["report"]["outcome"] == "success"
            else:
                assert task["report"]["error"], case.id


async def _wait(client: Any, task_id: str) -> dict[str, Any]:
    with trio.fail_after(60):
        while True:
            result = await client.call_tool("wait_task", {"id": task_id, "timeout_s": 20})
            task: dict[str, Any] = result.structured_content["result"]
            if task["status"] != "in_progress":
                return task
