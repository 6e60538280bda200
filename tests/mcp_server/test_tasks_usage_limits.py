"""Usage limits end to end: the real Claude Code CLI, a real daemon and server, a scripted model.

The model answers a task's first call with HTTP 429 ``rate_limit_error`` and the unified
rate-limit headers (``rejected``, a reset a few seconds ahead). Claude Code 2.1.332 (API key
auth) ends the turn with an ``is_error`` result, ``api_error_status: 429``, and reports no reset
time (its ``rate_limit_event`` comes only with a subscription's limiter): the hold backs off
(a base of a few seconds here, through ``TaskRunner(hold_policy=...)``).
``CLAUDE_CODE_MAX_RETRIES=0`` keeps Claude from retrying the 429 itself (with its default
retries a run waited > 300 s).
"""

from __future__ import annotations

import datetime
import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import trio
from _support.agent_clis import GEMINI_MODEL, gemini_env, gemini_executable
from _support.claude_cli import claude_env, claude_executable
from _support.polling import POLL_INTERVAL_S
from _support.scripted_gemini import open_scripted_gemini_model
from _support.scripted_model import (
    ApiError,
    Decide,
    Hold,
    Reply,
    ScriptedModel,
    open_scripted_model,
)
from _support.task_server import Client, Env, all_events, task_server

from mcp_server._tasks._holds import CONTINUE_INSTRUCTIONS, HoldPolicy

pytestmark = pytest.mark.claude_cli

DEADLINE_S = 90.0
POLICY = HoldPolicy(jitter_s=0.5, backoff_base_s=4.0, backoff_max_s=8.0)


def _limit_error() -> ApiError:
    reset = int(datetime.datetime.now(datetime.UTC).timestamp()) + 3
    return ApiError(
        429,
        "rate_limit_error",
        "This request would exceed your account's rate limit.",
        headers={
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": str(reset),
        },
    )


def _daemon_env(model: ScriptedModel, home: pathlib.Path) -> dict[str, str]:
    return dict(
        claude_env(model.base_url, home),
        CLAUDE_PATH=claude_executable(),
        CLAUDE_CODE_MAX_RETRIES="0",
    )


async def _status(client: Client, task_id: str) -> dict[str, Any]:
    return await client.ok("report", id=task_id)


async def _wait_status(client: Client, task_id: str, wanted: Callable[[str], bool]) -> None:
    """Until the task's status is ``wanted``: wait_task while it runs, else poll."""
    with trio.fail_after(DEADLINE_S):
        while not wanted(status := (await _status(client, task_id))["status"]):
            if status in ("in_progress", "input_required"):
                await client.ok("wait_task", id=task_id, timeout_s=2)
            else:
                await trio.sleep(POLL_INTERVAL_S)


async def _statuses(client: Client, task_id: str) -> list[str]:
    return [e["summary"] for e in await all_events(client, task_id) if e["kind"] == "status"]


async def _wait_limited(client: Client, task_id: str) -> None:
    """Until the task's log shows it went ``limited`` (it may have resumed since)."""
    with trio.fail_after(DEADLINE_S):
        # Polling is the point: the task log over MCP offers no event to wait on here.
        while "limited" not in await _statuses(client, task_id):  # noqa: ASYNC110
            await trio.sleep(POLL_INTERVAL_S)


def _texts(body: dict[str, Any]) -> str:
    return json.dumps(body.get("messages", []))


async def _create(env: Env, marker: str) -> str:
    (env.root / marker).mkdir(exist_ok=True)
    created = await env.client.ok(
        "create_task",
        title=marker,
        instructions=f"{marker}: say hello",
        project_dir=marker,
        live=False,
    )
    task_id: str = created["task_id"]
    return task_id


