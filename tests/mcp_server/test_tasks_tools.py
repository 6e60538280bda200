"""The coding-task tools through a real ``serve()``, a real daemon and a stand-in agent."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pathlib
import signal
import threading
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any

import orjson
import pytest
import trio
from _support.agent_up import base_env, coding_agent_up, sdk_client
from _support.polling import eventually
from _support.task_server import Client, Env, all_events, install_agent, task_server, wait_done
from mcp import Client as McpClient
from mcp.types import TextResourceContents

from mcp_server._tasks import Listener, StoreEvent, TaskStore


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (not a zombie)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_task_edits_file_and_waits(tmp_path: pathlib.Path) -> None:
    """create_task returns at once; the run edits a file and the task ends waiting with a report."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="edit", instructions="edit a.txt hi")
        assert created["status"] == "in_progress"
        task = await wait_done(env.client, created["task_id"])
        assert task["status"] == "waiting"
        report = task["report"]
        assert report["files_changed"] == ["a.txt"]
        assert (report["num_turns"], report["cost_usd"]) == (2, 0.0125)
        assert report["session_id"] == task["session_id"]
        assert (env.root / "a.txt").read_text() == "hi\n"


async def test_follow_up_resumes_session(tmp_path: pathlib.Path) -> None:
    """update_task runs the next turn in the agent's session (the agent sees --resume)."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hello")
        first = await wait_done(env.client, created["task_id"])
        await env.client.ok("update_task", id=created["task_id"], instructions="hello")
        second = await wait_done(env.client, created["task_id"])
        assert second["turns"] == 2
        assert second["session_id"] == first["session_id"]
        summaries = [e["summary"] for e in await all_events(env.client, created["task_id"])]
        assert f"text: resumed {first['session_id']}" in summaries


async def test_session_mismatch_reported(tmp_path: pathlib.Path) -> None:
    """An agent that answers a resume with another session id gets a note in the report."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hello")
        await wait_done(env.client, created["task_id"])
        await env.client.ok("update_task", id=created["task_id"], instructions="newsession")
        task = await wait_done(env.client, created["task_id"])
        assert "it reported session" in task["report"]["session_note"]


async def test_update_while_running_is_busy(tmp_path: pathlib.Path) -> None:
    """A follow-up while the run is in flight gets a clear 'busy' error."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="sleep 30")
        code = await env.client.error_code("update_task", id=created["task_id"], instructions="x")
        assert code == "busy"
        ended = await env.client.ok("end_task", id=created["task_id"])
        assert ended["status"] == "completed"
        assert ended["report"]["outcome"] == "cancelled"


def _stat_fields(pid: int) -> list[str]:
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def escaped_from(leader: int, pid: int) -> bool:
    """Whether ``pid`` runs outside ``leader``'s session, process group and process tree."""
    _, ppid, pgid, sid = _stat_fields(pid)[:4]
    ancestors = set()
    parent = int(ppid)
    with contextlib.suppress(FileNotFoundError):
        while parent > 1:
            ancestors.add(parent)
            parent = int(_stat_fields(parent)[1])
    return int(sid) != leader and int(pgid) != leader and leader not in ancestors


