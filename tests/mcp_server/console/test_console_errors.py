"""The task CLI finds ``coding-agent up`` by itself, and says clearly why it cannot: exit 3 for
no server, an unreachable one or a refused token, 1 for an unknown task, 2 for bad arguments."""

from __future__ import annotations

import json
import pathlib
import re
import stat

import pytest
from _support.console_cli import cli_env, console_world, run_cli


async def test_up_records_its_url_beside_the_token_0600(tmp_path: pathlib.Path) -> None:
    """While ``up`` runs, its state dir holds ``mcp.url`` (its MCP URL, mode 0600)."""
    async with console_world(tmp_path) as world:
        url_file = world.state / "mcp.url"
        assert url_file.read_text() == world.up.url + "\n"
        assert stat.S_IMODE(url_file.stat().st_mode) == 0o600


async def test_up_removes_its_url_on_exit(tmp_path: pathlib.Path) -> None:
    """After ``up`` exits the URL file is gone, and the CLI says how to start a server (3)."""
    async with console_world(tmp_path) as world:
        pass
    assert not (world.state / "mcp.url").exists()
    ran = await world.cli("tasks")
    assert (ran.code, ran.out) == (3, "")
    assert ran.err == (
        "coding-agent tasks: no server URL: pass --url, set CODING_AGENT_URL, or start "
        f"`coding-agent up` (it records its URL in {world.state / 'mcp.url'})\n"
    )


async def test_no_arguments_needed_after_up(tmp_path: pathlib.Path) -> None:
    """With only the user data dir known, ``tasks`` reaches ``up`` and lists its task."""
    async with console_world(tmp_path) as world:
        created = await world.cli("new", "--title", "Listed", "hello")
        task_id = created.out.split()[0]
        await world.cli("logs", task_id, "-f")
        ran = await world.cli("tasks")
        created_at = json.loads((await world.cli("show", task_id, "--json")).out)["created_at"]
    assert (ran.code, ran.err) == (0, "")
    when = f"{created_at[:10]} {created_at[11:19]}"
    assert ran.out.splitlines() == [
        f"{'ID':<36}  STATUS   AGENT   TURNS  CREATED              PROJECT  TITLE",
        f"{task_id}  waiting  claude  1      {when}  -        Listed",
    ]


async def test_flags_and_env_reach_a_server_without_state(tmp_path: pathlib.Path) -> None:
    """``--url`` and ``MCP_AUTH_TOKEN`` reach the server from a CLI that knows no state dir."""
    async with console_world(tmp_path) as world:
        env = cli_env(tmp_path / "elsewhere", MCP_AUTH_TOKEN=world.up.token)
        ran = await run_cli("tasks", "--url", world.up.url, env=env)
    assert (ran.code, ran.out, ran.err) == (0, "no tasks\n", "")


async def test_wrong_token_exits_3(tmp_path: pathlib.Path) -> None:
    """A token the server refuses: exit 3, one line naming the URL and where tokens come from."""
    async with console_world(tmp_path) as world:
        ran = await world.cli("tasks", "--token", "not-the-token")
    assert (ran.code, ran.out) == (3, "")
    assert ran.err == (
        f"coding-agent tasks: the server at {world.up.url} refused the bearer token (HTTP 401); "
        "pass --token, set MCP_AUTH_TOKEN, or print the server's with `coding-agent token`\n"
    )


async def test_server_down_exits_3(tmp_path: pathlib.Path) -> None:
    """An ``up`` killed outright leaves its URL file; the CLI then says it cannot reach it (3)."""
    async with console_world(tmp_path) as world:
        world.up.kill()
        await world.up.process.wait()
        ran = await world.cli("tasks")
    assert (ran.code, ran.out) == (3, "")
    assert ran.err.startswith(
        f"coding-agent tasks: cannot reach the MCP server at {world.up.url}: "
    ), ran.err
    assert len(ran.err.splitlines()) == 1


@pytest.mark.parametrize(
    "command",
    [["show", "nope"], ["logs", "nope"], ["send", "nope", "hello"], ["end", "nope"]],
)
async def test_unknown_task_exits_1_naming_it(tmp_path: pathlib.Path, command: list[str]) -> None:
    """A task id the server does not know: exit 1, one line naming the id."""
    async with console_world(tmp_path) as world:
        ran = await world.cli(*command)
    assert (ran.code, ran.out) == (1, "")
    assert ran.err == f"coding-agent {command[0]}: no task with id 'nope' (task_not_found)\n"


async def test_busy_task_refuses_a_follow_up_with_exit_1(tmp_path: pathlib.Path) -> None:
    """``send`` while the task's run is in flight: exit 1 with the server's ``busy`` message."""
    async with console_world(tmp_path) as world:
        task_id = (await world.cli("new", "--title", "Hang", "hang")).out.split()[0]
        ran = await world.cli("send", task_id, "hello", "--json")
    assert ran.code == 1
    assert ran.err == (
        f"coding-agent send: task {task_id} is still running its last turn: wait for it "
        "(wait_task) and retry (busy)\n"
    )
    assert '"code":"busy"' in ran.out


async def test_failed_run_exits_1(tmp_path: pathlib.Path) -> None:
    """``new --wait`` whose run fails ends with the failed status and exit 1."""
    async with console_world(tmp_path) as world:
        ran = await world.cli("new", "--title", "Fails", "exit 4", "--wait")
    assert ran.code == 1
    assert ran.out.splitlines()[-1].endswith(" run ended: status failed")


@pytest.mark.parametrize(
    "arguments",
    [
        ["new", "do it"],
        ["new", "--title", "", "do it"],
        ["logs"],
        ["merge", "t-1", "--strategy", "octopus"],
        ["new", "--title", "T", "--agent", "cursor", "do it"],
        ["tasks", "--bogus"],
    ],
)
async def test_bad_arguments_exit_2(tmp_path: pathlib.Path, arguments: list[str]) -> None:
    """Bad arguments: exit 2 with argparse's usage and the reason, before any server is asked."""
    ran = await run_cli(*arguments, env=cli_env(tmp_path))
    assert (ran.code, ran.out) == (2, "")
    assert ran.err.startswith("usage: coding-agent ")
    assert re.match(r"coding-agent( \w+)?: error: ", ran.err.splitlines()[-1]), ran.err
