"""Several hosts through a real server and two real daemons with roots of their own: tasks go to
the host serving their directory (or the one named), a host that is down fails only its own
tasks, check_status shows each host, and each host has its own capacity."""

from __future__ import annotations

import datetime
import pathlib
from typing import Any

from _support.hosts import HostsEnv, host_daemons, hosts_server
from _support.polling import eventually
from _support.task_server import all_events, wait_done

from mcp_server._tasks import TaskOptions
from mcp_server._tasks._model import new_task
from mcp_server._tasks._reattach import OWED_FILE, OwedCancel, load_owed, save_owed


async def ran_by(env: HostsEnv, task_id: str) -> str:
    """The host whose agent the task's first run started (its ``argv[0]``)."""
    events = await all_events(env.client, task_id)
    started = next(e for e in events if e["kind"] == "run_started")
    argv0 = started["data"]["argv"][0]
    return next(name for name, agent in env.agents.items() if agent == argv0)


async def create(env: HostsEnv, project_dir: str, instructions: str = "hello", **extra: Any) -> Any:
    return await env.client.ok(
        "create_task", title="t", instructions=instructions, project_dir=project_dir, **extra
    )


async def test_tasks_go_to_the_host_serving_their_directory(tmp_path: pathlib.Path) -> None:
    """A project under host b's root runs on b's daemon, one under a's on a's."""
    async with hosts_server(tmp_path, {"a": {}, "b": {}}) as env:
        for name in ("a", "b"):
            (env.roots[name] / "p").mkdir()
        on_b = await create(env, str(env.roots["b"] / "p"))
        on_a = await create(env, str(env.roots["a"] / "p"))
        assert (on_b["host"], on_a["host"]) == ("b", "a")
        for task, name in ((on_b, "b"), (on_a, "a")):
            assert (await wait_done(env.client, task["task_id"]))["status"] == "waiting"
            assert await ran_by(env, task["task_id"]) == name


async def test_longest_root_wins_and_an_explicit_host_overrides(tmp_path: pathlib.Path) -> None:
    """b serves a directory inside a's root: a project there goes to b, unless host a is named;
    a relative project_dir with a host is under that host's root."""
    outer = tmp_path / "outer"
    inner = outer / "inner"
    hosts = {"a": {"roots": [outer]}, "b": {"roots": [inner]}}
    async with hosts_server(tmp_path, hosts) as env:
        (inner / "p").mkdir(parents=True)
        routed = await create(env, str(inner / "p"))
        named = await create(env, str(inner / "p"), host="a")
        relative = await create(env, "p", host="b")
        assert [t["host"] for t in (routed, named, relative)] == ["b", "a", "b"]
        for task in (routed, named, relative):
            assert (await wait_done(env.client, task["task_id"]))["status"] == "waiting"
        ran = [await ran_by(env, t["task_id"]) for t in (routed, named, relative)]
        assert ran == ["b", "a", "b"]
        assert env.runner.get(relative["task_id"]).cwd == str(inner / "p")


async def test_a_directory_no_host_serves_is_refused_naming_the_hosts(
    tmp_path: pathlib.Path,
) -> None:
    """No host's root holds the directory, or the named host does not serve it, or the host is
    unknown: a clear error listing the hosts and their roots, and no task."""
    async with hosts_server(tmp_path, {"a": {}, "b": {}}) as env:
        (env.roots["a"] / "p").mkdir()
        nowhere = await env.client.call(
            "create_task", title="t", instructions="hello", project_dir=str(tmp_path)
        )
        wrong_host = await env.client.call(
            "create_task",
            title="t",
            instructions="hello",
            project_dir=str(env.roots["a"] / "p"),
            host="b",
        )
        unknown = await env.client.call("create_task", title="t", instructions="hello", host="c")
        for result in (nowhere, wrong_host):
            assert result["isError"] is True
            answer = result["structuredContent"]
            assert answer["error"]["code"] == "path_outside_workspace"
            assert (
                f"a ({env.daemons['a'].host}:{env.daemons['a'].port}) serves" in answer["message"]
            )
            assert f"serves {env.roots['b']}" in answer["message"]
        assert "that host b serves" in wrong_host["structuredContent"]["message"]
        assert unknown["structuredContent"]["error"] == {"code": "unknown_host"}
        assert unknown["structuredContent"]["message"] == (
            "expected one of the configured hosts (a, b), got 'c' @ host"
        )
        assert env.runner.active_tasks() == []