async def test_three_tasks_are_held_together_and_resume_with_their_conversations(
    tmp_path: pathlib.Path,
) -> None:
    """Three tasks limited at once wait on one hold, then resume their sessions together."""
    markers = ["alpha", "beta", "gamma"]
    async with open_scripted_model() as model:
        firsts = {marker: Hold(then=_limit_error()) for marker in markers}
        resumes = {marker: Hold(then=Reply(f"done {marker}")) for marker in markers}
        for marker in markers:
            model.script_for(marker, firsts[marker], resumes[marker])
        env_vars = _daemon_env(model, tmp_path / "home")
        async with task_server(tmp_path, daemon_env=env_vars, hold_policy=POLICY) as env:
            ids = {marker: await _create(env, marker) for marker in markers}
            with trio.fail_after(DEADLINE_S):
                for hold in firsts.values():
                    await hold.reached.wait()
            for hold in firsts.values():
                hold.release()
            for task_id in ids.values():
                await _wait_limited(env.client, task_id)
            sessions = {m: (await _status(env.client, i))["session_id"] for m, i in ids.items()}
            status = await env.client.call("check_status")
            [hold_view] = status["structuredContent"]["result"]["holds"]
            assert hold_view["agent"] == "claude"
            assert hold_view["attempt"] == 1
            with trio.fail_after(DEADLINE_S):
                for hold in resumes.values():
                    await hold.reached.wait()
            for hold in resumes.values():
                hold.release()
            for marker, task_id in ids.items():
                await _wait_status(env.client, task_id, lambda s: s == "waiting")
                task = await _status(env.client, task_id)
                assert task["session_id"] == sessions[marker]
                assert task["report"]["final_text"] == f"done {marker}"
        resumed = [b for b in model.main_requests if CONTINUE_INSTRUCTIONS in _texts(b)]
        assert len(resumed) == len(markers)
        for marker in markers:
            [body] = [b for b in resumed if f"{marker}: say hello" in _texts(b)]
            assert model.unexpected == []
            assert body["messages"][0]["role"] == "user"


async def test_a_hold_survives_a_restart_and_the_task_resumes_after_it(
    tmp_path: pathlib.Path,
) -> None:
    """A server restarted during a hold keeps it: the limited task resumes only after its end."""
    policy = HoldPolicy(jitter_s=0.0, backoff_base_s=8.0, backoff_max_s=8.0)
    async with open_scripted_model() as model:
        resumed_at: list[datetime.datetime] = []

        def resume(body: dict[str, Any]) -> Reply | None:
            if resumed_at:
                return None
            resumed_at.append(datetime.datetime.now(datetime.UTC))
            return Reply("done after the restart")

        model.script_for("delta", _limit_error())
        env_vars = _daemon_env(model, tmp_path / "home")
        async with task_server(tmp_path, daemon_env=env_vars, hold_policy=policy) as env:
            task_id = await _create(env, "delta")
            await _wait_status(env.client, task_id, lambda s: s == "limited")
            session = (await _status(env.client, task_id))["session_id"]
        holds = json.loads((tmp_path / "state" / "holds.json").read_text())
        [saved] = holds["holds"]
        until = datetime.datetime.fromisoformat(saved["until"])
        model.script_for("delta", Decide(resume))
        async with task_server(tmp_path, daemon_env=env_vars, hold_policy=policy) as env:
            assert (await _status(env.client, task_id))["status"] in ("limited", "in_progress")
            await _wait_status(env.client, task_id, lambda s: s == "waiting")
            task = await _status(env.client, task_id)
        assert task["session_id"] == session
        assert task["report"]["final_text"] == "done after the restart"
        assert resumed_at[0] >= until


async def test_end_task_ends_a_limited_task_without_a_run(tmp_path: pathlib.Path) -> None:
    """end_task on a limited task completes it; the model is not called again."""
    policy = HoldPolicy(jitter_s=0.0, backoff_base_s=600.0, backoff_max_s=600.0)
    async with open_scripted_model() as model:
        model.script_for("epsilon", _limit_error())
        env_vars = _daemon_env(model, tmp_path / "home")
        async with task_server(tmp_path, daemon_env=env_vars, hold_policy=policy) as env:
            task_id = await _create(env, "epsilon")
            await _wait_status(env.client, task_id, lambda s: s == "limited")
            calls = len(model.main_requests)
            await env.client.ok("end_task", id=task_id)
            task = await _status(env.client, task_id)
            assert task["status"] == "completed"
        assert len(model.main_requests) == calls


