"""The cost ledger through a real server and daemon: each run recorded once, totals per project,
day and agent, ``agent://usage`` and ``report``, and the file across a restart and a torn line."""

from __future__ import annotations

import datetime
import json
import pathlib

from _support.task_server import task_server, wait_done

from mcp_server._tasks import Ledger, Spending, normalize_usage
from mcp_server._tasks._ledger import LEDGER_FILE


def ledger_lines(state: pathlib.Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (state / LEDGER_FILE).read_bytes().splitlines()]


async def test_each_run_is_recorded_once_with_its_tokens(tmp_path: pathlib.Path) -> None:
    """Two turns: two ledger lines keyed by task and run, tokens normalised, raw usage kept."""
    async with task_server(tmp_path) as env:
        task_id = (await env.client.ok("create_task", title="t", instructions="cost 0.25"))[
            "task_id"
        ]
        await wait_done(env.client, task_id)
        await env.client.ok("update_task", id=task_id, instructions="cost 0.5")
        await wait_done(env.client, task_id)

        lines = ledger_lines(env.state)
        assert [(line["task_id"], line["run"]) for line in lines] == [(task_id, 1), (task_id, 2)]
        assert [line["cost_usd"] for line in lines] == [0.25, 0.5]
        assert lines[0]["tokens"] == {
            "input": 12,
            "output": 34,
            "cache_read": 56,
            "cache_write": 78,
        }
        assert lines[0]["usage"]["cache_read_input_tokens"] == 56
        assert lines[0]["agent"] == "claude"
        assert lines[0]["project"] == ""

        # The same run reported again (a finish path run twice) is not counted twice.
        task = env.runner.get(task_id)
        assert task.report is not None
        assert await env.runner.spending.run_finished(task, task.report) == []
        assert len(ledger_lines(env.state)) == 2


async def test_totals_per_project_day_and_agent(tmp_path: pathlib.Path) -> None:
    """agent://usage and report sum the runs per project today and per agent this month."""
    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "root" / "b").mkdir(parents=True)
    async with task_server(tmp_path) as env:
        ids = []
        for project, cost in (("a", "0.25"), ("b", "0.5"), ("a", "1")):
            created = await env.client.ok(
                "create_task", title="t", instructions=f"cost {cost}", project_dir=project
            )
            ids.append(created["task_id"])
            await wait_done(env.client, created["task_id"])

        usage = await env.client.read("agent://usage")
        today = datetime.datetime.now(datetime.UTC).date().isoformat()
        assert usage["day"] == today
        assert usage["timezone"] == "UTC"
        projects = {row["project"]: row for row in usage["projects_today"]}
        assert projects["a"]["cost_usd"] == 1.25
        assert projects["a"]["runs"] == 2
        assert projects["b"]["cost_usd"] == 0.5
        assert projects["a"]["cache_read_tokens"] == 112
        assert usage["today"]["cost_usd"] == 1.75
        assert usage["agents_this_month"] == [
            {"agent": "claude"} | usage["this_month"] | {"cost_usd": 1.75}
        ]
        days = usage["projects_by_day_this_month"]
        assert {(row["day"], row["project"]) for row in days} == {(today, "a"), (today, "b")}

        summary = await env.client.ok("report")
        assert summary["usage"]["today"]["cost_usd"] == 1.75
        one = await env.client.ok("report", id=ids[2])
        assert one["usage"]["cost_usd"] == 1.0
        assert one["usage"]["runs"] == 1
        status = await env.client.ok("check_status")
        assert status["usage_today"]["cost_usd"] == 1.75


