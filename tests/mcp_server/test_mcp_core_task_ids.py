"""The core's hook for tools that name their MCP tasks (``Tool.mint_task_id``) and status messages.

A tool minting its task ids gets them as the MCP task's id in both eras, and its call is answered
only once the handler committed, so the id names something when the client learns it. Each test
runs the core under pytest-trio's ``autojump_clock``: a handler "taking long" is a virtual sleep,
longer than the 2026-07-28 pre-task window, with no real waiting.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
from _support.polling import eventually
from trio.testing import MockClock

from mcp_server import InternalError, InvalidParams, Registry, RequestContext, Tool, ToolResult
from mcp_server._core import Core, McpTaskRecord, ServerInfo, TrioMcpTaskGroup
from mcp_server._core._jsonrpc import Request

MODERN = "2026-07-28"
JSON = dict[str, Any]
TASKS: JSON = {"extensions": {"io.modelcontextprotocol/tasks": {}}}


class Peer:
    """Collects notifications (a legacy session's standalone stream)."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, JSON]] = []

    async def notify(self, method: str, params: JSON) -> None:
        self.notifications.append((method, params))

    async def request(self, method: str, params: JSON) -> JSON:
        raise AssertionError(f"unexpected {method}")

    def close_stream(self) -> None:
        return None


class World:
    """A running core, the things its ``make`` tool made, and what its task listener heard."""

    def __init__(self, core: Core, registry: Registry) -> None:
        self.core = core
        self.registry = registry
        self.made: dict[str, str] = {}
        self.heard: list[JSON] = []
        self.release = trio.Event()

    async def legacy(self, session: Any, method: str, params: JSON) -> JSON:
        request = Request(7, method, params)
        return await self.core.handle(request, self.core.legacy_envelope(request, session), Peer())

    async def modern(self, method: str, params: JSON, name: str) -> JSON:
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": TASKS,
        }
        request = Request(1, method, {**params, "_meta": meta})
        headers = [("MCP-Protocol-Version", MODERN), ("Mcp-Method", method), ("Mcp-Name", name)]
        return await self.core.handle(request, self.core.modern_envelope(request, headers), Peer())

    def session(self, name: str = "s1") -> Any:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}}
        state, _ = self.core.initialize(params, name)
        return state


def make_tool(world: World, mint: Callable[[], str] | None) -> Tool:
    """``make``: takes a while, makes a thing named by its MCP task id, says so in its status,
    then holds until ``world.release``."""

    async def handler(ctx: RequestContext, args: JSON) -> ToolResult:
        assert ctx.task_id is not None
        await trio.sleep(1)  # virtual (autojump): far beyond the pre-task window
        world.made[ctx.task_id] = "made"
        ctx.report_status(f"thing {ctx.task_id}: made")
        await world.release.wait()
        ctx.report_status(f"thing {ctx.task_id}: done")
        return ToolResult([{"type": "text", "text": ctx.task_id}])

    return Tool(
        "make", "Make", {"type": "object"}, handler, task_support="optional", mint_task_id=mint
    )


