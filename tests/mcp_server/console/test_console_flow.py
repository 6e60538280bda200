"""The task CLI's whole flow against a real ``coding-agent up`` and the stand-in agent: new,
logs -f, send, show, end, with exact piped (plain) output and with ``--json``."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

from _support.console_cli import World, console_world

ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def event_line(event: dict[str, Any]) -> str:
    """An event as ``logs`` prints it piped: seq right-aligned in 5, HH:MM:SS, kind in 12."""
    return f"{event['seq']:>5} {event['time'][11:19]} {event['kind']:<12} {event['summary']}"


async def events(world: World, task_id: str) -> list[dict[str, Any]]:
    ran = await world.cli("logs", task_id, "--json")
    assert ran.code == 0, ran
    return [json.loads(line) for line in ran.out.splitlines()]


async def test_plain_flow_new_logs_send_show_end(tmp_path: pathlib.Path) -> None:
    """Piped, every command prints exactly its documented plain lines (no escape codes)."""
    async with console_world(tmp_path) as world:
        created = await world.cli("new", "--title", "Say hi", "hello")
        assert created.code == 0, created
        found = re.fullmatch(rf"({ID}) created: status in_progress\n", created.out)
        assert found, created.out
        task_id = found[1]

        followed = await world.cli("logs", task_id, "-f")
        first = await events(world, task_id)
        assert [e["kind"] for e in first] == [
            "turn",
            "run_started",
            "agent",
            "agent",
            "agent",
            "run_finished",
            "status",
        ]
        assert first[3]["summary"] == f"text: hello from {world.root}"
        assert followed.out == "".join(
            [*(event_line(e) + "\n" for e in first), f"{task_id} run ended: status waiting\n"]
        )
        assert (followed.code, followed.err) == (0, "")

        sent = await world.cli("send", task_id, "lines 2")
        assert (sent.code, sent.out) == (0, f"{task_id} follow-up sent: status in_progress\n")
        assert (await world.cli("logs", task_id, "-f")).code == 0

        shown = await world.cli("show", task_id)
        view = json.loads((await world.cli("show", task_id, "--json")).out)
        report = view["report"]
        assert shown.out.splitlines() == [
            f"{task_id}  Say hi",
            "status:     waiting",
            "agent:      claude",
            "project:    -",
            "isolation:  none",
            "turns:      2",
            f"events:     {view['event_count']}",
            f"created:    {view['created_at'][:10]} {view['created_at'][11:19]}",
            f"updated:    {view['updated_at'][:10]} {view['updated_at'][11:19]}",
            "instructions:",
            "  hello",
            "  lines 2",
            f"last run:   outcome success, cost $0.0100, agent turns 1, "
            f"{report['duration_s']:.1f} s",
            "final text: done",
        ]

        ended = await world.cli("end", task_id)
        assert (ended.code, ended.out, ended.err) == (0, f"{task_id} ended: status completed\n", "")
        assert "\x1b" not in created.out + followed.out + shown.out + ended.out


async def test_json_flow_new_logs_send_show_end(tmp_path: pathlib.Path) -> None:
    """With ``--json`` every command prints JSON: the task, or one event per line."""
    async with console_world(tmp_path) as world:
        created = json.loads((await world.cli("new", "--title", "Say hi", "hello", "--json")).out)
        assert (created["title"], created["status"], created["agent"]) == (
            "Say hi",
            "in_progress",
            "claude",
        )
        task_id = created["task_id"]

        followed = await world.cli("logs", task_id, "-f", "--json")
        lines = [json.loads(line) for line in followed.out.splitlines()]
        assert [e["seq"] for e in lines] == list(range(1, 8))
        assert (lines[-1]["kind"], lines[-1]["summary"]) == ("status", "waiting")

        sent = await world.cli("send", task_id, "hello", "--wait", "--json")
        task, *turn = [json.loads(line) for line in sent.out.splitlines()]
        assert (task["task_id"], task["status"]) == (task_id, "in_progress")
        assert (turn[0]["seq"], turn[0]["summary"]) == (8, "turn 2: hello")
        assert (turn[-1]["kind"], turn[-1]["summary"], sent.code) == ("status", "waiting", 0)
        show = json.loads((await world.cli("show", task_id, "--json")).out)
        assert (show["status"], show["turns"], show["instructions"]) == (
            "waiting",
            2,
            ["hello", "hello"],
        )
        assert show["report"]["outcome"] == "success"

        ended = json.loads((await world.cli("end", task_id, "--json")).out)
        assert (ended["task_id"], ended["status"]) == (task_id, "completed")


async def test_logs_reads_every_page(tmp_path: pathlib.Path) -> None:
    """``logs`` follows the log's pages (200 events each) to its end: every seq, in order."""
    async with console_world(tmp_path) as world:
        created = await world.cli("new", "--title", "Chatty", "lines 450", "--wait")
        assert created.code == 0, created
        task_id = created.out.split()[0]
        listed = await world.cli("logs", task_id)
    seqs = [int(line.split()[0]) for line in listed.out.splitlines()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) > 450
    assert listed.out.splitlines()[-1].endswith(" status       waiting")


async def test_tasks_filters_by_status(tmp_path: pathlib.Path) -> None:
    """``tasks --status`` lists only tasks in those statuses (through agent://tasks?status=);
    an unknown status is an error naming the statuses there are."""
    async with console_world(tmp_path) as world:
        created = await world.cli("new", "--title", "Say hi", "hello")
        found = re.fullmatch(rf"({ID}) created: status in_progress\n", created.out)
        assert found, created.out
        assert (await world.cli("logs", found[1], "-f")).code == 0
        waiting = await world.cli("tasks", "--status", "waiting,failed")
        assert waiting.code == 0, waiting
        assert any(line.startswith(found[1]) for line in waiting.out.splitlines())
        none = await world.cli("tasks", "--status", "failed")
        assert (none.code, none.out) == (0, "no tasks\n")
        bad = await world.cli("tasks", "--status", "nope")
        assert bad.code != 0
        assert "expected statuses among" in bad.err
