"""A scripted stand-in for the Anthropic Messages API on 127.0.0.1, for driving real agent CLIs.

Usage::

    async with open_scripted_model() as model:
        model.script(BashCall("echo hi > f.txt"), Reply("done"))
        env = claude_env(model.base_url, home)
        ...  # run the real ``claude`` CLI with ``env``
        assert model.requests[-1]["messages"]  # every messages body, parsed

Each queued step answers one *main-loop* call (a streaming ``POST /v1/messages`` that carries the
agent's tool list): ``BashCall`` answers with a ``tool_use`` block for the Bash tool, ``ToolCall``
with any tool, ``Reply`` with text and ``stop_reason: end_turn``, ``ApiError`` with an HTTP error,
``Hold`` waits until the test releases it (to cancel a run while the model "thinks"), and
``Decide`` answers each call with what a function of the request body picks (a model that reads
the tool results it was sent), for as long as the function answers.
Runs that call the model at the same time get a script each: ``model.script_for(marker, ...)``
queues steps for the main-loop calls whose body contains ``marker`` (put it in the prompt; a
resumed session's calls carry it too), ``model.script(...)`` for every other call.
Other calls the CLI makes on its own (titles, quota checks: no tools in the request) get a short
text answer without consuming the script; ``/v1/messages/count_tokens`` gets an estimate.
A main-loop call that finds the script empty is answered with a text reply and recorded in
``model.unexpected`` so that a test can assert it never happened.

The server is ``scripted_http``'s loopback HTTP/1.1, in a nursery owned by the context manager.
``ScriptedEndpoint`` (the script queue) is shared with the OpenAI Responses stand-in for Codex
(``scripted_codex``) and the Gemini API stand-in (``scripted_gemini``).
"""

from __future__ import annotations

import collections
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio

from .scripted_http import BadRequest, read_request, send_json, send_sse, serve_loopback

__all__ = [
    "ApiError",
    "BashCall",
    "Decide",
    "Hold",
    "Reply",
    "ScriptedEndpoint",
    "ScriptedModel",
    "Step",
    "ToolCall",
    "open_scripted_model",
]


@attrs.frozen
class Reply:
    """Answer with assistant text and ``stop_reason: end_turn``."""

    text: str


@attrs.frozen
class ToolCall:
    """Answer with one ``tool_use`` block for the tool ``name`` with ``input``."""

    name: str
    input: dict[str, Any]
    text: str | None = None


def BashCall(command: str, description: str = "scripted command") -> ToolCall:
    """Answer with a ``tool_use`` block that makes the agent run ``command`` with its Bash tool."""
    return ToolCall("Bash", {"command": command, "description": description})


@attrs.frozen
class ApiError:
    """Answer with an HTTP error in the Messages API's error shape."""

    status: int = 400
    error_type: str = "invalid_request_error"
    message: str = "scripted error"
    #: Response headers (``anthropic-ratelimit-unified-status``/``-reset`` for a usage limit).
    headers: dict[str, str] = attrs.field(factory=dict)
    #: The whole error body as the vendor sends it, instead of one built from the fields above.
    body: dict[str, Any] | None = None


@attrs.define(eq=False)
class Hold:
    """Block the call until ``release()``, then answer with ``then``.

    ``reached`` is set when the call arrives, so a test can act while the agent waits.
    """

    then: Reply | ToolCall | ApiError = Reply("released")
    reached: trio.Event = attrs.field(factory=trio.Event)
    _released: trio.Event = attrs.field(factory=trio.Event)

    def release(self) -> None:
        """Let the held call answer."""
        self._released.set()

    async def wait_released(self) -> None:
        """Wait until the test calls ``release()``."""
        await self._released.wait()


@attrs.frozen
class Decide:
    """Answer main-loop calls with ``decide(body)`` until it returns ``None``.

    ``body`` is the call's parsed request (its ``messages`` carry the tool results the agent sent
    back). While ``decide`` answers, the step stays at the head of its queue; once it returns
    ``None`` the step is used up and the next one answers that call.
    """

    decide: Callable[[dict[str, Any]], Reply | ToolCall | ApiError | None]


Step = Reply | ToolCall | ApiError | Hold | Decide


