"""The queue through a real server and a real daemon: more tasks than the daemon runs at once
are accepted ``queued`` and start in order (priority, then age) as slots free; one run per
project; end_task dequeues; a daemon that answers busy unexpectedly requeues."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import attrs
from _support.daemon import running_daemon
from _support.polling import eventually
from _support.task_server import Client, Env, all_events, task_server, up_client, wait_done

from host_daemon import RunRequest, open_run
from mcp_server._tasks import DaemonEndpoint, HostTable

MAX_RUNS = {"max_runs": 2}


async def create(env: Env, project: str, instructions: str, **extra: Any) -> dict[str, Any]:
    (env.root / project).mkdir(exist_ok=True)
    return await env.client.ok(
        "create_task", title=project, instructions=instructions, project_dir=project, **extra
    )


def hold(env: Env, name: str) -> str:
    """A prompt whose run stays in flight until :func:`release` (``waitfile``)."""
    return f"waitfile {env.root / ('release-' + name)}"


def release(env: Env, name: str) -> None:
    (env.root / ("release-" + name)).write_text("go")


def status(env: Env, task_id: str) -> str:
    return env.runner.get(task_id).status


async def runs_started(client: Client, task_id: str) -> int:
    return sum(e["kind"] == "run_started" for e in await all_events(client, task_id))


async def test_beyond_max_runs_all_accepted_queued_and_run_in_order(
    tmp_path: pathlib.Path,
) -> None:
    """Four creates at --max-runs 2: two run, two are queued with positions; each starts as a
    slot frees, in order."""
    async with task_server(tmp_path, daemon_config=MAX_RUNS) as env:
        first = await create(env, "p1", hold(env, "1"))
        second = await create(env, "p2", hold(env, "2"))
        third = await create(env, "p3", hold(env, "3"))
        fourth = await create(env, "p4", "hello")
        assert [first["status"], second["status"]] == ["in_progress", "in_progress"]
        assert (third["status"], third["queue_position"]) == ("queued", 1)
        assert (fourth["status"], fourth["queue_position"]) == ("queued", 2)
        assert third["queue_reason"] == "the daemon runs at most 2 at once (2 in flight)"
        report = await env.client.ok("report")
        assert report["queue"]["length"] == 2
        assert report["queue"]["by_reason"] == {"capacity": 2}
        assert [e["task_id"] for e in report["queue"]["first"]] == [
            third["task_id"],
            fourth["task_id"],
        ]
        release(env, "1")
        await eventually(lambda: status(env, third["task_id"]) == "in_progress")
        assert status(env, fourth["task_id"]) == "queued"
        view = await env.client.ok("report", id=fourth["task_id"])
        assert view["queue_position"] == 1
        release(env, "2")
        done = await wait_done(env.client, fourth["task_id"])
        assert done["status"] == "waiting"
        release(env, "3")
        for task in (first, second, third, fourth):
            assert (await wait_done(env.client, task["task_id"]))["status"] == "waiting"
            assert await runs_started(env.client, task["task_id"]) == 1


async def test_priority_then_age(tmp_path: pathlib.Path) -> None:
    """Queued behind one slot: high starts before normal before low, the older normal first."""
    async with task_server(tmp_path, daemon_config={"max_runs": 1}) as env:
        blocker = await create(env, "p0", hold(env, "0"))
        low = await create(env, "p1", "hello", priority="low")
        normal_a = await create(env, "p2", "hello")
        normal_b = await create(env, "p3", "hello", priority="normal")
        high = await create(env, "p4", "hello", priority="high")
        expected = [high, normal_a, normal_b, low]
        check = await env.client.ok("check_status")
        assert [e["task_id"] for e in check["queue"]["first"]] == [t["task_id"] for t in expected]
        assert [e["position"] for e in check["queue"]["first"]] == [1, 2, 3, 4]
        release(env, "0")
        await wait_done(env.client, blocker["task_id"])
        for task in expected:
            await wait_done(env.client, task["task_id"])
        started = [env.runner.get(t["task_id"]).started_at for t in expected]
        assert started == sorted(started)  # one slot: each started after the last one ended


async def test_one_run_per_project_and_no_starvation(tmp_path: pathlib.Path) -> None:
    """A second task of a busy project waits; a later task of another project starts at once."""
    async with task_server(tmp_path, daemon_config={"max_runs": 4}) as env:
        first = await create(env, "same", hold(env, "1"))
        second = await create(env, "same", "hello")
        other = await create(env, "other", hold(env, "2"))
        assert second["status"] == "queued"
        blocked = f"project same has a run in flight (task {first['task_id']})"
        assert second["queue_reason"] == blocked
        assert other["status"] == "in_progress"
        check = await env.client.ok("check_status")
        assert check["queue"]["by_reason"] == {"project": 1}
        release(env, "1")
        assert (await wait_done(env.client, second["task_id"]))["status"] == "waiting"
        assert status(env, other["task_id"]) == "in_progress"
        release(env, "2")
        await wait_done(env.client, other["task_id"])


async def test_update_task_beyond_capacity_is_queued_with_its_turn(tmp_path: pathlib.Path) -> None:
    """A follow-up while the project is busy is queued with its instructions, then runs them."""
    async with task_server(tmp_path) as env:
        task = await create(env, "p", "hello")
        await wait_done(env.client, task["task_id"])
        other = await env.client.ok(
            "create_task", title="root", instructions=hold(env, "1")
        )  # the workspace itself: it holds every project inside it
        updated = await env.client.ok("update_task", id=task["task_id"], instructions="hello")
        assert (updated["status"], updated["turns"]) == ("queued", 2)
        assert updated["queue_reason"] == f"project p has a run in flight (task {other['task_id']})"
        release(env, "1")
        done = await wait_done(env.client, task["task_id"])
        assert (done["status"], done["turns"]) == ("waiting", 2)
        assert await runs_started(env.client, task["task_id"]) == 2


async def test_end_task_dequeues(tmp_path: pathlib.Path) -> None:
    """end_task on a queued task: completed at once, and it never runs."""
    async with task_server(tmp_path, daemon_config={"max_runs": 1}) as env:
        blocker = await create(env, "p0", hold(env, "0"))
        queued = await create(env, "p1", "hello")
        after = await create(env, "p2", "hello")
        ended = await env.client.ok("end_task", id=queued["task_id"])
        assert (ended["status"], ended["queue_position"]) == ("completed", None)
        assert (await env.client.ok("report", id=after["task_id"]))["queue_position"] == 1
        release(env, "0")
        await wait_done(env.client, blocker["task_id"])
        await wait_done(env.client, after["task_id"])
        assert await runs_started(env.client, queued["task_id"]) == 0
        assert env.runner.get(queued["task_id"]).runs == 0


async def test_restart_keeps_the_order_and_starts_each_once(tmp_path: pathlib.Path) -> None:
    """Queued tasks outlive a server restart: the next server starts them in order, once each."""
    async with task_server(tmp_path, daemon_config={"max_runs": 1}) as env:
        blocker = await create(env, "p0", "sleep 600")
        queued = [
            await create(env, "p1", "hello", priority="low"),
            await create(env, "p2", "hello"),
            await create(env, "p3", "hello", priority="high"),
        ]
        assert [t["status"] for t in queued] == ["queued"] * 3
    async with task_server(tmp_path, daemon_config={"max_runs": 1}) as env:
        # Its run went with the first daemon: the new one does not know it.
        await env.runner.wait(blocker["task_id"], 30)
        assert status(env, blocker["task_id"]) == "interrupted"
        order = [queued[2], queued[1], queued[0]]
        for task in order:
            assert (await wait_done(env.client, task["task_id"]))["status"] == "waiting"
            assert await runs_started(env.client, task["task_id"]) == 1
        started = [env.runner.get(t["task_id"]).started_at for t in order]
        assert started == sorted(started)


async def test_daemon_busy_unexpectedly_requeues(tmp_path: pathlib.Path) -> None:
    """Another client holds the daemon's last slot: the start it refuses goes back to the queue
    (not failed) and starts once the slot frees."""
    async with task_server(tmp_path, daemon_config=MAX_RUNS) as env:
        mine = await create(env, "p1", hold(env, "1"))
        (env.root / "p9").mkdir()
        daemon = env.runner.hosts["default"].daemon
        request = RunRequest(agent="claude", prompt=hold(env, "other"), cwd=str(env.root / "p9"))
        async with open_run(daemon.host, daemon.port, daemon.token, request) as stream:
            refused = await create(env, "p2", "hello")
            assert refused["status"] == "queued"
            assert refused["queue_reason"].startswith("the daemon is busy")
            assert env.runner.get(refused["task_id"]).runs == 0
            release(env, "other")
            async for _ in stream:
                pass
        done = await wait_done(env.client, refused["task_id"])
        assert done["status"] == "waiting"
        assert await runs_started(env.client, refused["task_id"]) == 1
        release(env, "1")
        await wait_done(env.client, mine["task_id"])


async def test_up_sigkilled_with_a_queue_starts_each_once_in_order(tmp_path: pathlib.Path) -> None:
    """A real ``coding-agent up`` SIGKILLed with tasks queued: the next one starts each of them
    exactly once, in order, and the run it killed is interrupted, not run again."""
    state = tmp_path / "state"
    (tmp_path / "root").mkdir()
    for project in ("p0", "p1", "p2", "p3"):
        (tmp_path / "root" / project).mkdir()
    args = ["--max-runs", "1"]
    async with up_client(tmp_path, state, args) as (up, client):
        blocker = await client.ok(
            "create_task", title="b", instructions="sleep 600", project_dir="p0"
        )
        queued = [
            await client.ok(
                "create_task", title=p, instructions="hello", project_dir=p, priority=priority
            )
            for p, priority in (("p1", "low"), ("p2", "normal"), ("p3", "high"))
        ]
        assert [t["status"] for t in queued] == ["queued"] * 3
        places = (await client.ok("check_status"))["queue"]["first"]
        assert [e["task_id"] for e in places] == [t["task_id"] for t in reversed(queued)]
        up.kill()
        await up.process.wait()
    for task in queued:
        record = json.loads((state / "tasks" / f"{task['task_id']}.json").read_text())
        assert (record["status"], record["runs"]) == ("queued", 0)
    async with up_client(tmp_path, state, args) as (up, client):
        order = [queued[2], queued[1], queued[0]]
        for task in order:
            assert (await wait_done(client, task["task_id"]))["status"] == "waiting"
        assert (await client.ok("report", id=blocker["task_id"]))["status"] == "interrupted"
        started = []
        for task in order:
            events = await all_events(client, task["task_id"])
            assert sum(e["kind"] == "run_started" for e in events) == 1
            started.append((await client.ok("report", id=task["task_id"]))["started_at"])
        assert started == sorted(started)


async def test_check_status_takes_the_daemons_new_limit(tmp_path: pathlib.Path) -> None:
    """The daemon now allows more runs (here: one with a higher --max-runs took over): the next
    check_status's probe gives the queue the new capacity, and the queued task starts."""
    async with task_server(tmp_path, daemon_config={"max_runs": 1}) as env:
        first = await create(env, "p1", hold(env, "1"))
        second = await create(env, "p2", hold(env, "2"))
        assert second["queue_reason"] == "the daemon runs at most 1 at once (1 in flight)"
        agent = {"CLAUDE_PATH": str(tmp_path / "bin" / "claude")}
        async with running_daemon(roots=[env.root], env=agent, max_runs=2) as bigger:
            bigger_daemon = DaemonEndpoint(bigger.host, bigger.port, bigger.token)
            env.runner.hosts = HostTable(
                [attrs.evolve(env.runner.hosts["default"], daemon=bigger_daemon)]
            )
            status_now = await env.client.ok("check_status")
            assert status_now["daemon"]["max_concurrent_runs"] == 2
            await eventually(lambda: status(env, second["task_id"]) == "in_progress")
            release(env, "2")
            assert (await wait_done(env.client, second["task_id"]))["status"] == "waiting"
        release(env, "1")
        await wait_done(env.client, first["task_id"])


async def test_cancelling_the_mcp_task_of_a_queued_create_calls_it_off(
    tmp_path: pathlib.Path,
) -> None:
    """create_task as an MCP task, queued: tasks/cancel leaves it cancelled, and it never runs."""
    async with task_server(tmp_path, daemon_config={"max_runs": 1}) as env:
        blocker = await create(env, "p0", hold(env, "0"))
        (env.root / "p1").mkdir()
        answer = await env.client.rpc(
            "tools/call",
            {
                "name": "create_task",
                "arguments": {"title": "t", "instructions": "hello", "project_dir": "p1"},
                "task": {},
            },
        )
        task_id = answer["result"]["task"]["taskId"]
        await eventually(lambda: status(env, task_id) == "queued")
        cancelled = await env.client.rpc("tasks/cancel", {"taskId": task_id})
        assert "result" in cancelled, cancelled
        await eventually(lambda: status(env, task_id) == "cancelled")
        release(env, "0")
        await wait_done(env.client, blocker["task_id"])
        assert env.runner.get(task_id).runs == 0
        assert await runs_started(env.client, task_id) == 0
