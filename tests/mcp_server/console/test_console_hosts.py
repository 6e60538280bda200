"""The task CLI and several hosts: ``new --host`` names the host, ``show`` prints a task's host."""

from __future__ import annotations

import json
import pathlib

from _support.console_cli import console_world

from mcp_server._console._render import Style, task_details


async def test_new_with_a_host_sends_it_and_an_unknown_one_exits_1(tmp_path: pathlib.Path) -> None:
    """``new --host default`` creates the task there; ``--host nope`` exits 1 with the server's
    message listing the configured hosts."""
    async with console_world(tmp_path) as world:
        created = await world.cli("new", "--title", "T", "hello", "--host", "default")
        assert created.code == 0, created
        task_id = created.out.split()[0]
        shown = json.loads((await world.cli("show", task_id, "--json")).out)
        assert shown["host"] == "default"
        refused = await world.cli("new", "--title", "T", "hello", "--host", "nope")
    assert (refused.code, refused.out) == (1, "")
    assert refused.err == (
        "coding-agent new: expected one of the configured hosts (default), got 'nope' @ host "
        "(unknown_host)\n"
    )


def test_show_prints_a_host_other_than_default() -> None:
    """``show`` has a ``host:`` line for a task on a named host, none for ``default``."""
    view = {
        "task_id": "t-1",
        "title": "T",
        "status": "waiting",
        "agent": "claude",
        "project_dir": "p",
        "isolation": "none",
        "turns": 1,
        "event_count": 3,
        "created_at": None,
        "updated_at": None,
    }
    lines = task_details(view | {"host": "laptop"}, Style())
    assert lines[3:6] == ["project:    p", "host:       laptop", "isolation:  none"]
    assert "host:       default" not in task_details(view | {"host": "default"}, Style())
