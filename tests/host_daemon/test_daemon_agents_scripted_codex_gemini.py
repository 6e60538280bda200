"""The scripted Responses API (Codex) and Gemini API stand-ins, over a real loopback socket."""

from __future__ import annotations

import json
from typing import Any

import httpx
from _support.scripted_codex import Patch, Reasoned, ShellCall, StreamFailure
from _support.scripted_codex import open_scripted_codex_model as open_codex
from _support.scripted_gemini import ShellCommand, StreamedReply
from _support.scripted_gemini import open_scripted_gemini_model as open_gemini
from _support.scripted_model import ApiError, Reply

_CODEX_TOOLS = [{"type": "function", "name": "exec_command"}]
_GEMINI_TOOLS = [{"functionDeclarations": [{"name": "run_shell_command"}]}]
_GENERATE = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def _sse(text: str) -> list[tuple[str | None, Any]]:
    """``(event name or None, data)`` for each frame of a server-sent event stream."""
    frames = []
    for frame in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.strip().splitlines())
        if fields:
            frames.append((fields.get("event"), json.loads(fields["data"])))
    return frames


async def test_codex_steps_stream_output_items_then_completion() -> None:
    """Each Codex step is its output items, one ``output_item.done`` each, then ``completed``."""
    async with open_codex() as model, httpx.AsyncClient() as client:
        model.script(Reasoned("thinking", ShellCall("ls")), Patch("*** Begin Patch\n"))
        body = {"model": "m", "stream": True, "tools": _CODEX_TOOLS, "input": []}
        first = await client.post(f"{model.base_url}/responses", json=body)
        second = await client.post(f"{model.base_url}/responses", json=body)
    events = _sse(first.text)
    assert [name for name, _ in events] == [
        "response.created",
        "response.output_item.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert all(data["type"] == name for name, data in events)
    reasoning, call = events[1][1]["item"], events[2][1]["item"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "thinking"}]
    assert (call["type"], call["name"]) == ("function_call", "exec_command")
    assert json.loads(call["arguments"]) == {"cmd": "ls"}
    assert events[3][1]["response"]["usage"]["input_tokens"] >= 1
    patch = _sse(second.text)[1][1]["item"]
    assert (patch["type"], patch["name"], patch["input"]) == (
        "custom_tool_call",
        "apply_patch",
        "*** Begin Patch\n",
    )
    assert model.main_requests == [body, body]


async def test_codex_failures_are_a_failed_stream_or_an_http_error() -> None:
    """``StreamFailure`` sends ``response.failed``; ``ApiError`` answers with the error body."""
    async with open_codex() as model, httpx.AsyncClient() as client:
        model.script(StreamFailure("gone"), ApiError(429, "rate_limit_error", "slow down"))
        body = {"stream": True, "tools": _CODEX_TOOLS, "input": []}
        failed = await client.post(f"{model.base_url}/responses", json=body)
        refused = await client.post(f"{model.base_url}/responses", json=body)
        missing = await client.post(f"{model.base_url}/chat/completions", json=body)
    [(name, data)] = _sse(failed.text)
    assert name == "response.failed"
    assert data["response"]["error"] == {"code": "server_error", "message": "gone"}
    assert refused.status_code == 429
    assert refused.json()["error"]["message"] == "slow down"
    assert missing.status_code == 404
    assert model.pending_steps == 0


async def test_gemini_streamed_reply_is_one_response_per_chunk() -> None:
    """A ``StreamedReply`` is one ``data:`` response per chunk; only the last one says STOP."""
    async with open_gemini() as model, httpx.AsyncClient() as client:
        model.script(StreamedReply(("Two ", "files.")), ShellCommand("ls"))
        body = {"contents": [], "tools": _GEMINI_TOOLS}
        reply = await client.post(f"{model.base_url}{_GENERATE}", json=body)
        call = await client.post(f"{model.base_url}{_GENERATE}", json=body)
    frames = _sse(reply.text)
    assert [name for name, _ in frames] == [None, None]
    candidates = [data["candidates"][0] for _, data in frames]
    assert [c["content"]["parts"] for c in candidates] == [[{"text": "Two "}], [{"text": "files."}]]
    assert [c.get("finishReason") for c in candidates] == [None, "STOP"]
    [(_, data)] = _sse(call.text)
    assert data["candidates"][0]["content"]["parts"] == [
        {
            "functionCall": {
                "name": "run_shell_command",
                "args": {"command": "ls", "description": "scripted command"},
            }
        }
    ]


async def test_gemini_side_calls_and_errors() -> None:
    """Calls without tools leave the script; an ``ApiError`` answers in Google's error shape."""
    async with open_gemini() as model, httpx.AsyncClient() as client:
        model.script(ApiError(429, "RESOURCE_EXHAUSTED", "quota"), Reply("kept"))
        plain = "/v1beta/models/gemini-2.5-flash:generateContent"
        side = await client.post(f"{model.base_url}{plain}", json={"contents": []})
        tokens = await client.post(
            f"{model.base_url}/v1beta/models/gemini-2.5-flash:countTokens", json={"contents": []}
        )
        refused = await client.post(
            f"{model.base_url}{_GENERATE}", json={"contents": [], "tools": _GEMINI_TOOLS}
        )
        assert model.pending_steps == 1
    assert side.json()["candidates"][0]["content"]["parts"] == [{"text": "Scripted session"}]
    assert tokens.json()["totalTokens"] >= 1
    assert refused.status_code == 429
    assert refused.json() == {
        "error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}
    }
