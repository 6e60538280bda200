"""One id: ``create_task`` run as an MCP task is the coding task the other tools take, in both eras.

A client that runs ``create_task`` in the background (Claude Code's interactive mode) shows only
the MCP task: its id must be the coding task's, and its ``statusMessage`` (``task <ID>: <status> —
<latest event>``) must follow the run. A real ``serve()``, a real daemon and the task stand-in
agent, whose ``gates PATH`` prompt holds the run in flight until the test creates ``PATH.1`` and
``PATH.2``; the official SDK client where the SDK can speak it.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import mcp_types as types
import trio
from _support.mcp_http import modern_headers, modern_params, read_events, rpc
from _support.polling import eventually
from _support.sdk_mcp_tasks import (
    LegacyTaskStatus,
    TasksExtension,
    legacy_task_call,
    modern_task_state,
)
from _support.sdk_tasks import ok
from _support.task_server import task_server, wait_done
from mcp import Client

T = TypeVar("T")
JSON = dict[str, Any]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
POLL_S = 0.05


async def until(fetch: Callable[[], Awaitable[T]], holds: Callable[[T], bool], what: str) -> T:
    """The server's answer once it ``holds`` (fetched again and again, at most 30 s)."""
    answer = None
    with trio.move_on_after(30):
        while True:
            answer = await fetch()
            if holds(answer):
                return answer
            await trio.sleep(POLL_S)  # the state is the server's: polled, as a client does
    raise AssertionError(f"timed out waiting for {what}; last answer: {answer!r}")


def line(task_id: str, status: str, news: str) -> re.Pattern[str]:
    """The status message of an MCP task following coding task ``task_id``."""
    return re.compile(rf"task {re.escape(task_id)}: {status} — .*{re.escape(news)}")


async def test_legacy_mcp_task_id_is_the_coding_task_id(tmp_path: pathlib.Path) -> None:
    """2025-11-25: the MCP task id is the coding task's, in flight and in every tasks/* view."""
    gate = tmp_path / "gate"
    watch = LegacyTaskStatus()
    heard = watch.heard
    async with (
        task_server(tmp_path) as env,
        Client(env.client.url, mode="legacy", extensions=[watch]) as client,
    ):
        arguments = {"title": "one id", "instructions": f"gates {gate}"}
        task_id = (await legacy_task_call(client, "create_task", arguments)).task_id
        assert UUID.fullmatch(task_id), task_id
        waited = await ok(client, "wait_task", id=task_id, timeout_s=0.1)
        assert (waited["task_id"], waited["status"]) == (task_id, "in_progress")
        reported = await ok(client, "report", id=task_id)
        assert (reported["task_id"], reported["status"]) == (task_id, "in_progress")

        get = types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task_id))

        async def status() -> types.GetTaskResult:
            return await client.session.send_request(get, types.GetTaskResult)

        at_gate_1 = line(task_id, "in_progress", "at gate 1")
        await until(status, lambda s: bool(at_gate_1.match(s.status_message or "")), "gate 1")
        (gate.parent / "gate.1").touch()
        at_gate_2 = line(task_id, "in_progress", "at gate 2")
        seen = await until(status, lambda s: bool(at_gate_2.match(s.status_message or "")), "2")
        assert seen.status == "working"
        listed = await client.session.send_request(types.ListTasksRequest(), types.ListTasksResult)
        assert [(t.task_id, t.status_message) for t in listed.tasks] == [
            (task_id, seen.status_message)
        ]
        (gate.parent / "gate.2").touch()
        payload = types.GetTaskPayloadRequest(
            params=types.GetTaskPayloadRequestParams(task_id=task_id)
        )
        result = await client.session.send_request(payload, types.CallToolResult)
        assert result.structured_content is not None
        assert result.structured_content["result"]["task_id"] == task_id
        assert result.structured_content["result"]["status"] == "waiting"
        final = await status()
        assert final.status == "completed"
        assert (final.status_message or "").startswith(f"task {task_id}: waiting — ")
        await eventually(
            lambda: any(note.status == "completed" for note in heard),
            "the completed task's notifications/tasks/status",
            lambda: repr(heard),
        )
    assert {note.task_id for note in heard} == {task_id}
    assert any(at_gate_2.match(note.status_message or "") for note in heard), heard
    done = [note.status_message for note in heard if note.status == "completed"]
    assert done == [final.status_message]