async def test_end_task_kills_process_tree(tmp_path: pathlib.Path) -> None:
    """end_task stops the agent, its child in a new session, and a process that escaped it."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hang")
        task_id = created["task_id"]
        with trio.fail_after(30):
            while True:
                changed = env.runner.changed(task_id)  # before reading: no missed wake-up
                texts = [e["summary"] for e in await all_events(env.client, task_id)]
                pids = [t.split()[2:] for t in texts if t.startswith("text: pids ")]
                if pids:
                    break
                await changed.wait()
        leader, child, escapee = (int(p) for p in pids[0])
        try:
            assert alive(leader)
            assert alive(child)
            assert alive(escapee)
            assert escaped_from(leader, escapee)
            await env.client.ok("end_task", id=task_id)
            await eventually(lambda: not any(alive(p) for p in (leader, child, escapee)))
        finally:
            for pid in (child, escapee):  # a failed test must not leave them behind
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


async def test_unknown_ids_are_clear_errors(tmp_path: pathlib.Path) -> None:
    """Unknown task ids give task_not_found results and resource errors; nothing breaks."""
    async with task_server(tmp_path) as env:
        for name, extra in [
            ("update_task", {"instructions": "x"}),
            ("end_task", {}),
            ("report", {}),
            ("wait_task", {"timeout_s": 0}),
        ]:
            assert await env.client.error_code(name, id="nope", **extra) == "task_not_found"
        answer = await env.client.rpc("resources/read", {"uri": "task://nope/logs"})
        assert "error" in answer
        assert (await env.client.ok("check_status"))["total_tasks"] == 0


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"title": "t", "instructions": "x" * 10_001}, id="oversized-instructions"),
        pytest.param({"title": "", "instructions": "x"}, id="empty-title"),
        pytest.param({"title": "t", "instructions": "x", "max_turns": "3"}, id="str-int"),
        pytest.param({"title": "t", "instructions": "x", "max_turns": 2.5}, id="float-int"),
        pytest.param({"title": "t", "instructions": "x", "agent": "cobol"}, id="bad-agent"),
        pytest.param({"title": "t", "instructions": "x", "extra": 1}, id="extra-key"),
        pytest.param({"title": "t", "instructions": "x", "max_budget_usd": -1}, id="negative"),
        pytest.param({"title": 5, "instructions": "x"}, id="int-title"),
    ],
)
async def test_bad_arguments_rejected(tmp_path: pathlib.Path, arguments: dict[str, Any]) -> None:
    """Wrong types and sizes give an error result and create no task."""
    async with task_server(tmp_path) as env:
        result = await env.client.call("create_task", **arguments)
        assert result["isError"] is True
        assert env.runner.tasks() == []


HUGE = "x" * 300_000


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        pytest.param("end_task", {"id": HUGE}, id="unknown-id"),
        pytest.param("update_task", {"id": HUGE, "instructions": "x"}, id="unknown-id-update"),
        pytest.param(
            "create_task",
            {"title": "t", "instructions": "x", "project_dir": "/" + HUGE[:9000]},
            id="path",
        ),
    ],
)
async def test_error_echoing_input_stays_small(
    tmp_path: pathlib.Path, name: str, arguments: dict[str, Any]
) -> None:
    """An error result that quotes a huge argument is cut with a marker, structured content too."""
    async with task_server(tmp_path) as env:
        result = await env.client.call(name, **arguments)
        assert result["isError"] is True
        message = result["structuredContent"]["message"]
        assert len(json.dumps(result)) < 20_000, message[:200]
        assert "[cut:" in message


@pytest.mark.parametrize("project_dir", ["../x", "/etc", "a/../../b", str(PurePosixPath("/"))])
async def test_path_escape_refused(tmp_path: pathlib.Path, project_dir: str) -> None:
    """A project_dir outside the workspace is refused by path components."""
    async with task_server(tmp_path) as env:
        code = await env.client.error_code(
            "create_task", title="t", instructions="hello", project_dir=project_dir
        )
        assert code == "path_outside_workspace"


async def test_project_dir_inside_workspace(tmp_path: pathlib.Path) -> None:
    """A subdirectory (relative or absolute under the root) is where the agent runs."""
    (tmp_path / "root" / "sub").mkdir(parents=True)
    async with task_server(tmp_path) as env:
        absolute = str(env.root / "sub")
        created = await env.client.ok(
            "create_task", title="t", instructions="edit b.txt yes", project_dir=absolute
        )
        await wait_done(env.client, created["task_id"])
        assert (env.root / "sub" / "b.txt").read_text() == "yes\n"


async def test_daemon_down(tmp_path: pathlib.Path) -> None:
    """With no daemon, check_status and create_task fail clearly and the server keeps serving."""
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    async with task_server(tmp_path, port=free_port) as env:
        status = await env.client.call("check_status")
        assert status["isError"] is True
        assert status["structuredContent"]["result"]["daemon"]["reachable"] is False
        result = await env.client.call(
            "create_task", title="t", instructions="hello", isolation="none"
        )
        assert result["isError"] is True
        assert result["structuredContent"]["result"]["status"] == "failed"
        listed = await env.client.read("agent://tasks")
        assert listed["total_tasks"] == 1


async def test_daemon_down_creates_no_task_when_isolation_is_automatic(
    tmp_path: pathlib.Path,
) -> None:
    """With no daemon to ask whether the project is a git repository, create_task fails and
    creates no task."""
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    async with task_server(tmp_path, port=free_port) as env:
        result = await env.client.call("create_task", title="t", instructions="hello")
        assert result["structuredContent"]["error"]["code"] == "unreachable"
        assert (await env.client.read("agent://tasks"))["total_tasks"] == 0


async def test_wrong_daemon_token(tmp_path: pathlib.Path) -> None:
    """A wrong daemon token is reported as such, not as a working daemon."""
    async with task_server(tmp_path, token="wrong-token") as env:
        status = await env.client.call("check_status")
        assert status["isError"] is True
        error = status["structuredContent"]["result"]["daemon"]["error"]
        assert "auth" in error.lower()
        result = await env.client.call("create_task", title="t", instructions="hello")
        assert result["isError"] is True


async def test_wait_task_times_out(tmp_path: pathlib.Path) -> None:
    """wait_task returns the running task when its timeout passes."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="sleep 30")
        waited = await env.client.ok("wait_task", id=created["task_id"], timeout_s=0.2)
        assert waited["status"] == "in_progress"
        assert await env.client.error_code("wait_task", id=created["task_id"], timeout_s=51)
        await env.client.ok("end_task", id=created["task_id"])


