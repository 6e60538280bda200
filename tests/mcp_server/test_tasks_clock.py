"""A wall clock that jumps: durations stay true and tasks keep their creation order."""

from __future__ import annotations

import datetime
import functools
import pathlib

import attrs
from _support.polling import eventually
from _support.task_server import task_server, wait_done

from mcp_server._tasks import TaskStore
from mcp_server._tasks._model import Clock, utcnow

TEN_YEARS = datetime.timedelta(days=3652)


@attrs.define
class JumpingWallClock:
    """The real wall clock plus an offset a test can change (a clock set back by an operator)."""

    offset: datetime.timedelta = datetime.timedelta(0)

    def now(self) -> datetime.datetime:
        return utcnow() + self.offset


async def test_backward_jump_mid_run(tmp_path: pathlib.Path) -> None:
    """A ten-year backward jump mid-run: duration_s and statistics stay >= 0, order holds."""
    wall = JumpingWallClock()
    store = functools.partial(TaskStore, tmp_path / "state", clock=Clock(wall=wall.now))
    async with task_server(tmp_path, store=store) as env:
        first = (await env.client.ok("create_task", title="first", instructions="hang"))["task_id"]
        await eventually(lambda: env.runner.get(first).session_id is not None)
        wall.offset = -TEN_YEARS
        second = await env.client.ok("create_task", title="second", instructions="hello")
        await wait_done(env.client, second["task_id"])
        ended = await env.client.ok("end_task", id=first)

        assert ended["report"]["outcome"] == "cancelled"
        assert ended["report"]["duration_s"] >= 0
        stats = await env.client.ok("report")
        assert stats["average_duration_seconds"] >= 0
        assert [t["task_id"] for t in stats["tasks"]] == [first, second["task_id"]]
        listing = await env.client.read("agent://tasks")
        assert [t["task_id"] for t in listing["tasks"]] == [first, second["task_id"]]
