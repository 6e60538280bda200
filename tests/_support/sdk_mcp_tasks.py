"""MCP protocol tasks through the official SDK client (``mcp`` 2.3.0), both eras.

The SDK has no typed 2026-07-28 tasks extension nor a ``CreateTaskResult`` arm for a legacy
``tools/call``; these fill the gap:

    async with Client(url, extensions=[TasksExtension()]) as client:      # 2026-07-28
        created = await client.session.call_tool(name, args, allow_claimed=True)  # ModernTask
        state = await poll_modern(client.session, created.task_id)
    async with Client(url, mode="legacy") as client:                      # 2025-11-25
        task = await legacy_task_call(client, name, args)
    watch = LegacyTaskStatus()  # Client(url, mode="legacy", extensions=[watch]): watch.heard
"""

from __future__ import annotations

from typing import Any, Literal

import mcp_types as types
import trio
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, NotificationBinding, ResultClaim
from mcp.client.session import ClientSession
from pydantic import ConfigDict
from pydantic.alias_generators import to_camel

__all__ = [
    "TASKS_EXTENSION",
    "LegacyTaskStatus",
    "ModernCancelTask",
    "ModernGetTask",
    "ModernTask",
    "ModernTaskParams",
    "ModernTaskState",
    "TasksExtension",
    "legacy_task_call",
    "modern_task_state",
    "poll_modern",
]

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"


class ModernTask(types.Result):
    """A 2026-07-28 ``CreateTaskResult`` / ``tasks/get`` answer (the tasks extension)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None


class ModernTaskState(types.Result):
    """``tasks/get`` on the extension: the task with its result or error inline."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    task_id: str
    status: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    status_message: str | None = None


class ModernTaskParams(types.RequestParams):
    task_id: str


class ModernGetTask(types.Request[ModernTaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: ModernTaskParams
    name_param = "taskId"


class ModernCancelTask(types.Request[ModernTaskParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: ModernTaskParams
    name_param = "taskId"


async def poll_modern(session: ClientSession, task_id: str) -> ModernTaskState:
    """``tasks/get`` until the task is terminal (bounded by the caller's deadline)."""
    while True:
        state = await modern_task_state(session, task_id)
        if state.status in ("completed", "failed", "cancelled"):
            return state
        await trio.sleep(0.05)


class TasksExtension(ClientExtension):
    """The client side of ``io.modelcontextprotocol/tasks``: waits for a task's inline result."""

    identifier = TASKS_EXTENSION

    def __init__(self) -> None:
        self.created: list[ModernTask] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=ModernTask, resolve=self.resolve)]

    async def resolve(self, task: ModernTask, ctx: ClaimContext) -> types.CallToolResult:
        self.created.append(task)
        state = await poll_modern(ctx.session, task.task_id)
        assert state.status == "completed", state
        return types.CallToolResult.model_validate(state.result)


async def modern_task_state(session: ClientSession, task_id: str) -> ModernTaskState:
    """One ``tasks/get`` on the extension."""
    request = ModernGetTask(params=ModernTaskParams(task_id=task_id))
    return await session.send_request(request, ModernTaskState)


async def legacy_task_call(client: Client, name: str, arguments: dict[str, Any]) -> types.Task:
    """A task-augmented ``tools/call`` (2025-11-25 ``params.task``); returns the created task.

    SDK 2.3.0 validates every ``tools/call`` answer as a ``CallToolResult`` and has no
    ``CreateTaskResult`` arm for it, so this one request goes through the session's JSON-RPC
    dispatcher; the follow-ups use the public typed ``send_request``.
    """
    params = {"name": name, "arguments": arguments, "task": {"ttl": 60_000}}
    raw = await client.session._dispatcher.send_raw_request("tools/call", params)
    return types.CreateTaskResult.model_validate(raw, by_name=False).task


class LegacyTaskStatus(ClientExtension):
    """Hears 2025-11-25 ``notifications/tasks/status`` (SDK 2.3.0 surfaces them to no handler;
    a notification binding does), in the order the client dispatched them."""

    identifier = "dev.coding-agent.tests/task-status"

    def __init__(self) -> None:
        self.heard: list[types.TaskStatusNotificationParams] = []

    def notifications(self) -> list[NotificationBinding[Any]]:
        return [
            NotificationBinding(
                method="notifications/tasks/status",
                params_type=types.TaskStatusNotificationParams,
                handler=self._hear,
            )
        ]

    async def _hear(self, params: types.TaskStatusNotificationParams) -> None:
        self.heard.append(params)