async def test_a_limit_of_claude_holds_claude_tasks_but_not_gemini_tasks(
    tmp_path: pathlib.Path,
) -> None:
    """During claude's hold a new claude task waits queued with the hold's reason; a Gemini task
    (the real Gemini CLI) runs to its end."""
    policy = HoldPolicy(jitter_s=0.0, backoff_base_s=600.0, backoff_max_s=600.0)
    home = tmp_path / "home"
    async with open_scripted_model() as model, open_scripted_gemini_model() as gemini:
        model.script_for("zeta", _limit_error())
        gemini.script(Reply("gemini did it"))
        env_vars = dict(
            _daemon_env(model, home),
            **gemini_env(gemini.base_url, home),
            GEMINI_PATH=gemini_executable(),
        )
        env_vars["HOME"] = str(home)
        async with task_server(tmp_path, daemon_env=env_vars, hold_policy=policy) as env:
            limited_id = await _create(env, "zeta")
            await _wait_status(env.client, limited_id, lambda s: s == "limited")
            waiting_id = await _create(env, "kappa")
            waiting = await _status(env.client, waiting_id)
            assert waiting["status"] == "queued"
            assert waiting["queue_reason"].startswith("usage limit of claude until ")
            (env.root / "theta").mkdir()
            created = await env.client.ok(
                "create_task",
                title="theta",
                instructions="theta: say hello",
                project_dir="theta",
                agent="gemini",
                model=GEMINI_MODEL,
                live=False,
            )
            await _wait_status(env.client, created["task_id"], lambda s: s == "waiting")
            done = await _status(env.client, created["task_id"])
            assert done["report"]["final_text"] == "gemini did it"
            status = (await env.client.call("check_status"))["structuredContent"]["result"]
            [hold] = status["holds"]
            assert (hold["agent"], hold["active"]) == ("claude", True)
            assert set(hold["tasks"]) == {limited_id, waiting_id}
        assert not any("kappa: say hello" in _texts(b) for b in model.main_requests)


async def test_a_live_task_resumes_in_its_live_session(tmp_path: pathlib.Path) -> None:
    """A live (supervised) Claude turn that hits the limit goes limited and resumes by itself."""
    async with open_scripted_model() as model:
        model.script_for("lambda", _limit_error(), Reply("done live"))
        env_vars = _daemon_env(model, tmp_path / "home")
        async with task_server(tmp_path, daemon_env=env_vars, hold_policy=POLICY) as env:
            (env.root / "lambda").mkdir()
            created = await env.client.ok(
                "create_task",
                title="lambda",
                instructions="lambda: say hello",
                project_dir="lambda",
                live=True,
            )
            task_id = created["task_id"]
            assert created["live"] is True
            await _wait_limited(env.client, task_id)
            await _wait_status(env.client, task_id, lambda s: s == "waiting")
            task = await _status(env.client, task_id)
        assert task["report"]["final_text"] == "done live"
        [resumed] = [b for b in model.main_requests if CONTINUE_INSTRUCTIONS in _texts(b)]
        assert "lambda: say hello" in _texts(resumed)


async def test_a_reset_time_a_few_seconds_ahead_is_waited_out(tmp_path: pathlib.Path) -> None:
    """A ``rate_limit_event`` with ``resetsAt`` (the stand-in agent prints the recorded shape):
    the task waits until that time plus jitter, then resumes with the continue turn."""
    policy = HoldPolicy(jitter_s=0.5, backoff_base_s=600.0, backoff_max_s=600.0)
    async with task_server(tmp_path, hold_policy=policy) as env:
        created = await env.client.ok("create_task", title="t", instructions="limit 3", live=False)
        task_id = created["task_id"]
        await _wait_limited(env.client, task_id)
        status = (await env.client.call("check_status"))["structuredContent"]["result"]
        [hold] = status["holds"]
        resets_at = datetime.datetime.fromisoformat(hold["resets_at"])
        await _wait_status(env.client, task_id, lambda s: s == "waiting")
        task = await _status(env.client, task_id)
        starts = [e for e in await all_events(env.client, task_id) if e["kind"] == "run_started"]
    assert task["report"]["final_text"] == "continued"
    assert datetime.datetime.fromisoformat(hold["until"]) >= resets_at
    assert task["limit"] is None
    first, resumed = starts
    assert datetime.datetime.fromisoformat(first["time"]) < resets_at
    assert datetime.datetime.fromisoformat(resumed["time"]) >= resets_at
