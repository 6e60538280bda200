"""End to end: runs that outlive their stream. The host daemon and the MCP server run as two
processes (``_support/split_up.py``), as in the container deployment; the real Claude Code CLI
talks to a scripted model on loopback.

The server is killed or stopped mid-turn: the run goes on in the daemon (its processes are in
``/proc``), the next server re-attaches and records every event exactly once (the store's log:
``seq`` contiguous, each run's daemon frame numbers 1…n with none twice), and the conversation
goes on. A detach longer than the daemon's grace, and a daemon restarted meanwhile, end the run
``interrupted`` with the reason; ``end_task`` while the run is detached kills it.
"""

from __future__ import annotations

import functools
import json
import pathlib
import uuid
from typing import Any

import attrs
import pytest
import trio
from _support import procs
from _support.agent_up import sdk_client
from _support.claude_cli import claude_env, claude_executable
from _support.polling import eventually as _eventually
from _support.scripted_model import BashCall, Hold, Reply, ScriptedModel
from _support.split_up import DaemonProcess, daemon_process, serve_process
from mcp import Client
from mcp.types import TextResourceContents

pytestmark = pytest.mark.claude_cli

MARKER = "CODING_AGENT_TEST_RUN"
DEADLINE_S = 90.0
eventually = functools.partial(_eventually, timeout=DEADLINE_S)
GRACE_S = 600.0
"""The daemon's detach grace where it must not run out during a test."""


@attrs.frozen
class World:
    root: pathlib.Path
    daemon_state: pathlib.Path
    server_state: pathlib.Path
    daemon_env: dict[str, str]
    server_env: dict[str, str]
    marker: str


@pytest.fixture(scope="session")
def claude() -> str:
    """The pinned Claude Code binary (installed on first use)."""
    return claude_executable()


@pytest.fixture
def world(tmp_path: pathlib.Path, claude: str, model: ScriptedModel) -> World:
    """A root, the two state dirs, and the environments: the daemon's runs Claude against the
    scripted model and marks every process of a run."""
    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    settings = {"permissions": {"allow": ["Bash(echo before-the-stop)"]}}
    (home / ".claude" / "settings.json").write_text(json.dumps(settings))
    marker = uuid.uuid4().hex
    env = claude_env(model.base_url, home) | {"CLAUDE_PATH": claude}
    return World(
        root,
        tmp_path / "daemon",
        tmp_path / "server",
        env | {MARKER: marker},
        env,
        marker,
    )


def agent_processes(world: World, daemon: DaemonProcess) -> list[tuple[int, str]]:
    """The live processes of the world's runs (the daemon itself aside)."""
    return procs.marked_processes(MARKER, world.marker, exclude={daemon.process.pid})