async def test_logs_paged_and_contiguous(tmp_path: pathlib.Path) -> None:
    """Logs come in pages by seq; following 'next' gives every event once, in order."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="lines 450")
        await wait_done(env.client, created["task_id"])
        first = await env.client.read(f"task://{created['task_id']}/logs")
        last = first["events"][-1]["seq"]
        assert 100 < last <= 200
        assert first["next"] == f"task://{created['task_id']}/logs/{last}"
        events = await all_events(env.client, created["task_id"])
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert len(events) > 450
        middle = await env.client.read(f"task://{created['task_id']}/logs/300")
        assert middle["events"][0]["seq"] == 301


@pytest.mark.parametrize("after", ["\u00b2", "\u0663", "-1", "x"])
async def test_logs_cursor_must_be_ascii_digits(tmp_path: pathlib.Path, after: str) -> None:
    """A logs page cursor that is not plain ASCII digits is an invalid-params error."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hello")
        await wait_done(env.client, created["task_id"])
        answer = await env.client.rpc(
            "resources/read", {"uri": f"task://{created['task_id']}/logs/{after}"}
        )
        assert answer.get("error") == {
            "code": -32602,
            "message": f"expected a sequence number, got {after!r} @ $.params.uri",
        }, answer


async def test_mcp_task_returns_report(tmp_path: pathlib.Path) -> None:
    """create_task as an MCP task completes with the run's report."""
    async with task_server(tmp_path) as env:
        answer = await env.client.rpc(
            "tools/call",
            {
                "name": "create_task",
                "arguments": {"title": "t", "instructions": "edit c.txt done"},
                "task": {},
            },
        )
        task_id = answer["result"]["task"]["taskId"]
        result = await env.client.rpc("tasks/result", {"taskId": task_id})
        structured = result["result"]["structuredContent"]
        assert structured["status"] == "success"
        assert structured["result"]["report"]["files_changed"] == ["c.txt"]