class ScriptedEndpoint:
    """What every scripted stand-in shares: its address, what it received, what it still says.

    A vendor's subclass routes requests (``_route``) and turns each step into that vendor's wire
    format; ``_take_step`` hands it the next step for a main-loop call (waiting on a ``Hold``).
    """

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[dict[str, Any]] = []
        """Every model call's body received (parsed), side calls included, in order."""
        self.main_requests: list[dict[str, Any]] = []
        """The bodies of main-loop calls (those carrying the agent's tool list), in order."""
        self.unexpected: list[dict[str, Any]] = []
        """Main-loop calls that found the script empty."""
        self._steps: collections.deque[Any] = collections.deque()
        self._keyed: dict[str, collections.deque[Any]] = {}
        self._changed = trio.Event()
        self._ids = itertools.count(1)

    def script(self, *steps: Any) -> None:
        """Queue steps; each answers one main-loop call, in order."""
        self._steps.extend(steps)

    def script_for(self, marker: str, *steps: Any) -> None:
        """Queue steps for the main-loop calls whose body contains ``marker``, in order."""
        self._keyed.setdefault(marker, collections.deque()).extend(steps)

    @property
    def pending_steps(self) -> int:
        """How many queued steps have not been used yet (keyed ones included)."""
        return len(self._steps) + sum(len(steps) for steps in self._keyed.values())

    def _queue_for(self, body: dict[str, Any]) -> collections.deque[Any]:
        """The keyed queue whose marker the call carries (and has steps left), else the shared."""
        if self._keyed:
            text = json.dumps(body)
            for marker, steps in self._keyed.items():
                if steps and marker in text:
                    return steps
        return self._steps

    async def wait_for_main_calls(self, count: int) -> None:
        """Wait until at least ``count`` main-loop calls have arrived."""
        while len(self.main_requests) < count:
            await self._changed.wait()

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}_scripted_{next(self._ids):04d}"

    async def _take_step(self, body: dict[str, Any], *, main: bool, side: Any) -> Any:
        """The step that answers this call: ``side`` for a side call, else the script's next.

        A ``Hold`` is waited on here and replaced by what it answers with.
        """
        self.requests.append(body)
        step: Any
        queue = self._queue_for(body) if main else self._steps
        step = _decided(queue, body) if main else side
        if step is None:
            self.unexpected.append(body)
            step = Reply("scripted model: the script is exhausted")
        if main:
            self.main_requests.append(body)
        self._changed.set()
        self._changed = trio.Event()
        if isinstance(step, Hold):
            step.reached.set()
            await step.wait_released()
            step = step.then
        return step

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            request = await read_request(stream)
        except (BadRequest, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if request is None:
            return
        method, target, body = request
        try:
            await self._route(stream, method, urlsplit(target).path, body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def _route(self, stream: trio.SocketStream, method: str, path: str, body: bytes) -> None:
        raise NotImplementedError


class ScriptedModel(ScriptedEndpoint):
    """The Anthropic Messages API stand-in (what Claude Code calls).

    ``response_headers`` go on every successful answer (the unified rate-limit headers a
    subscription's responses carry, which Claude Code reports as ``rate_limit_event``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.response_headers: dict[str, str] = {}

    async def _route(self, stream: trio.SocketStream, method: str, path: str, body: bytes) -> None:
        if method == "POST" and path == "/v1/messages/count_tokens":
            await send_json(stream, 200, {"input_tokens": max(1, len(body) // 4)})
        elif method == "POST" and path == "/v1/messages":
            await self._messages(stream, json.loads(body))
        else:
            await send_json(stream, 404, _error_body("not_found_error", f"no route {path}"))

    async def _messages(self, stream: trio.SocketStream, body: dict[str, Any]) -> None:
        main = _is_main_loop(body)
        step = await self._take_step(body, main=main, side=Reply("Scripted session"))
        if isinstance(step, ApiError):
            error = step.body or _error_body(step.error_type, step.message)
            await send_json(stream, step.status, error, step.headers)
            return
        message = self._message(body, step)
        if body.get("stream"):
            frames = ((event["type"], event) for event in _sse_events(message))
            await send_sse(stream, frames, self.response_headers)
        else:
            await send_json(stream, 200, message)

    def _message(self, body: dict[str, Any], step: Reply | ToolCall) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if isinstance(step, Reply):
            content.append({"type": "text", "text": step.text})
            stop_reason = "end_turn"
        else:
            if step.text:
                content.append({"type": "text", "text": step.text})
            content.append(
                {
                    "type": "tool_use",
                    "id": self._next_id("toolu"),
                    "name": step.name,
                    "input": step.input,
                }
            )
            stop_reason = "tool_use"
        return {
            "id": self._next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-scripted"),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": max(1, len(json.dumps(body.get("messages", []))) // 4),
                "output_tokens": max(1, len(json.dumps(content)) // 4),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }


def _decided(queue: collections.deque[Any], body: dict[str, Any]) -> Any:
    """The queue's answer to ``body``: a ``Decide`` at its head answers (or is used up)."""
    while queue:
        head = queue[0]
        if not isinstance(head, Decide):
            return queue.popleft()
        answer = head.decide(body)
        if answer is not None:
            return answer
        queue.popleft()
    return None


def _is_main_loop(body: dict[str, Any]) -> bool:
    return bool(body.get("tools"))


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _sse_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    usage = message["usage"]
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": block["text"]},
                }
            )
        else:
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": dict(block, input={}),
                }
            )
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(block["input"]),
                    },
                }
            )
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events


@asynccontextmanager
async def open_scripted_model() -> AsyncIterator[ScriptedModel]:
    """Serve a ``ScriptedModel`` on ``127.0.0.1:0`` for the duration of the block."""
    model = ScriptedModel()
    async with serve_loopback(model._handle) as base_url:
        model.base_url = base_url
        yield model