async def ok(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result
    assert result.structured_content is not None
    value: dict[str, Any] = result.structured_content["result"]
    return value


async def wait_done(client: Client, task_id: str) -> dict[str, Any]:
    """wait_task until the task's run ended."""
    with trio.fail_after(DEADLINE_S):
        while True:
            task = await ok(client, "wait_task", id=task_id, timeout_s=20)
            if task["status"] not in ("in_progress", "input_required"):
                return task


async def events(client: Client, task_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    uri: str | None = f"task://{task_id}/logs"
    while uri is not None:
        content = (await client.read_resource(uri)).contents[0]
        assert isinstance(content, TextResourceContents), content
        page = json.loads(content.text)
        out += page["events"]
        uri = page["next"]
    return out


def stored_events(world: World, task_id: str) -> list[dict[str, Any]]:
    """The task's log as the store wrote it."""
    path = world.server_state / "tasks" / f"{task_id}.events.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_each_once(stored: list[dict[str, Any]]) -> None:
    """The log's seq runs 1…n, and each run's frames were recorded once each, in order."""
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    runs: list[list[int]] = []
    for event in stored:
        number = event.get("daemon_seq")
        if number == 1:
            runs.append([])
        if number is not None:
            runs[-1].append(number)
    assert runs, "no event recorded a daemon frame"
    for numbers in runs:
        assert numbers == list(range(1, len(numbers) + 1)), numbers


def texts(log: list[dict[str, Any]], text: str) -> int:
    """How many agent events' summaries say ``text``."""
    return sum(e["kind"] == "agent" and text in e["summary"] for e in log)


async def run_up_to_the_hold(client: Client, hold: Hold) -> tuple[str, dict[str, Any]]:
    """A task whose first turn ran; its second turn ran a Bash command and now waits on the
    model (``hold``). Its id and first turn's record."""
    created = await ok(client, "create_task", title="t", instructions="Say something")
    task_id = created["task_id"]
    first = await wait_done(client, task_id)
    assert first["status"] == "waiting", first
    await ok(client, "update_task", id=task_id, instructions="Run echo, then think")
    with trio.fail_after(DEADLINE_S):
        await hold.reached.wait()
    # The model is asked again once the tool's result is in; the server logs it a moment later
    # (events are visible once written): poll the log.
    with trio.fail_after(DEADLINE_S):
        while texts(await events(client, task_id), "tool_result") == 0:  # noqa: ASYNC110
            await trio.sleep(0.05)
    return task_id, first


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
async def test_e2e_server_stopped_mid_turn_reattaches(
    world: World, model: ScriptedModel, how: str
) -> None:
    """The server dies (SIGKILL) or stops (SIGTERM) mid-turn: the run goes on in the daemon, the
    restarted server re-attaches, the turn ends waiting with every event once, and a follow-up
    goes on in the same conversation."""
    hold = Hold(then=Reply("Answer after the restart."))
    model.script(Reply("First answer."), BashCall("echo before-the-stop"), hold, Reply("Go on."))
    root, state = world.root, world.server_state
    async with daemon_process(
        world.daemon_state, root, world.daemon_env, detach_grace_s=GRACE_S
    ) as daemon:
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            task_id, first = await run_up_to_the_hold(client, hold)
            before = await events(client, task_id)
            if how == "SIGKILL":
                up.kill()
                await up.process.wait()
            else:
                # A wait_task in flight answers (the run is in flight, followed no more), and the
                # server exits 0 after its grace.
                answers: list[dict[str, Any]] = []

                async def waiting() -> None:
                    answers.append(await ok(client, "wait_task", id=task_id, timeout_s=40))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(waiting)
                    await eventually(lambda: "wait_task: waiting" in up.log(), "the call")
                    up.terminate()
                with trio.fail_after(DEADLINE_S):
                    assert await up.process.wait() == 0, up.log()[-3000:]
                assert answers[0]["status"] == "in_progress", answers
        record = json.loads((state / "tasks" / f"{task_id}.json").read_text())
        assert record["status"] == "in_progress"
        assert agent_processes(world, daemon), "the run did not outlive the server"
        hold.release()  # the turn goes on and ends while no server follows it
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            done = await wait_done(client, task_id)
            assert done["status"] == "waiting", done
            assert done["report"]["final_text"] == "Answer after the restart."
            assert done["session_id"] == first["session_id"]
            after = await events(client, task_id)
            assert after[: len(before)] == before
            assert texts(after, "Answer after the restart.") == 1
            assert (
                sum(e["kind"] == "agent" and e["summary"].startswith("tool_use") for e in after)
                == 1
            )
            assert sum(e["kind"] == "run_finished" for e in after) == 2
            assert_each_once(stored_events(world, task_id))
            assert "re-attached to run" in up.log()
            await ok(client, "update_task", id=task_id, instructions="And now?")
            third = await wait_done(client, task_id)
            assert (third["status"], third["session_id"]) == ("waiting", first["session_id"])
            sent = json.dumps(model.main_requests[-1]["messages"])
            assert "Say something" in sent
            assert "Answer after the restart." in sent
            assert_each_once(stored_events(world, task_id))


async def test_e2e_detached_past_the_grace_is_interrupted(
    world: World, model: ScriptedModel
) -> None:
    """A run nobody re-attaches to within the daemon's detach grace ends with its group; once
    the daemon has dropped it, the restarted server records it interrupted, saying why."""
    hold = Hold(then=Reply("too late"))
    model.script(Reply("First answer."), BashCall("echo before-the-stop"), hold)
    root, state = world.root, world.server_state
    async with daemon_process(
        world.daemon_state, root, world.daemon_env, detach_grace_s=1
    ) as daemon:
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            task_id, _ = await run_up_to_the_hold(client, hold)
            up.kill()
            await up.process.wait()
        run_id = json.loads((state / "tasks" / f"{task_id}.json").read_text())["run_id"]
        spool = world.daemon_state / "spool" / f"{run_id}.ndjson"
        await eventually(lambda: not agent_processes(world, daemon), "the grace to end the run")
        await eventually(lambda: not spool.exists(), "the daemon to drop the run's spool")
        hold.release()
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            done = await wait_done(client, task_id)
            assert done["status"] == "interrupted", done
            assert done["report"]["error"].startswith("the host daemon no longer has the run")
            assert_each_once(stored_events(world, task_id))


async def test_e2e_daemon_restarted_while_the_server_was_down(
    world: World, model: ScriptedModel
) -> None:
    """The daemon restarts while the server is down (its runs end with it): the next server
    records the run interrupted, saying the daemon restarted."""
    hold = Hold(then=Reply("too late"))
    model.script(Reply("First answer."), BashCall("echo before-the-stop"), hold)
    root, state = world.root, world.server_state
    async with daemon_process(
        world.daemon_state, root, world.daemon_env, detach_grace_s=GRACE_S
    ) as daemon:
        port = daemon.port
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            task_id, _ = await run_up_to_the_hold(client, hold)
            up.kill()
            await up.process.wait()
    await eventually(lambda: not agent_processes(world, daemon), "the daemon's runs to end")
    hold.release()
    async with (
        daemon_process(
            world.daemon_state, root, world.daemon_env, detach_grace_s=GRACE_S, port=port
        ) as daemon,
        serve_process(state, root, daemon, world.server_env) as up,
        sdk_client(up) as client,
    ):
        done = await wait_done(client, task_id)
        assert done["status"] == "interrupted", done
        assert "restarted" in done["report"]["error"], done["report"]
        await ok(client, "update_task", id=task_id, instructions="Again")
        model.script(Reply("Back again."))
        again = await wait_done(client, task_id)
        assert again["status"] == "waiting", again


async def test_e2e_end_task_after_a_restart_kills_the_run(
    world: World, model: ScriptedModel
) -> None:
    """end_task on a run that outlived the server it started under: the restarted server
    cancels it by id (closing a stream only detaches it), and its processes are gone. (With the
    daemon unreachable meanwhile: tests/mcp_server/test_tasks_reattach.py.)"""
    hold = Hold(then=Reply("too late"))
    model.script(Reply("First answer."), BashCall("echo before-the-stop"), hold)
    root, state = world.root, world.server_state
    async with daemon_process(
        world.daemon_state, root, world.daemon_env, detach_grace_s=GRACE_S
    ) as daemon:
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            task_id, _ = await run_up_to_the_hold(client, hold)
            up.kill()
            await up.process.wait()
        assert agent_processes(world, daemon)
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            ended = await ok(client, "end_task", id=task_id)
            assert ended["status"] == "completed"
            await eventually(lambda: not agent_processes(world, daemon), "the run's processes")
            hold.release()
            log = await events(client, task_id)
            assert log[-3]["summary"].startswith("run finished: cancelled"), log[-3:]


async def test_e2e_a_pending_approval_survives_a_server_restart(
    world: World, model: ScriptedModel
) -> None:
    """A live turn waits for a decision when the server dies: the restarted server re-attaches
    with the request still pending (recorded once), approve reaches the agent on the new stream,
    and the turn ends waiting."""
    (world.root / "write.sh").write_text('echo "$1" > out.txt\n')
    command = "sh write.sh approved"
    model.script(BashCall(command), Reply("Done."))
    root, state = world.root, world.server_state
    async with daemon_process(
        world.daemon_state, root, world.daemon_env, detach_grace_s=GRACE_S
    ) as daemon:
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            created = await ok(client, "create_task", title="t", instructions="write out.txt")
            assert created["live"] is True, created
            task_id = created["task_id"]
            with trio.fail_after(DEADLINE_S):
                while (task := await ok(client, "wait_task", id=task_id, timeout_s=20))[
                    "status"
                ] != "input_required":
                    assert task["status"] == "in_progress", task
            (pending,) = task["pending_approvals"]
            up.kill()
            await up.process.wait()
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            task = await ok(client, "report", id=task_id)
            assert task["status"] == "input_required", task
            assert [p["request_id"] for p in task["pending_approvals"]] == [pending["request_id"]]
            await eventually(lambda: "re-attached to run" in up.log(), "the re-attach")
            await ok(
                client, "approve", id=task_id, request_id=pending["request_id"], decision="allow"
            )
            done = await wait_done(client, task_id)
            assert done["status"] == "waiting", done
            assert (root / "out.txt").read_text() == "approved\n"
            log = await events(client, task_id)
            assert sum(e["kind"] == "approval_request" for e in log) == 1
            assert [e["data"]["decided_by"] for e in log if e["kind"] == "approval"] == ["client"]
            assert_each_once(stored_events(world, task_id))


async def test_e2e_interrupt_after_a_restart_reaches_the_live_turn(
    world: World, model: ScriptedModel
) -> None:
    """interrupt_task on a live turn the restarted server re-attached to: the interrupt goes on
    the new stream, the turn ends (waiting, outcome interrupted), and the conversation goes on."""
    hold = Hold(then=Reply("too late"))
    model.script(Reply("First answer."), BashCall("echo before-the-stop"), hold, Reply("Again."))
    root, state = world.root, world.server_state
    async with daemon_process(
        world.daemon_state, root, world.daemon_env, detach_grace_s=GRACE_S
    ) as daemon:
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            task_id, first = await run_up_to_the_hold(client, hold)
            up.kill()
            await up.process.wait()
        async with (
            serve_process(state, root, daemon, world.server_env) as up,
            sdk_client(up) as client,
        ):
            await eventually(lambda: "re-attached to run" in up.log(), "the re-attach")
            stopped = await ok(client, "interrupt_task", id=task_id)
            assert stopped["status"] == "waiting", stopped
            assert stopped["report"]["outcome"] == "interrupted"
            # Its end came from the daemon (a frame), not from the server giving up on the turn.
            ends = [e for e in stored_events(world, task_id) if e["kind"] == "run_finished"]
            assert "daemon_seq" in ends[-1], ends[-1]
            hold.release()
            await ok(client, "update_task", id=task_id, instructions="Go on")
            again = await wait_done(client, task_id)
            assert (again["status"], again["session_id"]) == ("waiting", first["session_id"])
            assert_each_once(stored_events(world, task_id))
