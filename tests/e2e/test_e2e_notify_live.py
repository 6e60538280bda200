"""End to end: a supervised live run of the real Claude Code CLI (against the scripted model)
that asks for permission is announced as ``task.input_required``, then ``task.waiting``."""

from __future__ import annotations

import json
import pathlib
import uuid

import pytest
from _support.claude_cli import claude_env, claude_executable
from _support.polling import eventually
from _support.scripted_model import BashCall, Reply, ScriptedModel
from _support.task_server import task_server
from _support.webhook_receiver import webhook_receiver

from mcp_server._notify import NotifyConfig, RetryPolicy, Target

pytestmark = pytest.mark.claude_cli

SECRET = "test-secret-not-a-real-one"
WRITE = "sh write.sh approved"


async def test_a_permission_request_and_the_turns_end_each_reach_the_webhook(
    tmp_path: pathlib.Path, model: ScriptedModel
) -> None:
    """input_required names the tool; after approve the waiting event follows; both signed."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    env = claude_env(model.base_url, home) | {
        "CLAUDE_PATH": claude_executable(),
        "CODING_AGENT_TEST_RUN": uuid.uuid4().hex,
    }
    model.script(BashCall(WRITE), Reply("Done."))
    async with webhook_receiver(SECRET) as receiver:
        config = NotifyConfig(
            targets=(Target(receiver.url),), secret=SECRET, policy=RetryPolicy(timeout_s=5)
        )
        async with task_server(tmp_path, daemon_env=env, notify=config) as server:
            (server.root / "write.sh").write_text('echo "$1" > out.txt\n')
            client = server.client
            task = await client.ok("create_task", title="live", instructions="write out.txt")
            assert task["live"] is True, task
            task_id = task["task_id"]
            await eventually(
                lambda: len(receiver.unique_accepted()) == 1, "input_required", timeout=90
            )
            (asked,) = [json.loads(r.body) for r in receiver.unique_accepted()]
            assert asked["type"] == "task.input_required"
            assert "Bash" in asked["summary"]
            (pending,) = (await client.ok("report", id=task_id))["pending_approvals"]
            await client.ok(
                "approve", id=task_id, request_id=pending["request_id"], decision="allow"
            )
            await eventually(lambda: len(receiver.unique_accepted()) == 2, "waiting", timeout=90)
            assert (await client.ok("report", id=task_id))["status"] == "waiting"
    bodies = [json.loads(r.body) for r in receiver.unique_accepted()]
    assert [b["type"] for b in bodies] == ["task.input_required", "task.waiting"]
    assert all(r.verified for r in receiver.requests)