async def test_ledger_survives_a_restart_and_a_torn_line(tmp_path: pathlib.Path) -> None:
    """After a restart the totals are read back; a torn last line goes to quarantine."""
    async with task_server(tmp_path) as env:
        task_id = (await env.client.ok("create_task", title="t", instructions="cost 0.25"))[
            "task_id"
        ]
        await wait_done(env.client, task_id)
    ledger = tmp_path / "state" / LEDGER_FILE
    whole = ledger.read_bytes()
    with ledger.open("ab") as handle:  # a crash mid-append leaves part of a line
        handle.write(b'{"task_id": "cut sh')

    async with task_server(tmp_path) as env:
        usage = await env.client.read("agent://usage")
        assert usage["today"]["cost_usd"] == 0.25
        assert ledger.read_bytes() == whole
        torn = list((tmp_path / "state" / "quarantine").glob(LEDGER_FILE + ".torn.*"))
        assert [path.read_bytes() for path in torn] == [b'{"task_id": "cut sh']
        # The task's own totals came back too, and its next run is run 2 (not a duplicate).
        assert (await env.client.ok("report", id=task_id))["usage"]["cost_usd"] == 0.25
        await env.client.ok("update_task", id=task_id, instructions="cost 0.5")
        await wait_done(env.client, task_id)
        assert [line["run"] for line in ledger_lines(env.state)] == [1, 2]
        assert (await env.client.read("agent://usage"))["today"]["cost_usd"] == 0.75


async def test_an_unreadable_line_is_set_aside_and_the_rest_kept(tmp_path: pathlib.Path) -> None:
    """A corrupt line amid good ones: quarantined, the entries around it all counted."""
    async with task_server(tmp_path) as env:
        for cost in ("0.25", "0.5"):
            created = await env.client.ok("create_task", title="t", instructions=f"cost {cost}")
            await wait_done(env.client, created["task_id"])
    ledger = tmp_path / "state" / LEDGER_FILE
    first, second = ledger.read_bytes().splitlines(keepends=True)
    ledger.write_bytes(first + b'{"not": "an entry"}\n' + second)

    spending = Spending(Ledger(tmp_path / "state"))
    async with task_server(tmp_path, spending=spending) as env:
        assert (await env.client.read("agent://usage"))["today"]["cost_usd"] == 0.75
        assert ledger.read_bytes() == first + second
        bad = list((tmp_path / "state" / "quarantine").glob(LEDGER_FILE + ".unreadable.*"))
        assert [path.read_bytes() for path in bad] == [b'{"not": "an entry"}\n']


def test_usage_of_each_agent_is_normalised() -> None:
    """Claude's, Codex's and Gemini's token names map to input/output/cache read/cache write."""
    claude = normalize_usage(
        {
            "input_tokens": 5,
            "output_tokens": 6,
            "cache_read_input_tokens": 7,
            "cache_creation_input_tokens": 8,
            "server_tool_use": {"web_search_requests": 0},
        }
    )
    codex = normalize_usage(
        {
            "input_tokens": 9,
            "cached_input_tokens": 4,
            "output_tokens": 2,
            "cache_write_input_tokens": 1,
        }
    )
    gemini = normalize_usage(
        {"total_tokens": 339, "input_tokens": 331, "output_tokens": 8, "cached": 3}
    )
    assert (claude.input, claude.output, claude.cache_read, claude.cache_write) == (5, 6, 7, 8)
    assert (codex.input, codex.output, codex.cache_read, codex.cache_write) == (9, 2, 4, 1)
    assert (gemini.input, gemini.output, gemini.cache_read, gemini.cache_write) == (331, 8, 3, None)
    assert normalize_usage(None).input is None


async def test_an_entry_the_disk_refused_is_counted_and_written_later(
    tmp_path: pathlib.Path,
) -> None:
    """An append that fails keeps the entry counted (shown unsaved) and writes it with the next."""
    async with task_server(tmp_path) as env:
        blocker = env.state / LEDGER_FILE
        blocker.mkdir()  # the file's place taken: the append fails (EISDIR)
        first = await env.client.ok("create_task", title="t", instructions="cost 0.25")
        await wait_done(env.client, first["task_id"])
        usage = await env.client.read("agent://usage")
        assert usage["today"]["cost_usd"] == 0.25
        assert usage["ledger"]["unsaved_entries"] == 1
        assert env.runner.spending.ledger.fault is not None

        blocker.rmdir()
        second = await env.client.ok("create_task", title="t", instructions="cost 0.5")
        await wait_done(env.client, second["task_id"])
        lines = ledger_lines(env.state)
        assert [line["task_id"] for line in lines] == [first["task_id"], second["task_id"]]
        assert (await env.client.read("agent://usage"))["ledger"]["unsaved_entries"] == 0
