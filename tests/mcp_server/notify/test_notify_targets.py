"""Where notifications go: the ntfy-style format, and a task's notify_url against the allowlist."""

from __future__ import annotations

import json
import pathlib

from _support.polling import eventually
from _support.task_server import task_server, wait_done
from _support.webhook_receiver import webhook_receiver

from mcp_server._notify import NotifyConfig, RetryPolicy, Target

SECRET = "test-secret-not-a-real-one"
POLICY = RetryPolicy(base_s=0.2, cap_s=1.0, timeout_s=2.0)


async def test_ntfy_targets_get_a_signed_plain_text_sentence_with_title_priority_tags(
    tmp_path: pathlib.Path,
) -> None:
    """An ``ntfy+`` target gets Title/Priority/Tags headers and a short sentence as the body."""
    async with webhook_receiver(SECRET) as receiver:
        config = NotifyConfig(targets=(Target(receiver.url, "ntfy"),), secret=SECRET, policy=POLICY)
        async with task_server(tmp_path, notify=config) as env:
            task = await env.client.ok("create_task", title="Fix the parser", instructions="exit 3")
            await wait_done(env.client, task["task_id"])
            await eventually(lambda: len(receiver.unique_accepted()) == 1, "the ntfy post")
    (request,) = receiver.unique_accepted()
    assert request.verified
    assert request.headers["title"] == "Coding task failed: Fix the parser"
    assert request.headers["priority"] == "high"
    assert request.headers["tags"] == "x"
    assert request.headers["content-type"].startswith("text/plain")
    assert request.headers["x-coding-agent-event"] == "task.failed"
    assert request.body.decode().startswith("Task 'Fix the parser' failed")


async def test_a_task_notify_url_is_refused_unless_its_host_is_allowed(
    tmp_path: pathlib.Path,
) -> None:
    """No allowlist refuses every notify_url; http only on loopback; the error names the list."""
    config = NotifyConfig(secret=SECRET, allowed_hosts=frozenset({"hooks.example.org"}))
    async with task_server(tmp_path, notify=config) as env:

        async def refusal(url: str) -> str:
            result = await env.client.call(
                "create_task", title="t", instructions="hello", notify_url=url
            )
            assert result.get("isError") is True, result
            structured = result["structuredContent"]
            assert structured["error"]["code"] == "invalid_arguments"
            return str(structured["message"])

        message = await refusal("https://elsewhere.example.com/hook")
        assert "'elsewhere.example.com' is not in the allowlist" in message
        assert "NOTIFY_ALLOWED_HOSTS" in message
        assert "hooks.example.org" in message
        assert "@ $.arguments.notify_url" in message
        assert "expected https" in await refusal("http://hooks.example.org/hook")
        assert "expected an http(s) URL" in await refusal("ftp://hooks.example.org/hook")
        assert "not in the allowlist" in await refusal("http://127.0.0.1:9/hook")
        assert env.runner.active_tasks() == []


async def test_an_allowed_notify_url_gets_its_task_events_besides_the_configured_targets(
    tmp_path: pathlib.Path,
) -> None:
    """A loopback notify_url whose host is allowed hears its own task only."""
    async with (
        webhook_receiver(SECRET) as owner,
        webhook_receiver(SECRET, path="/mine") as own,
    ):
        config = NotifyConfig(
            targets=(Target(owner.url),),
            secret=SECRET,
            allowed_hosts=frozenset({"127.0.0.1"}),
            policy=POLICY,
        )
        async with task_server(tmp_path, notify=config) as env:
            client = env.client
            mine = await client.ok(
                "create_task", title="a", instructions="hello", notify_url=own.url
            )
            other = await client.ok("create_task", title="b", instructions="hello")
            await wait_done(client, mine["task_id"])
            await wait_done(client, other["task_id"])
            await eventually(lambda: len(owner.unique_accepted()) == 2, "the owner's two")
            await eventually(lambda: len(own.unique_accepted()) == 1, "the task's own")
    (request,) = own.unique_accepted()
    assert json.loads(request.body)["task_id"] == mine["task_id"]
    assert request.path == "/mine"
