"""The task CLI on a pseudo-terminal: colours, a spinner while the run goes on, the log followed
live to the run's end; ``NO_COLOR`` and Ctrl-C."""

from __future__ import annotations

import json
import pathlib
import re
import signal

from _support.console_cli import World, cli_on_a_terminal, console_world

from mcp_server._console._terminal import FRAMES

ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
YELLOW_IN_PROGRESS = "\x1b[33min_progress\x1b[0m"


async def created_id(terminal_text: str) -> str:
    found = re.search(rf"({ID}) created", terminal_text)
    assert found, terminal_text
    return found[1]


async def hanging_task(world: World) -> str:
    """A task whose agent runs until it is stopped (after printing its pids)."""
    ran = await world.cli("new", "--title", "Hang", "hang")
    assert ran.code == 0, ran
    return ran.out.split()[0]


async def test_live_view_spins_in_colour_and_follows_to_the_end(tmp_path: pathlib.Path) -> None:
    """On a terminal ``new --wait`` paints the status, spins while the agent runs, prints its
    output as it comes and stops when the run ends."""
    async with console_world(tmp_path) as world:
        async with cli_on_a_terminal(
            "new", "--title", "Hang", "hang", "--wait", env=world.env()
        ) as terminal:
            await terminal.shows(YELLOW_IN_PROGRESS, "the status in colour", raw=True)
            await terminal.shows("text: pids ", "the agent's output while it runs")
            await terminal.shows(f"{FRAMES[2]} in progress", "a spinner frame")
            task_id = await created_id(terminal.text)
            ended = await world.cli("end", task_id)
            assert ended.code == 0, ended
            assert await terminal.finish() == 0, terminal.text[-3000:]
        plain = terminal.plain()
        assert "run_finished run finished: cancelled (run stopped: ended by the client)" in plain
        # The task's status when the follower looked: the run's cancel, or already end's close.
        assert re.search(rf"{task_id} run ended: status (cancelled|completed)\r\n$", plain)
        assert plain.index("text: pids ") < plain.index("run ended")


async def test_no_color_turns_colours_off_but_keeps_the_spinner(tmp_path: pathlib.Path) -> None:
    """With ``NO_COLOR`` set, the terminal gets no colour codes, still a spinner."""
    async with console_world(tmp_path) as world:
        task_id = await hanging_task(world)
        async with cli_on_a_terminal(
            "logs", task_id, "-f", env=world.env(NO_COLOR="1")
        ) as terminal:
            await terminal.shows(f"{FRAMES[2]} in progress", "a spinner frame")
            await world.cli("end", task_id)
            assert await terminal.finish() == 0, terminal.text[-3000:]
        assert re.search(r"\x1b\[[0-9;]*m", terminal.text) is None, terminal.text[-3000:]
        assert "text: pids " in terminal.text


async def test_ctrl_c_stops_following_with_exit_130(tmp_path: pathlib.Path) -> None:
    """Ctrl-C while following prints one line (no traceback) and exits 130; the task runs on."""
    async with console_world(tmp_path) as world:
        task_id = await hanging_task(world)
        async with cli_on_a_terminal("logs", task_id, "-f", env=world.env()) as terminal:
            await terminal.shows(f"{FRAMES[2]} in progress", "a spinner frame")
            terminal.process.send_signal(signal.SIGINT)
            assert await terminal.finish() == 130
        assert "coding-agent logs: interrupted" in terminal.plain()
        assert "Traceback" not in terminal.text
        shown = await world.cli("show", task_id)
        assert "status:     in_progress" in shown.out


async def test_json_on_a_terminal_is_plain_json(tmp_path: pathlib.Path) -> None:
    """``--json`` on a terminal prints bare JSON: no colours, no spinner."""
    async with console_world(tmp_path) as world:
        await world.cli("new", "--title", "Say hi", "hello")
        async with cli_on_a_terminal("tasks", "--json", env=world.env()) as terminal:
            assert await terminal.finish() == 0
    assert "\x1b" not in terminal.text
    assert json.loads(terminal.text)["tasks"][0]["title"] == "Say hi"
