"""Asking a person about a pending permission request through the MCP client (elicitation).

A call that waits on a task (``wait_task``, or ``create_task``/``update_task`` run as MCP
tasks) from a client that can elicit asks about each pending request with one form: allow or
deny, an optional message, and "allow this rule for the task". On a legacy session that is an
``elicitation/create`` request; on 2026-07-28 the call ends ``input_required`` under the key
``approval-<request id>`` and its retry replays the handler, which then finds the answer (and
applies it only if the request is still pending). The form and its answer are plain data here;
:func:`ask_while_pending` runs one ask and gives up on it once the request is decided elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import attrs
import trio

from mcp_server._core import JSON, RequestContext

from ._live import describe_input
from ._model import PendingApproval, Task

APPROVAL_FORM: JSON = {
    "type": "object",
    "properties": {
        "decision": {
            "type": "string",
            "title": "Decision",
            "description": "Let the agent use the tool, or not.",
            "enum": ["allow", "deny"],
        },
        "message": {
            "type": "string",
            "title": "Message",
            "description": "Why (optional; a deny's message reaches the agent).",
        },
        "remember": {
            "type": "boolean",
            "title": "Allow this rule for the task",
            "description": "Also allow the same use for the rest of the task.",
            "default": False,
        },
    },
    "required": ["decision"],
}
"""The form of one approval (flat primitives only, as elicitation allows)."""


@attrs.frozen
class Answer:
    """A person's answer to the approval form."""

    behavior: Literal["allow", "deny"]
    message: str | None
    remember: bool


def can_elicit(ctx: RequestContext) -> bool:
    """Whether the client declared the elicitation capability."""
    return isinstance(ctx.client_capabilities.get("elicitation"), dict)


def input_key(request: PendingApproval) -> str:
    """The name of the 2026-07-28 input request for ``request``."""
    return f"approval-{request.request_id}"


def approval_message(task: Task, request: PendingApproval) -> str:
    """What the form says: which task, which tool with what, and until when."""
    why = f" ({request.description})" if request.description else ""
    return (
        f"Task {task.title!r} ({task.id}): the agent asks to use "
        f"{describe_input(request.tool_name, request.input, limit=500)}{why}. "
        f"Denied automatically at {request.timeout_at.isoformat(timespec='seconds')}."
    )


def read_answer(result: Any) -> Answer | None:
    """The person's answer; ``None`` when they declined, cancelled, or sent no valid decision."""
    if not isinstance(result, dict) or result.get("action") != "accept":
        return None
    content = result.get("content")
    if not isinstance(content, dict):
        return None
    decision = content.get("decision")
    if decision not in ("allow", "deny"):
        return None
    message = content.get("message")
    return Answer(
        behavior=decision,
        message=message if isinstance(message, str) and message.strip() else None,
        remember=content.get("remember") is True,
    )


async def ask_while_pending(
    still_pending: Callable[[], bool],
    changed: Callable[[], trio.Event],
    ask: Callable[[], Awaitable[JSON]],
) -> JSON | None:
    """``ask()``'s result, or ``None`` once ``still_pending()`` turned false first (the request
    was decided elsewhere: the approval timeout, the ``approve`` tool, the run's end)."""
    result: JSON | None = None

    async def watch(scope: trio.CancelScope) -> None:
        while True:
            event = changed()  # before reading: no missed wake-up
            if not still_pending():
                break
            await event.wait()
        scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery.cancel_scope)
            result = await ask()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            # The one error of the ask (a 2026-07-28 call's "input required", a lost client),
            # as the caller would have seen it without the watcher.
            raise group.exceptions[0] from None
        raise
    return result