async def listen_for_tasks(
    http: httpx.AsyncClient,
    url: str,
    task_ids: list[str],
    heard: list[JSON],
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    """A 2026-07-28 ``subscriptions/listen`` for ``task_ids``: its notifications into ``heard``."""
    body = rpc("L", "subscriptions/listen", modern_params(notifications={"taskIds": task_ids}))
    headers = modern_headers("subscriptions/listen")
    async with http.stream("POST", url, headers=headers, json=body) as response:
        assert response.status_code == 200
        async for _, message in read_events(response):
            if message is None:
                continue
            if message["method"] == "notifications/subscriptions/acknowledged":
                task_status.started()
            else:
                heard.append(message)


async def test_modern_mcp_task_id_is_the_coding_task_id(tmp_path: pathlib.Path) -> None:
    """2026-07-28 (tasks extension): the same id, status message and notifications."""
    gate = tmp_path / "gate"
    heard: list[JSON] = []
    async with (
        task_server(tmp_path) as env,
        Client(env.client.url, extensions=[TasksExtension()]) as client,
        httpx.AsyncClient(timeout=60) as http,
        trio.open_nursery() as nursery,
    ):
        assert client.protocol_version == "2026-07-28"
        arguments = {"title": "one id", "instructions": f"gates {gate}"}
        created = await client.session.call_tool("create_task", arguments, allow_claimed=True)
        task_id = created.task_id  # type: ignore[union-attr]
        assert UUID.fullmatch(task_id), created
        waited = await ok(client, "wait_task", id=task_id, timeout_s=0.1)
        assert (waited["task_id"], waited["status"]) == (task_id, "in_progress")
        await nursery.start(listen_for_tasks, http, env.client.url, [task_id], heard)

        async def status() -> Any:
            return await modern_task_state(client.session, task_id)

        at_gate_1 = line(task_id, "in_progress", "at gate 1")
        await until(status, lambda s: bool(at_gate_1.match(s.status_message or "")), "gate 1")
        (gate.parent / "gate.1").touch()
        at_gate_2 = line(task_id, "in_progress", "at gate 2")
        seen = await until(status, lambda s: bool(at_gate_2.match(s.status_message or "")), "2")
        assert seen.status == "working"
        (gate.parent / "gate.2").touch()
        final = await until(status, lambda s: s.status == "completed", "the task's end")
        assert final.result is not None
        assert final.result["structuredContent"]["result"]["task_id"] == task_id
        assert (final.status_message or "").startswith(f"task {task_id}: waiting — ")
        await eventually(
            lambda: bool(heard) and heard[-1]["params"]["status"] == "completed",
            "the completed task's notifications/tasks",
            lambda: repr(heard),
        )
        nursery.cancel_scope.cancel()
    assert {note["method"] for note in heard} == {"notifications/tasks"}
    assert {note["params"]["taskId"] for note in heard} == {task_id}
    assert any(at_gate_2.match(note["params"].get("statusMessage", "")) for note in heard)
    assert heard[-1]["params"]["statusMessage"] == final.status_message


async def test_update_task_as_mcp_task_names_the_coding_task(tmp_path: pathlib.Path) -> None:
    """update_task's MCP task has its own id; its status message names the coding task."""
    gate = tmp_path / "gate"
    async with task_server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hello")
        task_id = created["task_id"]
        await wait_done(env.client, task_id)
        params = {
            "name": "update_task",
            "arguments": {"id": task_id, "instructions": f"gates {gate}"},
            "task": {},
        }
        mcp_task_id = (await env.client.rpc("tools/call", params))["result"]["task"]["taskId"]
        assert mcp_task_id != task_id

        async def status() -> JSON:
            answer = await env.client.rpc("tasks/get", {"taskId": mcp_task_id})
            got: JSON = answer["result"]
            return got

        at_gate_1 = line(task_id, "in_progress", "at gate 1")
        await until(status, lambda s: bool(at_gate_1.match(s.get("statusMessage", ""))), "gate")
        (gate.parent / "gate.1").touch()
        (gate.parent / "gate.2").touch()
        await until(status, lambda s: s["status"] == "completed", "the follow-up's end")
        final = await status()
        assert final["statusMessage"].startswith(f"task {task_id}: waiting — ")
