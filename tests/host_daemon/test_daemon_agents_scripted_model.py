"""The scripted Messages API stand-in answers like the real API, over a real loopback socket."""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio
from _support.scripted_model import ApiError, BashCall, Hold, Reply, open_scripted_model

_TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


def _sse_events(text: str) -> list[dict[str, Any]]:
    events = []
    for frame in text.split("\n\n"):
        lines = frame.strip().splitlines()
        if not lines:
            continue
        name = lines[0].removeprefix("event: ")
        data = json.loads(lines[1].removeprefix("data: "))
        assert data["type"] == name
        events.append(data)
    return events


async def test_tool_use_step_streams_the_messages_api_event_sequence() -> None:
    """A BashCall step answers a streaming main-loop call with a tool_use block sent as deltas."""
    async with open_scripted_model() as model, httpx.AsyncClient() as client:
        model.script(BashCall("echo hi"))
        body = {"model": "m", "stream": True, "tools": _TOOLS, "messages": []}
        response = await client.post(f"{model.base_url}/v1/messages?beta=true", json=body)
    assert response.headers["content-type"] == "text/event-stream"
    events = _sse_events(response.text)
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[1]["content_block"]["name"] == "Bash"
    assert json.loads(events[2]["delta"]["partial_json"]) == {
        "command": "echo hi",
        "description": "scripted command",
    }
    assert events[4]["delta"]["stop_reason"] == "tool_use"
    assert model.requests == [body]


async def test_reply_step_answers_non_streaming_calls_with_a_message() -> None:
    """A Reply step answers a non-streaming call with a JSON message ending the turn."""
    async with open_scripted_model() as model, httpx.AsyncClient() as client:
        model.script(Reply("all done"))
        body = {"model": "m", "tools": _TOOLS, "messages": []}
        response = await client.post(f"{model.base_url}/v1/messages", json=body)
    message = response.json()
    assert message["content"] == [{"type": "text", "text": "all done"}]
    assert message["stop_reason"] == "end_turn"


async def test_side_calls_do_not_consume_the_script() -> None:
    """A call without tools (a title, a quota check) gets text and leaves the script intact."""
    async with open_scripted_model() as model, httpx.AsyncClient() as client:
        model.script(Reply("main"))
        side = await client.post(f"{model.base_url}/v1/messages", json={"messages": []})
        tokens = await client.post(
            f"{model.base_url}/v1/messages/count_tokens?beta=true", json={"messages": []}
        )
        assert model.pending_steps == 1
    assert side.json()["stop_reason"] == "end_turn"
    assert tokens.json()["input_tokens"] >= 1
    assert model.main_requests == []


async def test_api_error_step_answers_with_the_error_shape() -> None:
    """An ApiError step answers with its status and the API's error body."""
    async with open_scripted_model() as model, httpx.AsyncClient() as client:
        model.script(ApiError(400, message="bad prompt"))
        response = await client.post(
            f"{model.base_url}/v1/messages", json={"tools": _TOOLS, "messages": []}
        )
    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request_error", "message": "bad prompt"}


async def test_exhausted_script_is_recorded_as_unexpected() -> None:
    """A main-loop call with nothing scripted still gets an answer and is recorded."""
    async with open_scripted_model() as model, httpx.AsyncClient() as client:
        body = {"tools": _TOOLS, "messages": [{"role": "user", "content": "x"}]}
        response = await client.post(f"{model.base_url}/v1/messages", json=body)
    assert response.status_code == 200
    assert model.unexpected == [body]


async def test_hold_step_answers_only_after_release() -> None:
    """A Hold step keeps the call open until the test releases it."""
    hold = Hold(Reply("late"))
    answers: list[str] = []
    async with open_scripted_model() as model, httpx.AsyncClient() as client:
        model.script(hold)

        async def call() -> None:
            response = await client.post(
                f"{model.base_url}/v1/messages", json={"tools": _TOOLS, "messages": []}
            )
            answers.append(response.json()["content"][0]["text"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            with trio.fail_after(30):
                await hold.reached.wait()
                await model.wait_for_main_calls(1)
            assert answers == []
            hold.release()
    assert answers == ["late"]


async def test_keyed_steps_answer_only_calls_carrying_their_marker() -> None:
    """script_for steps answer the calls whose body has the marker; the rest take the shared."""
    async with open_scripted_model() as model, httpx.AsyncClient() as client:
        model.script(Reply("shared"))
        model.script_for("[task-a]", Reply("for a"))
        texts = []
        for prompt in ("[task-a] go", "[task-b] go"):
            body = {"tools": _TOOLS, "messages": [{"role": "user", "content": prompt}]}
            response = await client.post(f"{model.base_url}/v1/messages", json=body)
            texts.append(response.json()["content"][0]["text"])
        assert model.pending_steps == 0
    assert texts == ["for a", "shared"]
    assert model.unexpected == []
