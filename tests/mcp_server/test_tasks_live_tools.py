"""The live-run tools against a real server and daemon whose agent cannot run live (the stand-in):
the refusals and the per-turn fallbacks of approve, interrupt_task, update_task and the options."""

from __future__ import annotations

import os
import pathlib
import signal

import trio
from _support.polling import eventually
from _support.slow_help import VERSION_THEN_SLOW_FIRST_HELP, slow_gemini
from _support.task_server import Env, all_events, task_server, up_client, wait_done


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (not a zombie)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def hanging_pids(env: Env, task_id: str) -> list[int]:
    """The stand-in's ``hang`` pids (leader, child, escapee), once it reported them."""
    with trio.fail_after(30):
        while True:
            changed = env.runner.changed(task_id)  # before reading: no missed wake-up
            texts = [e["summary"] for e in await all_events(env.client, task_id)]
            pids = [t.split()[2:] for t in texts if t.startswith("text: pids ")]
            if pids:
                return [int(p) for p in pids[0]]
            await changed.wait()


async def test_live_for_an_agent_that_cannot_is_refused(tmp_path: pathlib.Path) -> None:
    """live: true for an agent the daemon cannot run live: live_unsupported, and no task."""
    async with task_server(tmp_path) as env:
        result = await env.client.call("create_task", title="t", instructions="hello", live=True)
        assert result["isError"] is True
        structured = result["structuredContent"]
        assert structured["error"]["code"] == "live_unsupported"
        assert "claude" in structured["message"]
        assert "@ $.arguments.live" in structured["message"]
        assert (await env.client.ok("report"))["total_tasks"] == 0


async def test_live_by_default_only_where_the_daemon_says_it_can(tmp_path: pathlib.Path) -> None:
    """No live option and an agent that cannot: the task runs per turn, as before."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hello")
        assert created["live"] is False
        task = await wait_done(env.client, created["task_id"])
        assert task["status"] == "waiting"
        assert task["pending_approvals"] == []


async def test_live_by_default_waits_for_a_slow_live_check(tmp_path: pathlib.Path) -> None:
    """A CLI slow to answer its help (a loaded host) still runs live: create waits for it."""
    bin_dir = tmp_path / "slow"
    bin_dir.mkdir()
    gemini = slow_gemini(bin_dir, VERSION_THEN_SLOW_FIRST_HELP)
    async with task_server(tmp_path, daemon_env={"GEMINI_PATH": str(gemini)}) as env:
        created = await env.client.ok(
            "create_task", title="t", instructions="hello", agent="gemini"
        )
        assert created["live"] is True
        await env.client.ok("end_task", id=created["task_id"])


async def test_a_bad_rule_is_refused_naming_its_place(tmp_path: pathlib.Path) -> None:
    """allow_rules/deny_rules are parsed at create: the error names the rule's index."""
    async with task_server(tmp_path) as env:
        result = await env.client.call(
            "create_task",
            title="t",
            instructions="hello",
            allow_rules=["Bash(pytest:*)", "Bash("],
            deny_rules=["(x)"],
        )
        structured = result["structuredContent"]
        assert structured["error"]["code"] == "invalid_arguments"
        assert "@ $.arguments.allow_rules[1]" in structured["message"]
        assert "@ $.arguments.deny_rules[0]" in structured["message"]
        assert "@ $.arguments.allow_rules[0]" not in structured["message"]
        assert (await env.client.ok("report"))["total_tasks"] == 0


async def test_interrupt_stops_a_per_turn_run_and_keeps_the_task(tmp_path: pathlib.Path) -> None:
    """interrupt_task on a per-turn run: every process gone, the task waits, a follow-up goes on
    in the same conversation."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hang")
        task_id = created["task_id"]
        pids = await hanging_pids(env, task_id)
        try:
            task = await env.client.ok("interrupt_task", id=task_id)
            assert task["status"] == "waiting"
            assert task["report"]["outcome"] == "interrupted"
            await eventually(lambda: not any(alive(p) for p in pids))
            await env.client.ok("update_task", id=task_id, instructions="hello")
            again = await wait_done(env.client, task_id)
            assert again["status"] == "waiting"
            assert again["session_id"] == task["session_id"] is not None
        finally:
            for pid in pids[1:]:  # a failed test must not leave them behind
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


async def test_interrupt_without_a_run_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    """interrupt_task with no run in flight: not_running, naming the task's status."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hello")
        await wait_done(env.client, created["task_id"])
        result = await env.client.call("interrupt_task", id=created["task_id"])
        structured = result["structuredContent"]
        assert structured["error"]["code"] == "not_running"
        assert "it is waiting" in structured["message"]
        assert await env.client.error_code("interrupt_task", id="nope") == "task_not_found"


async def test_approve_without_a_pending_request_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    """approve of a request that is not pending: not_pending, naming the request and why."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hello")
        await wait_done(env.client, created["task_id"])
        result = await env.client.call(
            "approve", id=created["task_id"], request_id="r-9", decision="allow"
        )
        structured = result["structuredContent"]
        assert structured["error"]["code"] == "not_pending"
        assert "'r-9'" in structured["message"]
        assert "the task is waiting, no run is in flight" in structured["message"]


async def test_update_during_a_per_turn_run_stays_busy(tmp_path: pathlib.Path) -> None:
    """A follow-up while a per-turn run is in flight is refused busy, not steered."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="sleep 30")
        code = await env.client.error_code("update_task", id=created["task_id"], instructions="x")
        assert code == "busy"
        await env.client.ok("end_task", id=created["task_id"])


async def test_check_status_shows_live_capability_and_the_policy(tmp_path: pathlib.Path) -> None:
    """check_status: each agent's live capability, the daemon's rules and live session counts."""
    config = {"allow_rules": ("Bash(pytest:*)",), "deny_rules": ("Bash(rm:*)",)}
    async with task_server(tmp_path, daemon_config=config) as env:
        status = await env.client.ok("check_status")
        daemon = status["daemon"]
        claude = next(agent for agent in daemon["agents"] if agent["name"] == "claude")
        assert claude["live"] is False
        assert claude["live_note"]  # why not, for people
        assert daemon["policy"] == {"allow_rules": ["Bash(pytest:*)"], "deny_rules": ["Bash(rm:*)"]}
        assert daemon["live_sessions"] == 0
        assert daemon["max_live_sessions"] == 8  # the daemon's default


async def test_up_gives_its_daemon_the_policy_of_its_flags(tmp_path: pathlib.Path) -> None:
    """coding-agent up --allow-rule/--deny-rule/--policy-file: check_status shows them all."""
    policy = tmp_path / "policy.toml"
    policy.write_text('deny = ["Edit(secrets/**)"]\n')
    flags = ["--allow-rule", "Bash(pytest:*)", "--deny-rule", "Bash(rm:*)", "--policy-file"]
    async with up_client(tmp_path, tmp_path / "state", [*flags, str(policy)]) as (_, client):
        status = await client.ok("check_status")
    assert status["daemon"]["policy"] == {
        "allow_rules": ["Bash(pytest:*)"],
        "deny_rules": ["Bash(rm:*)", "Edit(secrets/**)"],
    }
