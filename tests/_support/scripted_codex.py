"""A scripted stand-in for the OpenAI Responses API on 127.0.0.1, for driving the real Codex CLI.

Usage::

    async with open_scripted_codex_model() as model:
        model.script(ShellCall("echo hi > f.txt"), Reply("done"))
        env = codex_env(model.base_url, home)  # _support.agent_clis: CODEX_HOME/config.toml
        ...  # run the real ``codex exec --json`` with ``env``

Codex POSTs ``/v1/responses`` (``stream: true``, its tool list: ``exec_command``, the freeform
``apply_patch``, ...) and reads server-sent events: one ``response.output_item.done`` per output
item, then ``response.completed`` with the usage (as the pinned Codex reads them). Each queued step
answers one such call: ``Reply`` (an assistant message), ``ToolCall`` (a ``function_call``;
``ShellCall`` makes it run a command), ``Patch`` (an ``apply_patch`` custom tool call, which
Codex reports as a ``file_change``), ``Reasoned`` (a reasoning summary before another step),
``StreamFailure`` (``response.failed``), ``ApiError`` (an HTTP error) and ``Hold``; the shared
steps come from ``scripted_model``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from .scripted_http import send_json, send_sse, serve_loopback
from .scripted_model import ApiError, Reply, ScriptedEndpoint, ToolCall

__all__ = [
    "Patch",
    "Reasoned",
    "ScriptedCodexModel",
    "ShellCall",
    "StreamFailure",
    "open_scripted_codex_model",
]


def ShellCall(command: str) -> ToolCall:
    """A ``function_call`` of Codex's ``exec_command`` tool: it runs ``command`` in the task dir."""
    return ToolCall("exec_command", {"cmd": command})


@attrs.frozen
class Patch:
    """An ``apply_patch`` custom tool call with ``patch`` (``*** Begin Patch`` ... text)."""

    patch: str


@attrs.frozen
class Reasoned:
    """A reasoning item with ``summary``, then the output of ``then``."""

    summary: str
    then: Reply | ToolCall | Patch


@attrs.frozen
class StreamFailure:
    """A ``response.failed`` event: the model gave up in mid-stream."""

    message: str = "scripted failure"
    code: str = "server_error"


class ScriptedCodexModel(ScriptedEndpoint):
    """The Responses API stand-in; ``base_url`` ends in ``/v1`` as Codex's provider wants."""

    async def _route(self, stream: trio.SocketStream, method: str, path: str, body: bytes) -> None:
        if method == "POST" and path == "/v1/responses":
            await self._responses(stream, json.loads(body))
        else:
            error = {"message": f"no route {path}", "type": "invalid_request_error"}
            await send_json(stream, 404, {"error": error})

    async def _responses(self, stream: trio.SocketStream, body: dict[str, Any]) -> None:
        main = bool(body.get("tools"))
        step = await self._take_step(body, main=main, side=Reply("Scripted session"))
        if isinstance(step, ApiError):
            error = {"message": step.message, "type": step.error_type, "code": None}
            await send_json(stream, step.status, step.body or {"error": error}, step.headers)
            return
        response_id = self._next_id("resp")
        if isinstance(step, StreamFailure):
            failed = {
                "id": response_id,
                "status": "failed",
                "error": {"code": step.code, "message": step.message},
            }
            await send_sse(
                stream, [("response.failed", {"type": "response.failed", "response": failed})]
            )
            return
        frames: list[tuple[str | None, Any]] = [
            ("response.created", {"type": "response.created", "response": {"id": response_id}})
        ]
        for item in self._items(step):
            frames.append(
                ("response.output_item.done", {"type": "response.output_item.done", "item": item})
            )
        usage = {
            "input_tokens": max(1, len(json.dumps(body.get("input", []))) // 4),
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 8,
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        completed = {"id": response_id, "status": "completed", "usage": usage}
        frames.append(("response.completed", {"type": "response.completed", "response": completed}))
        await send_sse(stream, frames)

    def _items(self, step: Reply | ToolCall | Patch | Reasoned) -> list[dict[str, Any]]:
        if isinstance(step, Reasoned):
            summary = [{"type": "summary_text", "text": step.summary}]
            reasoning = {"type": "reasoning", "id": self._next_id("rs"), "summary": summary}
            return [reasoning, *self._items(step.then)]
        if isinstance(step, Reply):
            return [self._message(step.text)]
        if isinstance(step, Patch):
            return [
                {
                    "type": "custom_tool_call",
                    "id": self._next_id("ctc"),
                    "call_id": self._next_id("call"),
                    "name": "apply_patch",
                    "input": step.patch,
                    "status": "completed",
                }
            ]
        items = [self._message(step.text)] if step.text else []
        items.append(
            {
                "type": "function_call",
                "id": self._next_id("fc"),
                "call_id": self._next_id("call"),
                "name": step.name,
                "arguments": json.dumps(step.input),
            }
        )
        return items

    def _message(self, text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "id": self._next_id("msg"),
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }


@asynccontextmanager
async def open_scripted_codex_model() -> AsyncIterator[ScriptedCodexModel]:
    """Serve a ``ScriptedCodexModel`` on ``127.0.0.1:0`` for the duration of the block."""
    model = ScriptedCodexModel()
    async with serve_loopback(model._handle) as base_url:
        model.base_url = f"{base_url}/v1"
        yield model
