"""End to end: the official MCP SDK client, ``coding-agent up``, the real Claude Code CLI.

The model is scripted on loopback. Every run's environment carries a marker variable, so
"nothing of the run is left" is checked by scanning ``/proc/*/environ`` for it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pathlib
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
from _support import procs
from _support.agent_up import Up, coding_agent_up, sdk_client
from _support.claude_cli import claude_env, claude_executable
from _support.polling import POLL_INTERVAL_S
from _support.polling import eventually as _eventually
from _support.scripted_model import (
    BashCall,
    Hold,
    Reply,
    ScriptedModel,
    ToolCall,
)
from mcp import Client
from mcp.types import TextResourceContents

pytestmark = pytest.mark.claude_cli

MARKER = "CODING_AGENT_TEST_RUN"
DEADLINE_S = 90.0
# The real CLI on a loaded machine: a longer wait than the suite's default.
eventually = functools.partial(_eventually, timeout=DEADLINE_S)
# The Bash tool's tree: two sleeps in the tool's own group (Claude ends those itself on SIGTERM)
# and an escapee: a new session, orphaned at once (its parent is the subreaper `up`, not Claude),
# ignoring SIGTERM. Claude's cleanup cannot see it; only the daemon's run-marker net ends it.
TREE_SCRIPT = """\
sh -c 'trap "" TERM; exec sleep 3001' &
sleep 3002 &
(setsid sh -c 'trap "" TERM; echo $$ > escaped.pid.tmp; mv escaped.pid.tmp escaped.pid; \
exec sleep 3003' </dev/null >/dev/null 2>&1 &)
wait
"""


@attrs.frozen
class World:
    state: pathlib.Path
    root: pathlib.Path
    env: dict[str, str]
    marker: str


@pytest.fixture(scope="session")
def claude() -> str:
    """The pinned Claude Code binary (installed on first use)."""
    return claude_executable()


@pytest.fixture
def world(tmp_path: pathlib.Path, claude: str, model: ScriptedModel) -> World:
    """A root, a state dir and the environment that runs Claude against the scripted model."""
    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    settings = {"permissions": {"allow": ["Bash(sh tree.sh)"]}}
    (home / ".claude" / "settings.json").write_text(json.dumps(settings))
    marker = uuid.uuid4().hex
    env = claude_env(model.base_url, home) | {"CLAUDE_PATH": claude, MARKER: marker}
    return World(tmp_path / "state", root, env, marker)


def marked_processes(marker: str, server: Up | None = None) -> list[tuple[int, str]]:
    """Live processes whose environment carries ``marker`` (not zombies), but the server's."""
    return procs.marked_processes(
        MARKER, marker, exclude=() if server is None else {server.process.pid}
    )