async def test_subscription_gets_updates(tmp_path: pathlib.Path) -> None:
    """A client subscribed to task://{id} gets resources/updated on its GET stream."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="sleep 1")
        uri = f"task://{created['task_id']}"
        await env.client.rpc("resources/subscribe", {"uri": uri})
        client = env.client
        async with client.http.stream("GET", client.url, headers=client.headers()) as stream:
            with trio.fail_after(30):
                async for line in stream.aiter_lines():
                    if line.startswith("data:") and "resources/updated" in line:
                        message = json.loads(line[5:])
                        if message["params"]["uri"] == uri:
                            break
        task = await wait_done(env.client, created["task_id"])
        assert task["status"] == "waiting"


async def _updates_until_list_changed(lines: AsyncIterator[str], count: int) -> list[str]:
    """The URIs of resources/updated seen before the ``count``-th resources/list_changed."""
    updated: list[str] = []
    with trio.fail_after(30):
        async for line in lines:
            if not line.startswith("data:") or not line[5:].strip():
                continue
            message = json.loads(line[5:])
            if message.get("method") == "notifications/resources/updated":
                updated.append(message["params"]["uri"])
            elif message.get("method") == "notifications/resources/list_changed":
                count -= 1
                if count == 0:
                    return updated
    raise AssertionError(f"the stream ended after {updated}")


async def _change_status_without_output(
    env: Env, task_id: str, change: str, go: pathlib.Path
) -> None:
    """``end_task`` on an idle task, or let a silent run end; then create a sentinel task.

    The sentinel's creation sends resources/list_changed, which orders after every
    notification of the status change on the same stream.
    """
    if change == "end_task":
        ended = await env.client.ok("end_task", id=task_id)
        assert ended["status"] == "completed"
    else:
        await trio.Path(go).touch()
        assert (await wait_done(env.client, task_id))["status"] == "waiting"
    await env.client.ok("create_task", title="sentinel", instructions="hello")


async def _idle_or_silent_task(env: Env, change: str, go: pathlib.Path) -> str:
    """A task that ended its run (for end_task), or whose run waits for ``go`` without output."""
    if change == "end_task":
        created = await env.client.ok("create_task", title="t", instructions="hello")
        await wait_done(env.client, created["task_id"])
    else:
        created = await env.client.ok("create_task", title="t", instructions=f"waitfile {go}")
        await eventually(lambda: env.runner.get(created["task_id"]).session_id is not None)
    task_id: str = created["task_id"]
    return task_id


STATUS_CHANGES = ["end_task", "run_ends"]


@pytest.mark.parametrize("change", STATUS_CHANGES)
async def test_status_change_updates_result_and_task_list(
    tmp_path: pathlib.Path, change: str
) -> None:
    """Subscribers of task://{id}/result and agent://tasks hear of a status change (legacy)."""
    go = tmp_path / "go"
    async with task_server(tmp_path) as env:
        client = env.client
        async with client.http.stream("GET", client.url, headers=client.headers()) as stream:
            task_id = await _idle_or_silent_task(env, change, go)
            for uri in (f"task://{task_id}/result", "agent://tasks"):
                await client.rpc("resources/subscribe", {"uri": uri})
            await _change_status_without_output(env, task_id, change, go)
            # The first list_changed is the task's own creation, the second the sentinel's.
            updated = await _updates_until_list_changed(stream.aiter_lines(), 2)
    assert f"task://{task_id}/result" in updated
    assert "agent://tasks" in updated


@pytest.mark.parametrize("change", STATUS_CHANGES)
async def test_status_change_reaches_a_listen_stream(tmp_path: pathlib.Path, change: str) -> None:
    """A 2026-07-28 subscriptions/listen on the task's result and the list hears a status change."""
    go = tmp_path / "go"
    async with task_server(tmp_path) as env:
        task_id = await _idle_or_silent_task(env, change, go)
        uris = [f"task://{task_id}/result", "agent://tasks"]
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        params = {
            "notifications": {"resourcesListChanged": True, "resourceSubscriptions": uris},
            "_meta": meta,
        }
        headers = {
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "subscriptions/listen",
        }
        body = {"jsonrpc": "2.0", "id": "L", "method": "subscriptions/listen", "params": params}
        async with env.client.http.stream(
            "POST", env.client.url, headers=headers, json=body
        ) as stream:
            lines = stream.aiter_lines()
            await _next_notification(lines, "notifications/subscriptions/acknowledged")
            await _change_status_without_output(env, task_id, change, go)
            updated = await _updates_until_list_changed(lines, 1)
    assert uris[0] in updated
    assert "agent://tasks" in updated


async def test_clean_state_stops_runs(tmp_path: pathlib.Path) -> None:
    """clean_state stops runs in flight, then deletes every task and its files."""
    async with task_server(tmp_path) as env:
        await env.client.ok("create_task", title="t", instructions="sleep 30")
        cleaned = await env.client.ok("clean_state")
        assert cleaned["deleted"] == 1
        assert env.runner.running() == 0
        assert os.listdir(env.state / "tasks") == []


async def test_prompts(tmp_path: pathlib.Path) -> None:
    """Prompts render with their arguments and enforce the required ones."""
    async with task_server(tmp_path) as env:
        listed = await env.client.ok("get_prompt")
        assert {p["id"] for p in listed} == {
            "fix_bug",
            "create_unit_tests",
            "create_react_component",
        }
        missing = await env.client.rpc("prompts/get", {"name": "fix_bug", "arguments": {}})
        assert "bug_description" in missing["error"]["message"]
        rendered = await env.client.rpc(
            "prompts/get", {"name": "fix_bug", "arguments": {"bug_description": "it crashes"}}
        )
        text = rendered["result"]["messages"][0]["content"]["text"]
        assert "it crashes" in text
        assert await env.client.error_code("get_prompt", prompt_id="nope") == "prompt_not_found"


async def test_report_statistics(tmp_path: pathlib.Path) -> None:
    """report without an id gives the original's statistics."""
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="fail")
        task = await wait_done(env.client, created["task_id"])
        assert task["status"] == "failed"
        stats = await env.client.ok("report")
        assert stats["by_status"] == {"failed": 1}
        assert stats["success_rate"] == 0


