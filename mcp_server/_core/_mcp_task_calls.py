"""MCP protocol tasks on the wire: ``tools/call`` run as a task, and the ``tasks/*`` methods.

The handler of a task call runs in the core's ``McpTaskGroup``, beside the request that started
it, under the record's cancel scope.
"""

from __future__ import annotations

import logging
from typing import Final

from . import _versions as v
from ._concurrency import McpEvent, McpTaskGroup
from ._context import PRE_TASK_WINDOW_S, Envelope, HandlerContext, NeedInput, Peer, PreTask
from ._errors import InternalError, InvalidParams, McpError, MethodNotFound, MissingCapability
from ._input import client_answers, input_required
from ._jsonrpc import Request
from ._listing import ListPages
from ._mcp_tasks import DEFAULT_TTL_MS, McpTaskRecord, McpTaskStore
from ._observers import McpListener
from ._paging import page_of, page_offset
from ._registry import JSON, Tool
from ._render import tool_result_json
from ._schema import kind_of
from ._state import Signer

logger = logging.getLogger("mcp_server.core")

MAX_TTL_MS: Final = 24 * 3600 * 1000


def wants_task(tool: Tool, params: JSON, env: Envelope) -> bool:
    if env.era == "legacy":
        task = params.get("task")
        if task is None:
            if tool.task_support == "required":
                raise MethodNotFound(f"tools/call without a task for {tool.name}")
            return False
        if type(task) is not dict:
            raise InvalidParams(f"expected object, got {kind_of(task)} @ $.params.task")
        return tool.task_support != "forbidden"
    declared = declares_tasks(env)
    if tool.task_support == "required" and not declared:
        raise MissingCapability(
            f"{tool.name} runs only as a task",
            {"extensions": {v.TASKS_EXTENSION: {}}},
        )
    return declared and tool.task_support != "forbidden"


