"""``coding-agent up --daemon``: up's own daemon is the host ``default``, and the ``--daemon``
hosts are beside it (a real ``up`` subprocess and a second real daemon)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from _support.agent_up import base_env
from _support.daemon import running_daemon
from _support.task_server import all_events, install_agent, up_client, wait_done


async def test_up_with_a_daemon_flag_serves_both_hosts(tmp_path: pathlib.Path) -> None:
    """A task in the other daemon's root runs there (host build); one in up's root on up's own
    daemon (host default); check_status lists both."""
    build_root = tmp_path / "build-src"
    (build_root / "p").mkdir(parents=True)
    agent = install_agent(tmp_path / "bin-build")
    async with running_daemon(roots=[build_root], env={"CLAUDE_PATH": agent}) as build:
        token_file = tmp_path / "build.token"
        token_file.write_text(build.token + "\n")
        spec = f"build=127.0.0.1:{build.port},token_file={token_file},roots={build_root}"
        async with up_client(tmp_path, tmp_path / "state", ["--daemon", spec]) as (_, client):
            there = await client.ok(
                "create_task", title="t", instructions="hello", project_dir=str(build_root / "p")
            )
            here = await client.ok("create_task", title="t", instructions="hello")
            assert (there["host"], here["host"]) == ("build", "default")
            for task in (there, here):
                assert (await wait_done(client, task["task_id"]))["status"] == "waiting"
            started = [
                e for e in await all_events(client, there["task_id"]) if e["kind"] == "run_started"
            ]
            assert started[0]["data"]["argv"][0] == agent
            hosts = (await client.ok("check_status"))["hosts"]
            assert [(h["name"], h["healthy"]) for h in hosts] == [
                ("default", True),
                ("build", True),
            ]


def test_up_refuses_a_daemon_named_default(tmp_path: pathlib.Path) -> None:
    """``default`` is up's own daemon: a --daemon of that name exits 2 saying so."""
    done = subprocess.run(
        [sys.executable, "-m", "mcp_server", "up", "--root", str(tmp_path), "--daemon",
         "default=127.0.0.1:9"],
        env=base_env(STATE_PATH=str(tmp_path / "state")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "expected a name other than up's own 'default' @ --daemon" in done.stderr