async def _sdk_ok(client: McpClient, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result
    assert result.structured_content is not None
    value: dict[str, Any] = result.structured_content["result"]
    return value


async def _sdk_events(client: McpClient, task_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    uri: str | None = f"task://{task_id}/logs"
    while uri is not None:
        content = (await client.read_resource(uri)).contents[0]
        assert isinstance(content, TextResourceContents), content
        page = json.loads(content.text)
        out += page["events"]
        uri = page["next"]
    return out


async def test_restart_interrupts_and_resumes(tmp_path: pathlib.Path) -> None:
    """``up`` (server and daemon in one process) SIGKILLed mid-run: the next one re-attaches,
    the restarted daemon no longer has the run, the task is interrupted saying so, and resumes."""
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    env = base_env(CLAUDE_PATH=install_agent(tmp_path / "bin"))
    async with coding_agent_up(state, root, env) as up, sdk_client(up) as client:
        task_id = (await _sdk_ok(client, "create_task", title="t", instructions="sleep 600"))[
            "task_id"
        ]
        with trio.fail_after(30):
            # The agent's session is recorded once its init event came: poll the server for it.
            while (task := await _sdk_ok(client, "report", id=task_id))["session_id"] is None:  # noqa: ASYNC110
                await trio.sleep(0.05)
        before = await _sdk_events(client, task_id)
        up.kill()
        await up.process.wait()
    # The killed server recorded nothing more: the record on disk still says in_progress.
    record = json.loads((state / "tasks" / f"{task_id}.json").read_text())
    assert record["status"] == "in_progress"
    async with coding_agent_up(state, root, env) as up, sdk_client(up) as client:
        recovered = await _sdk_ok(client, "wait_task", id=task_id, timeout_s=30)
        assert recovered["status"] == "interrupted"
        assert recovered["report"]["error"].startswith("the host daemon no longer has the run")
        assert f"task {task_id}: the host daemon no longer has the run" in up.log()
        assert (await _sdk_events(client, task_id))[: len(before)] == before
        await _sdk_ok(client, "update_task", id=task_id, instructions="hello")
        with trio.fail_after(60):
            while (resumed := await _sdk_ok(client, "wait_task", id=task_id, timeout_s=20))[
                "status"
            ] == "in_progress":
                pass
        assert (resumed["status"], resumed["session_id"]) == ("waiting", task["session_id"])


@pytest.mark.parametrize("when", ["starting", "running"])
async def test_mcp_task_cancel_stops_run(tmp_path: pathlib.Path, when: str) -> None:
    """Cancelling the MCP task of create_task stops the run: the task ends cancelled."""
    async with task_server(tmp_path) as env:
        answer = await env.client.rpc(
            "tools/call",
            {
                "name": "create_task",
                "arguments": {"title": "t", "instructions": "sleep 30"},
                "task": {},
            },
        )
        mcp_task = answer["result"]["task"]["taskId"]
        # The task is listed once its start is durable, its run counted once begun.
        await eventually(lambda: env.runner.running() == 1 and len(env.runner.tasks()) == 1)
        [task] = env.runner.tasks()
        assert task.id == mcp_task  # one id: tasks/cancel takes the coding task's
        if when == "running":
            await eventually(lambda: env.runner.get(task.id).session_id is not None)
        cancelled = await env.client.rpc("tasks/cancel", {"taskId": mcp_task})
        assert "result" in cancelled, cancelled
        with trio.fail_after(30):
            while env.runner.get(task.id).status == "in_progress":
                await env.runner.changed(task.id).wait()
        assert env.runner.get(task.id).status == "cancelled"


async def test_mcp_task_sends_progress(tmp_path: pathlib.Path) -> None:
    """An MCP task's run reports progress on the session's stream while it runs."""
    async with task_server(tmp_path) as env:
        client = env.client
        async with client.http.stream("GET", client.url, headers=client.headers()) as stream:
            answer = await client.rpc(
                "tools/call",
                {
                    "name": "create_task",
                    "arguments": {"title": "t", "instructions": "sleep 2"},
                    "task": {},
                    "_meta": {"progressToken": "p-1"},
                },
            )
            assert "task" in answer["result"]
            with trio.fail_after(30):
                async for line in stream.aiter_lines():
                    if line.startswith("data:") and "notifications/progress" in line:
                        message = json.loads(line[5:])
                        assert message["params"]["progressToken"] == "p-1"
                        assert message["params"]["progress"] >= 1
                        break


async def test_create_and_clean_announce_list_changed(tmp_path: pathlib.Path) -> None:
    """Creating and deleting tasks sends resources/list_changed; the list names the task."""
    async with task_server(tmp_path) as env:
        client = env.client
        async with client.http.stream("GET", client.url, headers=client.headers()) as stream:
            lines = stream.aiter_lines()
            created = await client.ok("create_task", title="listed", instructions="hello")
            await _next_notification(lines, "notifications/resources/list_changed")
            listed = await client.rpc("resources/list", {})
            uris = [r["uri"] for r in listed["result"]["resources"]]
            assert f"task://{created['task_id']}" in uris
            await wait_done(client, created["task_id"])
            await client.ok("clean_state")
            await _next_notification(lines, "notifications/resources/list_changed")
            listed = await client.rpc("resources/list", {})
            assert f"task://{created['task_id']}" not in [
                r["uri"] for r in listed["result"]["resources"]
            ]


async def _next_notification(lines: AsyncIterator[str], method: str) -> dict[str, Any]:
    with trio.fail_after(30):
        async for line in lines:
            if line.startswith("data:") and method in line:
                message: dict[str, Any] = json.loads(line[5:])
                return message
    raise AssertionError(f"the stream ended before {method}")


class HeldStore(TaskStore):
    """A store whose write of a record with status ``hold`` waits until ``release`` (test hook)."""

    def __init__(self, root: pathlib.Path, hold: str, listener: Listener[StoreEvent]) -> None:
        super().__init__(root, listener)
        self.hold = hold
        self.held = threading.Event()
        self.release = threading.Event()

    def _save_sync(
        self, task_id: str, log_path: pathlib.Path, size: int, batch: list[Any], data: bytes
    ) -> Any:
        if orjson.loads(data)["status"] == self.hold:
            self.held.set()
            self.release.wait(60)
        return super()._save_sync(task_id, log_path, size, batch, data)


async def client_view(client: Client, task_id: str) -> tuple[str, str, list[str]]:
    """The task's status per report and per task://, and its logged event summaries."""
    reported = await client.ok("report", id=task_id)
    resource = await client.read(f"task://{task_id}")
    summaries = [e["summary"] for e in await all_events(client, task_id)]
    return reported["status"], resource["status"], summaries


async def test_end_task_invisible_until_durable(tmp_path: pathlib.Path) -> None:
    """While end_task's record is being written, clients still see the old status and events."""
    held = functools.partial(HeldStore, tmp_path / "state", "completed")
    async with task_server(tmp_path, store=held) as env, trio.open_nursery() as nursery:
        store = env.runner.store
        assert isinstance(store, HeldStore)
        created = await env.client.ok("create_task", title="t", instructions="hello")
        await wait_done(env.client, created["task_id"])
        ended = trio.Event()
        other = Client(env.client.http, env.client.url)
        await other.initialize()

        async def end() -> None:
            await other.ok("end_task", id=created["task_id"])
            ended.set()

        nursery.start_soon(end)
        try:
            assert await trio.to_thread.run_sync(store.held.wait, 60)
            reported, resource, summaries = await client_view(env.client, created["task_id"])
            assert (reported, resource) == ("waiting", "waiting")
            assert "completed: ended by the client" not in summaries
        finally:
            store.release.set()
        with trio.fail_after(60):
            await ended.wait()
        reported, resource, summaries = await client_view(env.client, created["task_id"])
        assert (reported, resource) == ("completed", "completed")
        assert summaries[-1] == "completed: ended by the client"


async def test_run_end_invisible_until_durable(tmp_path: pathlib.Path) -> None:
    """While a run's end is being written, clients still see it in_progress, without its end."""
    held = functools.partial(HeldStore, tmp_path / "state", "waiting")
    async with task_server(tmp_path, store=held) as env:
        store = env.runner.store
        assert isinstance(store, HeldStore)
        created = await env.client.ok("create_task", title="t", instructions="hello")
        try:
            assert await trio.to_thread.run_sync(store.held.wait, 60)
            reported, resource, summaries = await client_view(env.client, created["task_id"])
            assert (reported, resource) == ("in_progress", "in_progress")
            assert not [s for s in summaries if s.startswith("run finished")]
        finally:
            store.release.set()
        assert (await wait_done(env.client, created["task_id"]))["status"] == "waiting"
