"""Budgets through a real server and daemon: per task across turns, per project per day, per
server per day; a start over one waits queued with the reason, a run crossing one says so."""

from __future__ import annotations

import datetime
import functools
import pathlib
from typing import Any

import attrs
import pytest
import trio
from _support.task_server import Client, all_events, task_server, up_client, wait_done

from mcp_server._cli import build_parser
from mcp_server._config import ConfigError, budgets_config
from mcp_server._tasks import Budgets, Ledger, Spending, TaskStore
from mcp_server._tasks._model import Clock, utcnow


def spending(tmp_path: pathlib.Path, **limits: float) -> Spending:
    return Spending(Ledger(tmp_path / "state"), Budgets(**limits))


def test_budget_flags_win_over_the_environment() -> None:
    """--budget-*-day-usd on serve and up, else BUDGET_*_DAY_USD; unset is no limit."""
    environ = {"BUDGET_PROJECT_DAY_USD": "2", "BUDGET_SERVER_DAY_USD": "10"}
    serve = build_parser().parse_args(["serve", "--budget-project-day-usd", "1.5"])
    assert budgets_config(environ, serve) == Budgets(project_day_usd=1.5, server_day_usd=10.0)
    up = build_parser().parse_args(["up", "--budget-server-day-usd", "0"])
    assert budgets_config({}, up) == Budgets(project_day_usd=None, server_day_usd=0.0)


@pytest.mark.parametrize("value", ["-1", "lots", "nan", "inf"])
def test_a_budget_that_is_not_dollars_is_refused(value: str) -> None:
    """A budget that is not a finite number >= 0: an error naming the variable and value."""
    args = build_parser().parse_args(["serve"])
    with pytest.raises(ConfigError, match=f"BUDGET_SERVER_DAY_USD .*got '{value}'"):
        budgets_config({"BUDGET_SERVER_DAY_USD": value}, args)


async def test_up_shows_its_budgets_in_check_status(tmp_path: pathlib.Path) -> None:
    """`coding-agent up --budget-…` reaches the server: check_status lists the limits."""
    flags = ["--budget-project-day-usd", "0.75", "--budget-server-day-usd", "3"]
    async with up_client(tmp_path, tmp_path / "state", flags) as (_, client):
        budgets = (await client.ok("check_status"))["budgets"]
    assert budgets["project_day_usd"] == 0.75
    assert budgets["server_day_usd"] == 3
    assert budgets["server_spent_today_usd"] == 0
    assert budgets["timezone"] == "UTC"


async def test_a_run_crossing_a_budget_says_which_and_by_how_much(
    tmp_path: pathlib.Path,
) -> None:
    """The run ends its turn; run_finished and the status event name the budget and the excess."""
    async with task_server(tmp_path, spending=spending(tmp_path, project_day_usd=0.3)) as env:
        task_id = (await env.client.ok("create_task", title="t", instructions="cost 0.5"))[
            "task_id"
        ]
        task = await wait_done(env.client, task_id)
        events = await all_events(env.client, task_id)

    assert task["status"] == "waiting"
    finished = next(e for e in events if e["kind"] == "run_finished")
    status = [e for e in events if e["kind"] == "status"][-1]
    for event in (finished, status):
        assert "budget crossed: the project's daily budget of $0.3 by $0.2" in event["summary"]
        [crossed] = event["data"]["budget_crossed"]
        assert crossed["budget"] == "project_day"
        assert crossed["over_by_usd"] == pytest.approx(0.2)
        assert crossed["spent_usd"] == 0.5


@attrs.define
class ShiftedWallClock:
    """The real wall clock moved to a time a test chooses (it keeps running from there)."""

    offset: datetime.timedelta = datetime.timedelta(0)

    def set(self, moment: datetime.datetime) -> None:
        self.offset = moment - utcnow()

    def now(self) -> datetime.datetime:
        return utcnow() + self.offset


NOON = datetime.datetime(2026, 3, 14, 12, 0, tzinfo=datetime.UTC)
MIDNIGHT = datetime.datetime(2026, 3, 15, tzinfo=datetime.UTC)


async def until_settled(client: Client, task_id: str) -> dict[str, Any]:
    """wait_task until the task's turn ran (neither queued nor in flight)."""
    with trio.fail_after(60):
        while True:
            task = await client.ok("wait_task", id=task_id, timeout_s=20)
            if task["status"] not in ("queued", "in_progress"):
                return task


