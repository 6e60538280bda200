"""End to end with Codex and Gemini CLI streams replayed from the recorded fixtures.

The official SDK client talks to a real ``coding-agent up``; the agent binaries are a replay
script (``replay_agent.py``) that prints a recorded stream and exits as the real CLI did
(exit codes from ``fixtures/recordings.json``).
"""

from __future__ import annotations

import json
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


RECORDINGS = json.loads((FIXTURES / "recordings.json").read_text())


def _case(fixture: str, status: str, files: list[str]) -> Any:
    """The fixture replayed with the exit code the real CLI ended with."""
    agent = fixture.partition("_")[0]
    prompt = f"{fixture} {RECORDINGS[fixture + '.jsonl']['exit_code']}"
    return pytest.param(agent, prompt, status, files, id=fixture.replace("_", "-"))


CASES = [
    _case("codex_success", "waiting", []),
    _case("codex_turn_failed", "failed", []),
    _case("codex_file_change", "waiting", ["/work/project/README.md", "/work/project/hello.py"]),
    _case("gemini_success", "waiting", []),
    _case("gemini_auto_edit", "waiting", ["hello.py"]),
    _case("gemini_turn_limit", "failed", []),
    # "You exceeded your current quota": a usage limit, which holds Gemini's later tasks: last.
    _case("gemini_error", "limited", []),
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
