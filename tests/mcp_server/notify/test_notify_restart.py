"""Nothing is lost across a crash: events in the outbox survive a SIGKILL of ``coding-agent up``,
and a change the crashed process never wrote to the outbox is derived at start-up."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import attrs
import httpx
import trio
from _support.agent_up import base_env, coding_agent_up
from _support.daemon import install_stand_in_agent
from _support.polling import eventually
from _support.task_server import Client, wait_done
from _support.webhook_receiver import webhook_receiver

from mcp_server._notify import Notifier, NotifyConfig, RetryPolicy, Target, change_key
from mcp_server._tasks import RunReport, TaskChange, TaskOptions
from mcp_server._tasks._model import finish_run, new_task, start_run, utcnow

SECRET = "test-secret-not-a-real-one"


async def test_events_in_the_outbox_are_delivered_after_a_sigkill_and_restart(
    tmp_path: pathlib.Path,
) -> None:
    """The receiver refuses until the server was SIGKILLed and restarted; then each event
    arrives once, under the id it was first tried with."""
    state, root = tmp_path / "state", tmp_path / "root"
    root.mkdir()
    env = base_env(
        CLAUDE_PATH=install_stand_in_agent(tmp_path),
        WEBHOOK_RETRY_BASE_S="0.2",
        WEBHOOK_RETRY_CAP_S="1",
    )
    async with webhook_receiver("", refuse=True) as receiver:
        args = ("--webhook-url", receiver.url)
        async with coding_agent_up(state, root, env, extra_args=args) as up:
            # The default secret: made once in the state dir (0600).
            secret_file = state / "webhook.secret"
            assert secret_file.stat().st_mode & 0o777 == 0o600
            receiver.secret = secret_file.read_text().strip()
            ids = await _two_waiting_tasks(up.url, up.token)
            await eventually(
                lambda: len({r.delivery for r in receiver.requests}) == 2,
                "a refused attempt per event",
                lambda: repr(receiver.requests),
            )
            assert len(list((state / "notify" / "outbox").glob("*.json"))) == 2
            up.kill()
            await up.process.wait()
        refused = {r.delivery for r in receiver.requests}
        assert receiver.accepted() == []
        receiver.refuse = False
        async with coding_agent_up(state, root, env, extra_args=args):
            await eventually(
                lambda: len(receiver.unique_accepted()) == 2,
                "both events after the restart",
                lambda: repr([(r.answered, r.delivery) for r in receiver.requests]),
            )
            await eventually(
                lambda: not list((state / "notify" / "outbox").glob("*.json")), "an empty outbox"
            )
    kept = receiver.unique_accepted()
    assert {r.delivery for r in kept} == refused
    assert sorted(json.loads(r.body)["task_id"] for r in kept) == sorted(ids)
    assert all(r.verified for r in receiver.requests)
    assert set(receiver.delivered_ids().values()) == {1}


async def _two_waiting_tasks(url: str, token: str) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=60, headers=headers) as http:
        client = Client(http, url)
        await client.initialize()
        ids = []
        for title in ("one", "two"):
            task: dict[str, Any] = await client.ok("create_task", title=title, instructions="hello")
            ids.append(task["task_id"])
        for task_id in ids:
            assert (await wait_done(client, task_id))["status"] == "waiting"
        return ids


async def test_a_change_never_written_to_the_outbox_is_derived_at_start_up(
    tmp_path: pathlib.Path,
) -> None:
    """A task whose state differs from the one recorded as announced (the process died between
    its transition and the outbox write) is announced when the notifier starts."""
    now = utcnow()
    task = new_task(
        title="t",
        instructions="hello",
        agent="claude",
        project_dir="",
        cwd=str(tmp_path),
        options=TaskOptions(),
        now=now,
    )
    announced = finish_run(start_run(task, now), RunReport("success", now, now), now)
    task = finish_run(start_run(announced, now, "again"), RunReport("error", now, now), now)
    quiet = attrs.evolve(announced, id="quiet")  # announced already: no event
    notify = tmp_path / "notify"
    notify.mkdir()
    seen = {announced.id: change_key(announced), quiet.id: change_key(quiet)}
    (notify / "seen.json").write_text(json.dumps(seen))
    async with webhook_receiver(SECRET) as receiver:
        config = NotifyConfig(
            targets=(Target(receiver.url),), secret=SECRET, policy=RetryPolicy(timeout_s=5)
        )
        notifier = Notifier(config, tmp_path)
        async with trio.open_nursery() as nursery:
            await nursery.start(notifier.run, lambda: [task, quiet])
            await eventually(lambda: len(receiver.unique_accepted()) == 1, "the derived event")
            nursery.cancel_scope.cancel()
    body = json.loads(receiver.unique_accepted()[0].body)
    assert (body["task_id"], body["type"], body["outcome"]) == (task.id, "task.failed", "error")
    assert json.loads((notify / "seen.json").read_text())[task.id] == "failed#2"


async def test_a_deleted_task_is_forgotten_from_the_announced_states(
    tmp_path: pathlib.Path,
) -> None:
    """clean_state's deletions leave no entry behind in seen.json."""
    now = utcnow()
    task = new_task(
        title="t",
        instructions="hello",
        agent="claude",
        project_dir="",
        cwd=str(tmp_path),
        options=TaskOptions(),
        now=now,
    )
    done = finish_run(start_run(task, now), RunReport("success", now, now), now)
    seen = tmp_path / "notify" / "seen.json"
    notifier = Notifier(NotifyConfig(secret=SECRET), tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run, list)
        notifier(TaskChange(done.id, "transition", done))
        await eventually(lambda: done.id in json.loads(seen.read_text()), "the announced state")
        notifier(TaskChange(done.id, "deleted", None))
        await eventually(lambda: json.loads(seen.read_text()) == {}, "the state forgotten")
        nursery.cancel_scope.cancel()