async def test_a_host_that_is_down_fails_only_its_own_tasks(tmp_path: pathlib.Path) -> None:
    """Host b's daemon is stopped: a task for b fails to start with an error naming host b (its
    run, or its worktree first), while host a's task in flight completes."""
    async with hosts_server(tmp_path, {"a": {}, "b": {}}) as env:
        for name in ("a", "b"):
            (env.roots[name] / "p").mkdir()
        gate = env.roots["a"] / "go"
        on_a = await create(env, str(env.roots["a"] / "p"), f"waitfile {gate}")
        await env.stop("b")
        on_b = {"title": "t", "instructions": "hello", "project_dir": str(env.roots["b"] / "p")}
        failed = await env.client.call("create_task", **on_b, isolation="none")
        assert failed["isError"] is True
        assert failed["structuredContent"]["error"]["code"] == "unreachable"
        message = failed["structuredContent"]["message"]
        assert "the run did not start: daemon of host b: unreachable: cannot connect" in message
        assert failed["structuredContent"]["result"]["status"] == "failed"
        assert failed["structuredContent"]["result"]["host"] == "b"
        no_worktree = (await env.client.call("create_task", **on_b))["structuredContent"]
        assert no_worktree["message"].startswith("daemon of host b: unreachable")
        assert env.runner.get(on_a["task_id"]).status == "in_progress"
        gate.write_text("go")
        assert (await wait_done(env.client, on_a["task_id"]))["status"] == "waiting"


def steps(env: HostsEnv, name: str, count: int) -> str:
    """A prompt that says ``step i`` as :func:`step` lets it, then ends with ``done``."""
    (env.roots[name] / "steps").mkdir(exist_ok=True)
    return f"steps {env.roots[name] / 'steps'} {count}"


def step(env: HostsEnv, name: str, which: str) -> None:
    (env.roots[name] / "steps" / which).write_text("go")


async def said(env: HostsEnv, task_id: str, text: str) -> int:
    events = await all_events(env.client, task_id)
    return sum(e["kind"] == "agent" and e["summary"] == f"text: {text}" for e in events)


async def test_a_host_lost_mid_run_waits_and_its_run_is_reattached(tmp_path: pathlib.Path) -> None:
    """Host b drops out mid-run (its connections cut, new ones refused): b's task waits in
    flight, unhealthy in check_status, while a's completes; when b answers again its run is
    re-attached and ends waiting with each step recorded once."""
    async with (
        host_daemons(tmp_path, {"a": {}, "b": {}}, proxied={"b"}) as hosts,
        hosts_server(tmp_path, hosts) as env,
    ):
        for name in ("a", "b"):
            (env.roots[name] / "p").mkdir()
        on_b = await create(env, str(env.roots["b"] / "p"), steps(env, "b", 2))
        on_a = await create(env, str(env.roots["a"] / "p"), steps(env, "a", 1))
        step(env, "b", "1")
        await eventually(lambda: env.runner.last_seq(on_b["task_id"]) >= 4, "b's step 1")
        proxy = hosts.proxies["b"]
        proxy.refusing = True
        proxy.sever()
        status = (await env.client.ok("check_status"))["hosts"]
        assert [(h["name"], h["healthy"]) for h in status] == [("a", True), ("b", False)]
        for which in ("1", "done"):
            step(env, "a", which)
        assert (await wait_done(env.client, on_a["task_id"]))["status"] == "waiting"
        assert env.runner.get(on_b["task_id"]).status == "in_progress"
        for which in ("2", "done"):
            step(env, "b", which)
        proxy.refusing = False
        ended = await wait_done(env.client, on_b["task_id"])
        assert ended["status"] == "waiting", ended
        assert [await said(env, on_b["task_id"], f"step {i}") for i in (1, 2)] == [1, 1]


async def test_a_restarted_server_reattaches_each_run_on_its_own_host(
    tmp_path: pathlib.Path,
) -> None:
    """The server restarts while host b cannot be reached: a's run is re-attached at once and
    ends; b's waits in flight and is re-attached when b answers again."""
    async with host_daemons(tmp_path, {"a": {}, "b": {}}, proxied={"b"}) as hosts:
        async with hosts_server(tmp_path, hosts) as env:
            for name in ("a", "b"):
                (env.roots[name] / "p").mkdir()
            tasks = {
                name: (await create(env, str(env.roots[name] / "p"), steps(env, name, 1)))[
                    "task_id"
                ]
                for name in ("a", "b")
            }
            for name, task_id in tasks.items():
                step(env, name, "1")
                await eventually(lambda t=task_id: env.runner.last_seq(t) >= 4, f"{name}'s step")
        hosts.proxies["b"].refusing = True
        for name in ("a", "b"):
            step(env, name, "done")
        async with hosts_server(tmp_path, hosts) as env:
            assert (await wait_done(env.client, tasks["a"]))["status"] == "waiting"
            assert await ran_by(env, tasks["a"]) == "a"
            assert env.runner.get(tasks["b"]).status == "in_progress"
            hosts.proxies["b"].refusing = False
            ended = await wait_done(env.client, tasks["b"])
            assert ended["status"] == "waiting", ended
            assert await said(env, tasks["b"], "step 1") == 1


