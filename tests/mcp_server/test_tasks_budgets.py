"""Budgets through a real server and daemon: per task across turns, per project per day, per
server per day; a start over one waits queued with the reason, a run crossing one says so."""

from __future__ import annotations

import pathlib

import pytest
from _support.task_server import all_events, task_server, up_client, wait_done

from mcp_server._cli import build_parser
from mcp_server._config import ConfigError, budgets_config
from mcp_server._tasks import Budgets, Ledger, Spending


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
