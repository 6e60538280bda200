"""End to end, a live task that crosses a budget: the real Claude Code CLI live against the
scripted model; its turn ends saying which budget, and its agent is not kept for another turn."""

from __future__ import annotations

import functools
import pathlib
import uuid

import pytest
import trio
from _support import procs
from _support.claude_cli import claude_env, claude_executable
from _support.polling import eventually
from _support.scripted_model import Reply, ScriptedModel
from _support.task_server import all_events, task_server

from mcp_server._tasks import Budgets, Ledger, Spending

pytestmark = pytest.mark.claude_cli

MARKER = "CODING_AGENT_TEST_RUN"


async def test_a_live_task_over_budget_does_not_keep_its_agent(
    tmp_path: pathlib.Path, model: ScriptedModel
) -> None:
    """The first live turn costs more than the server's day budget: run_finished says so, the
    idle agent is closed at once (not kept for the next turn), and the follow-up waits queued."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    marker = uuid.uuid4().hex
    agent_env = claude_env(model.base_url, home) | {
        "CLAUDE_PATH": claude_executable(),
        MARKER: marker,
    }
    marked = functools.partial(procs.marked_processes, MARKER, marker)
    model.script(Reply("Done."))
    limits = Spending(Ledger(tmp_path / "state"), Budgets(server_day_usd=0.000001))
    async with task_server(tmp_path, daemon_env=agent_env, spending=limits) as env:
        created = await env.client.ok("create_task", title="t", instructions="hi", live=True)
        assert created["live"] is True
        task_id = created["task_id"]
        with trio.fail_after(90):
            while (await env.client.ok("wait_task", id=task_id, timeout_s=20))["status"] in (
                "in_progress",
                "input_required",
            ):
                pass
        events = await all_events(env.client, task_id)
        finished = [e for e in events if e["kind"] == "run_finished"][-1]
        assert "budget crossed: the server's daily budget" in finished["summary"], finished
        await eventually(lambda: marked() == [], "the live agent to be closed", timeout=60)
        held = await env.client.ok("update_task", id=task_id, instructions="again")
        assert held["status"] == "queued"
        assert held["queue_reason"].startswith("budget: the server spent $")
    assert marked() == []