async def test_check_status_shows_each_host_and_its_health(tmp_path: pathlib.Path) -> None:
    """check_status lists both hosts (address, roots, agents, load); one down is unhealthy with
    its error, and the status still answers for the other."""
    async with hosts_server(tmp_path, {"a": {"max_runs": 3}, "b": {}}) as env:
        await env.stop("b")
        answer = await env.client.call("check_status")
        assert answer.get("isError") is not True, answer
        assert answer["structuredContent"]["message"].startswith("hosts a answer; host b is down")
        hosts = {h["name"]: h for h in answer["structuredContent"]["result"]["hosts"]}
        a, b = hosts["a"], hosts["b"]
        assert a["address"] == f"{env.daemons['a'].host}:{env.daemons['a'].port}"
        assert (a["healthy"], a["error"], a["roots"]) == (True, None, [str(env.roots["a"])])
        assert (a["active_runs"], a["max_concurrent_runs"], a["running"], a["queued"]) == (
            0,
            3,
            0,
            0,
        )
        assert "claude" in a["agents"]
        assert b["healthy"] is False
        assert "cannot connect" in b["error"]
        assert (b["agents"], b["max_concurrent_runs"]) == ([], None)


async def test_a_full_host_queues_its_own_tasks_while_another_runs(
    tmp_path: pathlib.Path,
) -> None:
    """Host a runs at most one: a's second task waits queued (naming host a), b's task starts
    at once; a's starts when its slot frees."""
    async with hosts_server(tmp_path, {"a": {"max_runs": 1}, "b": {"max_runs": 1}}) as env:
        for name, project in (("a", "p1"), ("a", "p2"), ("b", "p1")):
            (env.roots[name] / project).mkdir()
        gate = env.roots["a"] / "go"
        first = await create(env, str(env.roots["a"] / "p1"), f"waitfile {gate}")
        second = await create(env, str(env.roots["a"] / "p2"))
        other = await create(env, str(env.roots["b"] / "p1"))
        assert (first["status"], second["status"]) == ("in_progress", "queued")
        assert second["queue_reason"] == "the daemon of host a runs at most 1 at once (1 in flight)"
        assert other["status"] == "in_progress"
        assert (await wait_done(env.client, other["task_id"]))["status"] == "waiting"
        status = (await env.client.ok("check_status"))["hosts"]
        assert [(h["name"], h["running"], h["queued"]) for h in status] == [
            ("a", 1, 1),
            ("b", 0, 0),
        ]
        assert env.runner.get(second["task_id"]).status == "queued"
        gate.write_text("go")
        await eventually(lambda: env.runner.get(first["task_id"]).status == "waiting")
        assert (await wait_done(env.client, second["task_id"]))["status"] == "waiting"


async def test_a_usage_limit_holds_the_agent_on_its_host_only(tmp_path: pathlib.Path) -> None:
    """Claude hits its usage limit on host a: a's next claude task waits for the hold (naming
    host a), while b's claude task (another login) runs."""
    async with hosts_server(tmp_path, {"a": {}, "b": {}}) as env:
        for name, project in (("a", "p1"), ("a", "p2"), ("b", "p1")):
            (env.roots[name] / project).mkdir()
        limited = await create(env, str(env.roots["a"] / "p1"), "limit 3600")
        assert (await wait_done(env.client, limited["task_id"]))["status"] == "limited"
        held = await create(env, str(env.roots["a"] / "p2"))
        other = await create(env, str(env.roots["b"] / "p1"))
        assert held["status"] == "queued"
        assert held["queue_reason"].startswith("usage limit of claude on host a until ")
        assert (await wait_done(env.client, other["task_id"]))["status"] == "waiting"
        holds = (await env.client.ok("check_status"))["holds"]
        assert [(h["agent"], h["host"], h["active"]) for h in holds] == [("claude", "a", True)]


async def test_an_owed_cancel_for_a_host_no_longer_configured_is_dropped(
    tmp_path: pathlib.Path,
) -> None:
    """A cancel a previous server owed to a host that is no longer configured is dropped at
    start (logged), and the server runs on."""
    state = tmp_path / "state"
    state.mkdir()
    now = datetime.datetime.now(datetime.UTC)
    gone = new_task(
        title="t",
        instructions="x",
        agent="claude",
        project_dir="",
        cwd="/gone",
        options=TaskOptions(),
        now=now,
        host="gone",
    )
    save_owed(state / OWED_FILE, {"0123456789abcdef" * 2: OwedCancel(gone, now)})
    async with hosts_server(tmp_path, {"a": {}}) as env:
        (env.roots["a"] / "p").mkdir()
        task = await create(env, str(env.roots["a"] / "p"))
        assert (await wait_done(env.client, task["task_id"]))["status"] == "waiting"
        await eventually(lambda: load_owed(state / OWED_FILE) == {}, "the owed cancel dropped")