async def test_a_project_day_budget_queues_the_next_start_until_the_next_utc_day(
    tmp_path: pathlib.Path,
) -> None:
    """Over its day budget a project's next task waits queued with the reason (another project
    still starts); at 00:00 UTC it starts by itself."""
    (tmp_path / "root" / "other").mkdir(parents=True)
    wall = ShiftedWallClock()
    wall.set(NOON)
    store = functools.partial(TaskStore, tmp_path / "state", clock=Clock(wall=wall.now))
    limits = spending(tmp_path, project_day_usd=0.3)
    async with task_server(tmp_path, store=store, spending=limits) as env:
        first = await env.client.ok("create_task", title="t", instructions="cost 0.5")
        await until_settled(env.client, first["task_id"])
        held = await env.client.ok("create_task", title="t", instructions="hello")
        assert held["status"] == "queued"
        assert held["queue_reason"] == (
            "budget: project (the workspace) spent $0.5 today (UTC 2026-03-14) of its $0.3 a "
            "day; starts after 2026-03-15T00:00:00+00:00"
        )
        other = await env.client.ok(
            "create_task", title="t", instructions="hello", project_dir="other"
        )
        assert (await until_settled(env.client, other["task_id"]))["status"] == "waiting"
        assert env.runner.get(held["task_id"]).status == "queued"

        wall.set(MIDNIGHT - datetime.timedelta(seconds=1))
        env.runner.queue.wake()  # the clock jumped: the queue sleeps until the new midnight
        done = await until_settled(env.client, held["task_id"])
        assert done["status"] == "waiting"
        started = env.runner.get(held["task_id"]).report
        assert started is not None
        assert started.started_at >= MIDNIGHT


async def test_a_server_day_budget_queues_every_project(tmp_path: pathlib.Path) -> None:
    """Over the server's day budget no project's task starts; check_status says so."""
    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "root" / "b").mkdir(parents=True)
    async with task_server(tmp_path, spending=spending(tmp_path, server_day_usd=0.3)) as env:
        first = await env.client.ok(
            "create_task", title="t", instructions="cost 0.5", project_dir="a"
        )
        await until_settled(env.client, first["task_id"])
        held = await env.client.ok("create_task", title="t", instructions="hello", project_dir="b")
        assert held["status"] == "queued"
        assert held["queue_reason"].startswith("budget: the server spent $0.5 today (UTC ")
        assert held["queue_reason"].endswith("of its $0.3 a day; starts after " + midnight())
        status = await env.client.ok("check_status")
        assert status["queue"]["by_reason"] == {"budget": 1}
        budgets = status["budgets"]
        assert budgets["server_day_reached"] is True
        assert budgets["server_spent_today_usd"] == 0.5
        assert budgets["resets_at"] == midnight()


def midnight() -> str:
    today = utcnow().date() + datetime.timedelta(days=1)
    return datetime.datetime(today.year, today.month, today.day, tzinfo=datetime.UTC).isoformat()


async def test_max_budget_usd_holds_across_turns(tmp_path: pathlib.Path) -> None:
    """A task's max_budget_usd counts all its runs: the next run gets what is left, the run that
    crosses it says so, and the follow-up after it waits queued with the reason."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok(
            "create_task", title="t", instructions="cost 0.5", max_budget_usd=0.6
        )
        task_id = created["task_id"]
        await until_settled(env.client, task_id)
        await env.client.ok("update_task", id=task_id, instructions="cost 0.5")
        await until_settled(env.client, task_id)
        events = await all_events(env.client, task_id)
        starts = [e["data"]["argv"] for e in events if e["kind"] == "run_started"]
        assert "--max-budget-usd=0.6" in starts[0]
        assert "--max-budget-usd=0.1" in starts[1]
        finished = [e for e in events if e["kind"] == "run_finished"][-1]
        assert "budget crossed: the task's max_budget_usd of $0.6 by $0.4" in finished["summary"]

        held = await env.client.ok("update_task", id=task_id, instructions="hello")
        assert held["status"] == "queued"
        assert held["queue_reason"] == (
            f"budget: task {task_id} spent $1 of its max_budget_usd $0.6 "
            "(end_task it, or create a new task)"
        )
        report = await env.client.ok("report", id=task_id)
        assert report["usage"]["cost_usd"] == 1.0
        assert report["usage"]["budget_reached"]["budget"] == "task"
        assert (await env.client.ok("end_task", id=task_id))["status"] == "completed"
