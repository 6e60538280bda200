"""Webhook deliveries of task changes run by the stand-in agent through a real daemon and MCP
server: retried through failures, signed, each event delivered once after de-duplication."""

from __future__ import annotations

import json
import pathlib
import socket

from _support.polling import eventually
from _support.task_server import task_server, wait_done
from _support.webhook_receiver import webhook_receiver

from mcp_server._notify import NotifyConfig, RetryPolicy, Target

SECRET = "test-secret-not-a-real-one"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _config(*targets: Target, max_attempts: int = 20, **extra: object) -> NotifyConfig:
    policy = RetryPolicy(base_s=0.2, cap_s=1.0, max_attempts=max_attempts, timeout_s=1.0)
    return NotifyConfig(targets=targets, secret=SECRET, policy=policy, **extra)  # type: ignore[arg-type]


async def test_waiting_failed_completed_each_reach_the_receiver_once_through_failures(
    tmp_path: pathlib.Path,
) -> None:
    """500s and a hung answer are retried; each event arrives signed, once per delivery id."""
    async with webhook_receiver(SECRET, fail_first=2, hang_first=1) as receiver:
        config = _config(Target(receiver.url))
        async with task_server(tmp_path, notify=config) as env:
            client = env.client
            ok = (await client.ok("create_task", title="ok", instructions="hello"))["task_id"]
            bad = (await client.ok("create_task", title="bad", instructions="exit 3"))["task_id"]
            assert (await wait_done(client, ok))["status"] == "waiting"
            assert (await wait_done(client, bad))["status"] == "failed"
            await client.ok("end_task", id=ok)
            await eventually(
                lambda: len(receiver.unique_accepted()) == 3,
                "three events accepted",
                lambda: repr([(r.answered, r.delivery) for r in receiver.requests]),
            )
            status = await client.ok("check_status")
        kept = receiver.unique_accepted()
        bodies = [json.loads(r.body) for r in kept]
        assert sorted((b["task_id"], b["type"]) for b in bodies) == sorted(
            [(ok, "task.waiting"), (bad, "task.failed"), (ok, "task.completed")]
        )
        assert all(r.verified for r in receiver.requests)
        assert [r.delivery for r in kept] == [b["id"] for b in bodies]
        assert all(b["links"]["task"] == f"task://{b['task_id']}" for b in bodies)
        # The failures were retried under the same delivery ids; none was accepted twice.
        assert set(receiver.delivered_ids().values()) == {1}
        failed = [r for r in receiver.requests if r.answered != 200]
        assert [r.answered for r in failed].count(500) == 2
        assert [r.answered for r in failed].count(None) == 1
        assert {r.delivery for r in failed} <= {r.delivery for r in kept}
        view = status["notifications"]
        assert (view["outbox"], view["delivered"], view["dead_letters"]) == (0, 3, 0)
        errors = [f["error"] for f in view["last_failures"]]
        assert errors.count("HTTP 500") == 2
        assert any("timed out" in e for e in errors)
        assert view["targets"] == [receiver.url.removesuffix("hook") + "…"]


async def test_a_refusing_target_neither_delays_the_others_nor_is_lost_silently(
    tmp_path: pathlib.Path,
) -> None:
    """Connection refused: the other target gets its event at once; this one's turns dead."""
    dead_url = f"http://127.0.0.1:{_closed_port()}/hook"
    async with webhook_receiver(SECRET) as receiver:
        config = _config(Target(dead_url), Target(receiver.url), max_attempts=3)
        async with task_server(tmp_path, notify=config) as env:
            task = (await env.client.ok("create_task", title="t", instructions="hello"))["task_id"]
            await wait_done(env.client, task)
            await eventually(lambda: len(receiver.unique_accepted()) == 1, "the live target")
            assert env.notifier is not None
            notifier = env.notifier
            await eventually(lambda: notifier.status_view()["dead_letters"] == 1, "the dead letter")
            view = (await env.client.ok("check_status"))["notifications"]
        assert view["outbox"] == 0
        assert [f["attempt"] for f in view["last_failures"]] == [3, 2, 1]
        assert all("ConnectError" in f["error"] for f in view["last_failures"])
        dead = list((env.state / "notify" / "dead").glob("*.json"))
        assert len(dead) == 1
        letter = json.loads(dead[0].read_bytes())
        states = {d["target"]["url"]: d["state"] for d in letter["deliveries"]}
        assert states == {dead_url: "dead", receiver.url: "delivered"}