@pytest.fixture
async def world() -> AsyncIterator[World]:
    group = TrioMcpTaskGroup()
    registry = Registry()
    heard: list[JSON] = []

    def listener(record: McpTaskRecord) -> None:
        heard.append(record.modern_json(inline=False))

    core = Core(
        registry, ServerInfo("t", "1"), secret=b"k" * 32, task_group=group, task_listener=listener
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(group.run)
        built = World(core, registry)
        built.heard = heard
        yield built
        nursery.cancel_scope.cancel()


def counter(prefix: str) -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{prefix}-{next(numbers)}"


async def test_legacy_task_takes_the_minted_id_once_it_names_something(
    world: World, autojump_clock: MockClock
) -> None:
    """2025-11-25: the task's id is the tool's; the answer waits until the handler committed."""
    world.registry.add_tool(make_tool(world, counter("thing")))
    session = world.session()
    created = await world.legacy(session, "tools/call", {"name": "make", "task": {}})
    task = created["task"]
    assert task["taskId"] == "thing-1"
    assert world.made == {"thing-1": "made"}
    assert task["statusMessage"] == "thing thing-1: made"
    world.release.set()
    result = await world.legacy(session, "tasks/result", {"taskId": "thing-1"})
    assert result["content"] == [{"type": "text", "text": "thing-1"}]
    listed = await world.legacy(session, "tasks/list", {})
    assert [(t["taskId"], t["status"], t["statusMessage"]) for t in listed["tasks"]] == [
        ("thing-1", "completed", "thing thing-1: done")
    ]


async def test_modern_task_takes_the_minted_id_past_the_pre_task_window(
    world: World, autojump_clock: MockClock
) -> None:
    """2026-07-28: the same, though the handler commits long after the pre-task window."""
    world.registry.add_tool(make_tool(world, counter("modern")))
    created = await world.modern("tools/call", {"name": "make"}, "make")
    assert (created["resultType"], created["taskId"]) == ("task", "modern-1")
    assert world.made == {"modern-1": "made"}
    world.release.set()
    await eventually(
        lambda: world.heard[-1]["status"] == "completed", "completion", lambda: repr(world.heard)
    )
    assert [(h["status"], h["statusMessage"]) for h in world.heard] == [
        ("working", "thing modern-1: made"),
        ("working", "thing modern-1: done"),
        ("completed", "thing modern-1: done"),  # the last message stays
    ]
    got = await world.modern("tasks/get", {"taskId": "modern-1"}, "modern-1")
    assert (got["status"], got["statusMessage"]) == ("completed", "thing modern-1: done")


async def test_a_taken_minted_id_fails_the_call_and_keeps_the_task(
    world: World, autojump_clock: MockClock
) -> None:
    """A minted id the store holds already is refused; the task holding it is untouched."""
    world.registry.add_tool(make_tool(world, lambda: "same"))
    session = world.session()
    await world.legacy(session, "tools/call", {"name": "make", "task": {}})
    with pytest.raises(InternalError, match="task id same is taken"):
        await world.legacy(session, "tools/call", {"name": "make", "task": {}})
    seen = await world.legacy(session, "tasks/get", {"taskId": "same"})
    assert seen["status"] == "working"


async def test_minted_ids_stay_scoped_to_their_session(
    world: World, autojump_clock: MockClock
) -> None:
    """Another session cannot see a task by its minted id."""
    world.registry.add_tool(make_tool(world, counter("mine")))
    await world.legacy(world.session("s1"), "tools/call", {"name": "make", "task": {}})
    with pytest.raises(InvalidParams, match="Unknown task"):
        await world.legacy(world.session("s2"), "tasks/get", {"taskId": "mine-1"})


async def test_a_call_cancelled_before_the_commit_cancels_its_task(
    world: World, autojump_clock: MockClock
) -> None:
    """A call given up before its handler committed cancels the task and forgets it."""
    cancelled = trio.Event()

    async def slow(ctx: RequestContext, args: JSON) -> ToolResult:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    world.registry.add_tool(
        Tool(
            "slow",
            "S",
            {"type": "object"},
            slow,
            task_support="optional",
            mint_task_id=lambda: "slow-1",
        )
    )
    session = world.session()
    with trio.move_on_after(5):
        await world.legacy(session, "tools/call", {"name": "slow", "task": {}})
    with trio.fail_after(10):
        await cancelled.wait()
    with pytest.raises(InvalidParams, match="Unknown task"):
        await world.legacy(session, "tasks/get", {"taskId": "slow-1"})


async def test_status_messages_reach_the_session_stream_in_order(
    world: World, autojump_clock: MockClock
) -> None:
    """Status notifications carry the state when sent: the last one is the final state."""
    world.registry.add_tool(make_tool(world, None))
    session = world.session()
    peer = session.peer = Peer()
    created = await world.legacy(session, "tools/call", {"name": "make", "task": {}})
    task_id = created["task"]["taskId"]
    await eventually(lambda: bool(peer.notifications), "a notification")
    world.release.set()
    await world.legacy(session, "tasks/result", {"taskId": task_id})
    await eventually(
        lambda: peer.notifications[-1][1]["status"] == "completed",
        "the completed task's notification",
        lambda: repr(peer.notifications),
    )
    seen = [(p["taskId"], p["status"], p["statusMessage"]) for _, p in peer.notifications]
    assert {method for method, _ in peer.notifications} == {"notifications/tasks/status"}
    assert seen[0] == (task_id, "working", f"thing {task_id}: made")
    assert seen[-1] == (task_id, "completed", f"thing {task_id}: done")