async def ok(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its ``result``."""
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result
    assert result.structured_content is not None
    value: dict[str, Any] = result.structured_content["result"]
    return value


async def wait_done(client: Client, task_id: str) -> dict[str, Any]:
    """wait_task until the task leaves in_progress."""
    with trio.fail_after(DEADLINE_S):
        while True:
            task = await ok(client, "wait_task", id=task_id, timeout_s=20)
            if task["status"] != "in_progress":
                return task


async def events(client: Client, task_id: str) -> list[dict[str, Any]]:
    """Every logged event of a task, following the pages."""
    out: list[dict[str, Any]] = []
    uri: str | None = f"task://{task_id}/logs"
    while uri is not None:
        read = await client.read_resource(uri)
        content = read.contents[0]
        assert isinstance(content, TextResourceContents), content
        page = json.loads(content.text)
        out += page["events"]
        uri = page["next"]
    return out


async def test_e2e_task_edits_file_then_follow_up(world: World, model: ScriptedModel) -> None:
    """A task edits a file and waits with a report; a follow-up reaches the model with turn 1."""
    target = world.root / "hello.py"
    model.script(
        ToolCall("Write", {"file_path": str(target), "content": "print('hi')\n"}),
        Reply("Wrote hello.py."),
        Reply("It prints hi."),
    )
    async with coding_agent_up(world.state, world.root, world.env) as up, sdk_client(up) as client:
        created = await ok(client, "create_task", title="hello", instructions="Write hello.py")
        task = await wait_done(client, created["task_id"])
        assert task["status"] == "waiting", task
        report = task["report"]
        assert report["outcome"] == "success"
        assert report["files_changed"] == ["hello.py"]
        assert report["num_turns"] >= 1
        assert report["cost_usd"] is not None
        assert report["session_id"] == task["session_id"] is not None
        assert target.read_text() == "print('hi')\n"

        await ok(client, "update_task", id=created["task_id"], instructions="What does it print?")
        second = await wait_done(client, created["task_id"])
        assert second["status"] == "waiting"
        assert second["report"]["final_text"] == "It prints hi."
        assert second["session_id"] == task["session_id"]
        sent = json.dumps(model.main_requests[-1]["messages"])
        assert "Write hello.py" in sent
        assert "Wrote hello.py." in sent
        assert "What does it print?" in sent
    assert marked_processes(world.marker) == []


def stat_fields(pid: int) -> list[str]:
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def outside_claude(pid: int) -> bool:
    """Whether ``pid`` has a session of its own and no ``claude`` among its ancestors."""
    state, ppid, _, sid = stat_fields(pid)[:4]
    names = []
    parent = int(ppid)
    with contextlib.suppress(FileNotFoundError):
        while parent > 1:
            names.append(pathlib.Path(f"/proc/{parent}/comm").read_text().strip())
            parent = int(stat_fields(parent)[1])
    return state != "Z" and int(sid) == pid and "claude" not in names


def kill_if_alive(pid: int) -> None:
    """SIGKILL ``pid`` if it still runs: a failed test must not leave its escapee behind."""
    with contextlib.suppress(OSError):
        if stat_fields(pid)[0] != "Z":
            os.kill(pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def tool_tree_running(world: World, up: Up) -> AsyncIterator[int]:
    """Wait until the tool's two sleeps and its escapee run; yields the escapee's pid."""
    pid_file = world.root / "escaped.pid"

    def tree() -> bool:
        names = [name for _, name in marked_processes(world.marker, up)]
        return names.count("sleep") == 3 and pid_file.exists()

    await eventually(tree, "the tool's three sleeps")
    escapee = int(pid_file.read_text())
    try:
        assert outside_claude(escapee)
        yield escapee
    finally:
        kill_if_alive(escapee)


async def test_e2e_end_task_kills_tool_tree(world: World, model: ScriptedModel) -> None:
    """end_task mid-tool leaves nothing in /proc, a tool process that escaped Claude included."""
    (world.root / "tree.sh").write_text(TREE_SCRIPT)
    model.script(BashCall("sh tree.sh"), Reply("never reached"))
    async with coding_agent_up(world.state, world.root, world.env) as up, sdk_client(up) as client:
        created = await ok(client, "create_task", title="tree", instructions="run the tree")
        async with tool_tree_running(world, up) as escapee:
            ended = await ok(client, "end_task", id=created["task_id"])
            assert ended["status"] == "completed"
            await eventually(
                lambda: not marked_processes(world.marker, up),
                "the run's processes to end",
                lambda: f"{marked_processes(world.marker, up)}; log: {up.log()[-3000:]}",
            )
            assert escapee not in [pid for pid, _ in marked_processes(world.marker, up)]


async def test_e2e_sigkill_then_restart_resumes(world: World, model: ScriptedModel) -> None:
    """``up`` (server and daemon) SIGKILLed mid-run restarts with the task interrupted (the
    daemon went with it), its events kept, resumable."""
    hold = Hold(then=Reply("too late"))
    model.script(Reply("First answer."), hold, Reply("Resumed answer."))
    async with coding_agent_up(world.state, world.root, world.env) as up, sdk_client(up) as client:
        created = await ok(client, "create_task", title="t", instructions="Say something")
        task_id = created["task_id"]
        first = await wait_done(client, task_id)
        await ok(client, "update_task", id=task_id, instructions="Think long")
        with trio.fail_after(DEADLINE_S):
            await hold.reached.wait()
            # The model is reached once Claude sent its init line; the server logs that line
            # a moment later (events become visible once written).
            before = await events(client, task_id)
            while sum(e["summary"].startswith("init:") for e in before) < 2:
                await trio.sleep(POLL_INTERVAL_S)
                before = await events(client, task_id)
        assert sum(e["summary"].startswith("init:") for e in before) == 2
        up.kill()
        await up.process.wait()
    hold.release()
    await eventually(lambda: not marked_processes(world.marker), "the killed run's processes")
    async with coding_agent_up(world.state, world.root, world.env) as up, sdk_client(up) as client:
        # The server re-attaches to the run; the daemon, restarted with it, no longer has it.
        task = await wait_done(client, task_id)
        assert task["status"] == "interrupted"
        assert "the host daemon no longer has the run" in task["report"]["error"]
        after = await events(client, task_id)
        assert after[: len(before)] == before
        await ok(client, "update_task", id=task_id, instructions="Go on")
        resumed = await wait_done(client, task_id)
        assert resumed["status"] == "waiting", resumed
        assert resumed["session_id"] == first["session_id"]
        assert "Say something" in json.dumps(model.main_requests[-1]["messages"])


async def test_e2e_sigterm_completes_request_in_flight(world: World, model: ScriptedModel) -> None:
    """SIGTERM mid-tool, a wait_task in flight: it answers interrupted, exit 0, nothing is left."""
    (world.root / "tree.sh").write_text(TREE_SCRIPT)
    model.script(BashCall("sh tree.sh"), Reply("never reached"))
    async with coding_agent_up(world.state, world.root, world.env) as up, sdk_client(up) as client:
        created = await ok(client, "create_task", title="t", instructions="run the tree")
        async with tool_tree_running(world, up) as escapee:
            answers: list[dict[str, Any]] = []

            async def waiting() -> None:
                answers.append(await ok(client, "wait_task", id=created["task_id"], timeout_s=40))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiting)
                await eventually(lambda: "wait_task: waiting" in up.log(), "the call to arrive")
                up.terminate()
            with trio.fail_after(DEADLINE_S):
                code = await up.process.wait()
            assert code == 0, up.log()
            assert answers[0]["status"] == "interrupted"
            await eventually(lambda: not marked_processes(world.marker), "the run's processes")
            assert escapee not in [pid for pid, _ in marked_processes(world.marker)]
    records = (world.state / "tasks").glob("*.json")
    assert [json.loads(r.read_text())["status"] for r in records] == ["interrupted"]