class McpTaskCalls:
    """``tools/call`` as an MCP task, and the ``tasks/*`` methods over one task store."""

    def __init__(
        self,
        tasks: McpTaskStore,
        signer: Signer,
        pages: ListPages,
        group: McpTaskGroup | None,
        listener: McpListener[McpTaskRecord] | None,
    ) -> None:
        self.tasks = tasks
        self.signer = signer
        self.pages = pages
        self.group = group
        self.listener = listener

    async def start(self, request: Request, tool: Tool, arguments: JSON, env: Envelope) -> JSON:
        """Create a task and run the handler in the core's task group.

        On the 2026-07-28 leg the handler first gets ``PRE_TASK_WINDOW_S`` (or until it reports
        progress, logs, asks ordinary input or returns) to ask ``before_task`` input: missing
        answers end the call with ``input_required`` (MRTR) and no task is created. A tool that
        mints its task ids (``Tool.mint_task_id``) is answered, in either era, only once its
        handler commits: the id the client learns already names what the tool made.
        """
        group = self.group
        if group is None or not group.running:
            raise InternalError("tasks are not available")
        ttl = DEFAULT_TTL_MS
        task_params = request.params.get("task")
        if type(task_params) is dict and type(task_params.get("ttl")) is int:
            ttl = max(1000, min(task_params["ttl"], MAX_TTL_MS))
        owner = env.session.session_id if env.session else None
        session = env.session
        on_change: McpListener[McpTaskRecord] | None = None
        if session is not None and session.peer is not None:
            session_peer = session.peer

            sent: list[JSON] = []

            async def send(task: McpTaskRecord) -> None:
                # The state when sent, not when changed: spawned sends may run in any order,
                # and a stale one must not follow a newer one (nor the same one twice).
                state = task.legacy_json()
                if sent and sent[0] == state:
                    return
                sent[:] = [state]
                await session_peer.notify("notifications/tasks/status", state)

            def announce(task: McpTaskRecord) -> None:
                if group.running:
                    group.spawn(send, task)

            on_change = announce
        elif env.era == "modern":
            on_change = self.listener
        mint = tool.mint_task_id
        task_id = None if mint is None else mint()
        record = self.tasks.create(owner, env.era, ttl, group, on_change=on_change, task_id=task_id)
        task_peer: Peer = session.peer if session is not None and session.peer else _NullPeer()
        ctx = HandlerContext(env, task_peer, request.id, task=record)
        if env.era == "modern":
            name = str(request.params.get("name"))
            ctx.answers = client_answers(self.signer, request, env, name)
            pre = ctx.pre_task = PreTask(group)
            group.spawn(_run_task, record, tool, arguments, ctx)
            if mint is None:
                await group.wait(pre.decided, PRE_TASK_WINDOW_S)
            else:
                await self._until(pre.decided, record)
            ctx.pre_task = None
            if pre.need is not None:
                record.scope.cancel()
                self.tasks.discard(record.task_id)
                need = NeedInput(pre.need)
                return input_required(self.signer, request, name, ctx.answers, need)
            result = record.modern_json(inline=False)
            result["resultType"] = "task"
            return result
        committed = ctx.committed = group.event()
        group.spawn(_run_task, record, tool, arguments, ctx)
        if mint is not None:
            await self._until(committed, record)
        return {"task": record.legacy_json()}

    async def _until(self, event: McpEvent, record: McpTaskRecord) -> None:
        """Wait for ``event`` before announcing ``record``; a call cancelled meanwhile cancels
        the task, which no client has heard of."""
        try:
            await event.wait()
        except BaseException:
            record.on_change = None
            record.scope.cancel()
            self.tasks.discard(record.task_id)
            raise

    def _task_of(self, request: Request, env: Envelope) -> McpTaskRecord:
        """The task a ``tasks/*`` request names, if the caller may see it."""
        if env.era == "modern" and not declares_tasks(env):
            raise MissingCapability(
                f"{request.method} needs the {v.TASKS_EXTENSION} extension",
                {"extensions": {v.TASKS_EXTENSION: {}}},
            )
        owner = env.session.session_id if env.session else None
        return self.tasks.get(request.params.get("taskId"), owner)

    async def get(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        """``tasks/get``."""
        record = self._task_of(request, env)
        if env.era == "modern":
            result = record.modern_json(inline=True)
            result["resultType"] = "complete"
            return result
        return record.legacy_json()

    async def result(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        """``tasks/result``."""
        record = self._task_of(request, env)
        await record.done.wait()
        if record.result is None:
            error = record.error or InternalError(f"Task {record.status}").to_json()
            raise McpError(error["code"], error["message"], error.get("data"))
        result = dict(record.result)
        meta = dict(result.get("_meta") or {})
        meta[v.META_RELATED_TASK] = {"taskId": record.task_id}
        result["_meta"] = meta
        return result

    async def listing(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        """``tasks/list``."""
        owner = env.session.session_id if env.session else None
        records = [r.legacy_json() for r in self.tasks.listing(owner)]
        offset = page_offset(self.signer, request.params.get("cursor"), "tasks")
        return page_of(self.signer, "tasks", records, offset=offset, size=self.pages.page_size)

    async def cancel(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        """``tasks/cancel``."""
        record = self._task_of(request, env)
        if env.era == "modern":
            record.scope.cancel()
            record.set_status("cancelled", "Cancelled by the client")
            return {}
        if record.terminal:
            raise InvalidParams(f"Task {record.task_id} is already {record.status}")
        record.scope.cancel()
        record.set_status("cancelled", "Cancelled by the client")
        return record.legacy_json()

    async def update(self, request: Request, env: Envelope, peer: Peer) -> JSON:
        """``tasks/update``."""
        record = self._task_of(request, env)
        responses = request.params.get("inputResponses")
        if type(responses) is not dict:
            raise InvalidParams(
                f"expected object, got {kind_of(responses)} @ $.params.inputResponses"
            )
        if not record.terminal:
            record.deliver(responses)
        return {}


async def _run_task(
    record: McpTaskRecord, tool: Tool, arguments: JSON, ctx: HandlerContext
) -> None:
    try:
        with record.scope:
            try:
                result = await tool.handler(ctx, arguments)
                ctx.commit()
            except McpError as exc:
                ctx.commit()
                record.error = exc.to_json()
                record.set_status("failed", exc.message)
                return
            except Exception:
                logger.exception("task handler of %s failed", tool.name)
                record.error = InternalError().to_json()
                record.set_status("failed", "Internal error")
                return
            record.result = tool_result_json(result)
            failed = result.is_error and record.era == "legacy"
            record.set_status("failed" if failed else "completed")
        if not record.terminal:
            record.set_status("cancelled", "Cancelled")
    finally:
        ctx.commit()  # an ended handler never holds its call's answer


class _NullPeer:
    """Where a task's notifications go when no stream can carry them."""

    async def notify(self, method: str, params: JSON) -> None:
        return None

    async def request(self, method: str, params: JSON) -> JSON:
        raise MissingCapability(f"No stream to send {method} on", {})

    def close_stream(self) -> None:
        return None


def declares_tasks(env: Envelope) -> bool:
    """True when a 2026-07-28 client declared the tasks extension."""
    extensions = env.client_capabilities.get("extensions")
    return isinstance(extensions, dict) and v.TASKS_EXTENSION in extensions
