"""A scripted stand-in for the Gemini API on 127.0.0.1, for driving the real Gemini CLI.

Usage::

    async with open_scripted_gemini_model() as model:
        model.script(ShellCommand("ls"), Reply("There are two files."))
        env = gemini_env(model.base_url, home)  # _support.agent_clis: settings.json, base URL
        ...  # run the real ``gemini -o stream-json`` with ``env``

Gemini CLI POSTs ``/v1beta/models/MODEL:streamGenerateContent?alt=sse`` with its tool list and
reads ``data:`` lines, each a ``GenerateContentResponse`` (the pinned CLI's shape). Each queued
step answers one such call: ``Reply`` (text), ``StreamedReply`` (text in several chunks, which
the CLI prints as several ``delta`` messages), ``ToolCall`` (a ``functionCall``;
``ShellCommand`` is its ``run_shell_command``), ``ApiError`` (an HTTP error in Google's shape,
``error_type`` being the status such as ``RESOURCE_EXHAUSTED``) and ``Hold``. The shared steps
come from ``scripted_model``. Calls without tools (``generateContent``) are side calls and
``countTokens`` gets an estimate; neither consumes the script.
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
    "ScriptedGeminiModel",
    "ShellCommand",
    "StreamedReply",
    "open_scripted_gemini_model",
]

_PREFIX = "/v1beta/models/"


def ShellCommand(command: str, description: str = "scripted command") -> ToolCall:
    """A ``functionCall`` of Gemini CLI's ``run_shell_command`` (offered in ``yolo`` mode only)."""
    return ToolCall("run_shell_command", {"command": command, "description": description})


@attrs.frozen
class StreamedReply:
    """Text sent as one chunk per element of ``chunks``."""

    chunks: tuple[str, ...]


class ScriptedGeminiModel(ScriptedEndpoint):
    """The Gemini API stand-in; ``base_url`` is what ``GOOGLE_GEMINI_BASE_URL`` takes."""

    async def _route(self, stream: trio.SocketStream, method: str, path: str, body: bytes) -> None:
        model, _, action = path.removeprefix(_PREFIX).partition(":")
        if method != "POST" or not path.startswith(_PREFIX) or not model:
            await self._error(stream, 404, "NOT_FOUND", f"no route {path}")
        elif action == "countTokens":
            await send_json(stream, 200, {"totalTokens": max(1, len(body) // 4)})
        elif action in ("streamGenerateContent", "generateContent"):
            await self._generate(stream, json.loads(body), streamed=action != "generateContent")
        else:
            await self._error(stream, 404, "NOT_FOUND", f"no action {action!r} on {model}")

    async def _generate(
        self, stream: trio.SocketStream, body: dict[str, Any], *, streamed: bool
    ) -> None:
        main = streamed and bool(body.get("tools"))
        step = await self._take_step(body, main=main, side=Reply("Scripted session"))
        if isinstance(step, ApiError):
            if step.body is not None:
                await send_json(stream, step.status, step.body, step.headers)
            else:
                await self._error(stream, step.status, step.error_type, step.message)
            return
        chunks = self._chunks(step)
        if not streamed:  # one response with every part
            chunks = [[part for chunk in chunks for part in chunk]]
        usage = {
            "promptTokenCount": max(1, len(json.dumps(body.get("contents", []))) // 4),
            "candidatesTokenCount": 8,
        }
        usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
        responses = []
        for index, parts in enumerate(chunks):
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            if index == len(chunks) - 1:
                candidate["finishReason"] = "STOP"
            responses.append({"candidates": [candidate], "usageMetadata": usage})
        if streamed:
            await send_sse(stream, [(None, response) for response in responses])
        else:
            await send_json(stream, 200, responses[0])

    @staticmethod
    def _chunks(step: Reply | StreamedReply | ToolCall) -> list[list[dict[str, Any]]]:
        if isinstance(step, Reply):
            return [[{"text": step.text}]]
        if isinstance(step, StreamedReply):
            return [[{"text": chunk}] for chunk in step.chunks]
        call = [{"functionCall": {"name": step.name, "args": step.input}}]
        return [[{"text": step.text}], call] if step.text else [call]

    @staticmethod
    async def _error(stream: trio.SocketStream, status: int, kind: str, message: str) -> None:
        error = {"code": status, "message": message, "status": kind}
        await send_json(stream, status, {"error": error})


@asynccontextmanager
async def open_scripted_gemini_model() -> AsyncIterator[ScriptedGeminiModel]:
    """Serve a ``ScriptedGeminiModel`` on ``127.0.0.1:0`` for the duration of the block."""
    model = ScriptedGeminiModel()
    async with serve_loopback(model._handle) as base_url:
        model.base_url = base_url
        yield model
