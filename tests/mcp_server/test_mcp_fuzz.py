"""Fuzz: random JSON-RPC shapes and junk bytes against the live endpoint, in both eras.

Every answer must be a documented HTTP status (never 5xx), a 202 must be empty, and any body must
be well-formed JSON-RPC (a response with ``result`` xor ``error``, or SSE events carrying such
messages); after each example the same kept-alive connection still answers a ping. Hypothesis
runs in a worker thread (``trio.to_thread``) with a blocking httpx client while the server runs
on the test's trio loop, so one live server sees every example.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from _support.mcp_http import serving
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_server import (
    BlobContents,
    InvalidParams,
    Prompt,
    PromptArgument,
    PromptResult,
    Registry,
    RequestContext,
    Resource,
    TextContents,
    Tool,
    ToolResult,
)

JSON = dict[str, Any]
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"
# 431: Hypercorn's answer when a drawn name copied into ``Mcp-Name`` outgrows h11's header limit.
DOCUMENTED_STATUSES = {200, 202, 400, 404, 405, 406, 413, 415, 431}
EXAMPLES = 120
KNOWN_METHODS = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "subscriptions/listen",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "tasks/update",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
]


def small_registry() -> Registry:
    """Quick handlers only: a fuzzer must never park a request on a slow tool."""
    registry = Registry()

    async def echo(ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult([{"type": "text", "text": str(args["text"])}])

    async def fails(ctx: RequestContext, args: JSON) -> ToolResult:
        raise InvalidParams("always rejects")

    async def read(uri: str) -> list[TextContents | BlobContents]:
        return [TextContents(uri, "contents", "text/plain")]

    async def render(args: Any) -> PromptResult:
        return PromptResult([{"role": "user", "content": {"type": "text", "text": args["who"]}}])

    text_schema = {"type": "object", "properties": {"text": {"type": "string"}}}
    registry.add_tool(Tool("echo", "Echo", {**text_schema, "required": ["text"]}, echo))
    registry.add_tool(Tool("fails", "Raises InvalidParams", {"type": "object"}, fails))
    registry.add_resource(Resource("fuzz://r", "r", read))
    registry.add_prompt(Prompt("hello", "Greets", render, (PromptArgument("who", required=True),)))
    return registry


# ----- strategies ------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = (
    scalars
    | st.lists(scalars, max_size=2)
    | st.dictionaries(st.text(max_size=4), scalars, max_size=2)
)
methods = st.sampled_from(KNOWN_METHODS) | st.text(max_size=30)
field_names = st.sampled_from(
    ["name", "arguments", "uri", "cursor", "level", "ref", "argument", "taskId", "task",
     "requestId", "protocolVersion", "capabilities", "clientInfo", "_meta", "notifications",
     "inputResponses", "requestState", "progressToken"]
)  # fmt: skip
params = (
    json_values
    | st.dictionaries(field_names, json_values, max_size=5)
    | st.fixed_dictionaries(
        {"name": st.sampled_from(["echo", "fails", "hello", "nope"]) | json_values},
        optional={"arguments": json_values | st.fixed_dictionaries({"text": json_values})},
    )
)


@st.composite
def messages(draw: st.DrawFn) -> Any:
    """A JSON-RPC-ish message: members present or not, of the right type or not."""
    message: JSON = {}
    if draw(st.booleans()):
        message["jsonrpc"] = draw(st.just("2.0") | json_values)
    if draw(st.booleans()):
        message["id"] = draw(ids)
    if draw(st.integers(0, 9)):
        message["method"] = draw(methods | json_values)
    if draw(st.booleans()):
        message["params"] = draw(params)
    if draw(st.integers(0, 9)) == 0:
        message[draw(st.sampled_from(["result", "error", "extra"]))] = draw(json_values)
    return message


class Body(bytes):
    """A request body whose repr stays short, so a failing example prints readably."""

    def __repr__(self) -> str:
        head = bytes(self[:120])
        return f"Body({head!r}{'...' if len(self) > 120 else ''}, {len(self)} bytes)"


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """The raw POST body: a message, a batch, other JSON, or bytes that are not JSON at all."""
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        return json.dumps(draw(messages())).encode()
    if kind == 6:
        return json.dumps(draw(st.lists(messages(), max_size=3))).encode()
    if kind == 7:
        return json.dumps(draw(json_values)).encode()
    if kind == 8:
        depth = draw(st.integers(1, 5000))
        nested = "[" * depth + "]" * depth
        huge = "x" * draw(st.integers(0, 200_000))
        # A boolean, not sampled_from: Hypothesis would repr the huge candidates.
        return nested.encode() if draw(st.booleans()) else json.dumps({"method": huge}).encode()
    return draw(st.binary(max_size=300))


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    """An era and a body, with headers that sometimes match the body and sometimes do not."""
    era = draw(st.sampled_from(["legacy", "legacy-no-session", "modern"]))
    body: bytes = draw(bodies())
    headers: dict[str, str] = {}
    if era == "modern":
        headers["mcp-protocol-version"] = MODERN
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError):
            decoded = None
        if isinstance(decoded, dict) and draw(st.booleans()):
            # A well-formed envelope gets past the header and _meta checks to the methods.
            meta = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
            if not isinstance(decoded.get("params"), dict):
                decoded["params"] = {}
            decoded["params"]["_meta"] = meta
            decoded["jsonrpc"] = "2.0"
            method = decoded.get("method")
            if isinstance(method, str) and method.isascii() and method.isprintable():
                headers["mcp-method"] = method
            name = decoded["params"].get("name", decoded["params"].get("uri"))
            if isinstance(name, str) and name.isascii() and name.isprintable():
                headers["mcp-name"] = name
            body = json.dumps(decoded).encode()
    if draw(st.integers(0, 9)) == 0:
        headers["content-type"] = draw(st.sampled_from(["text/plain", "application/x-junk"]))
    if draw(st.integers(0, 9)) == 0:
        headers["accept"] = draw(st.sampled_from(["text/html", "application/json", "*/*"]))
    return era, Body(body), headers


# ----- checks ----------------------------------------------------------------------------------


def check_message(message: Any) -> None:
    """A JSON-RPC 2.0 response (result xor error) or a notification/request from the server."""
    assert isinstance(message, dict), message
    assert message.get("jsonrpc") == "2.0", message
    if "method" in message:
        assert isinstance(message["method"], str), message
        return
    assert "id" in message, message
    assert ("result" in message) != ("error" in message), message
    if "error" in message:
        error = message["error"]
        assert isinstance(error, dict), message
        assert type(error.get("code")) is int, message
        assert isinstance(error.get("message"), str), message
    else:
        assert isinstance(message["result"], dict), message


def request_id(body: bytes) -> str | int | None:
    """The id of a single well-formed request in ``body``, if it has one."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("method"), str):
        return None
    ident = decoded.get("id")
    return ident if type(ident) in (str, int) else None


def check_answer(response: httpx.Response, body: bytes) -> None:
    """The documented shape of any answer from the endpoint; a response echoes the request id."""
    assert response.status_code in DOCUMENTED_STATUSES, (response.status_code, response.text)
    if response.status_code == 202:
        assert response.content == b""
        return
    if not response.content:
        return
    kind = response.headers.get("content-type", "")
    messages: list[Any] = []
    if kind.startswith("text/event-stream"):
        for event in response.text.replace("\r\n", "\n").split("\n\n"):
            data = [line[5:].lstrip() for line in event.split("\n") if line.startswith("data:")]
            if data and any(data):
                messages.append(json.loads("\n".join(data)))
    else:
        assert kind.startswith("application/json"), (kind, response.text[:200])
        decoded = response.json()
        messages = decoded if isinstance(decoded, list) else [decoded]
    for message in messages:
        check_message(message)
    ident = request_id(body)
    if ident is not None:
        answers = [m for m in messages if isinstance(m, dict) and "method" not in m]
        assert all(m["id"] in (ident, None) for m in answers), (ident, messages)


def run_examples(base: str) -> None:
    """The Hypothesis loop, run in a worker thread against the live server at ``base``."""
    with httpx.Client(timeout=20) as http:
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY,
                "capabilities": {},
                "clientInfo": {"name": "fuzz", "version": "1"},
            },
        }
        headers = {"accept": ACCEPT, "content-type": "application/json"}
        answer = http.post(base, json=init, headers=headers)
        assert answer.status_code == 200, answer.text
        session = {**headers, "mcp-session-id": answer.headers["mcp-session-id"]}
        session["mcp-protocol-version"] = LEGACY
        done = http.post(
            base, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
        )
        assert done.status_code == 202

        def still_serving() -> None:
            ping = http.post(
                base, json={"jsonrpc": "2.0", "id": "alive", "method": "ping"}, headers=session
            )
            assert ping.status_code == 200, ping.text
            assert '"alive"' in ping.text

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            database=None,
        )
        @given(requests())
        def example(request: tuple[str, bytes, dict[str, str]]) -> None:
            era, body, extra = request
            sent = dict(session if era == "legacy" else headers)
            sent.update(extra)
            answer = http.post(base, content=body, headers=sent)
            check_answer(answer, body)
            try:
                still_serving()
            except httpx.TransportError as exc:
                # The kept-alive connection must survive any answer: say which one broke it.
                raise AssertionError(
                    f"connection lost after HTTP {answer.status_code} "
                    f"{dict(answer.headers)} to {sent} {body!r}"
                ) from exc

        example()


@pytest.fixture(params=[False, True], ids=["json-answers", "sse-answers"])
async def base_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A live server with the small registry, answering in JSON or always in SSE."""
    async with serving(small_registry(), sse_responses=request.param) as url:
        yield url


async def test_fuzzed_requests_get_well_formed_answers(base_url: str) -> None:
    """Random JSON-RPC shapes and junk never get a 5xx or a malformed answer, in either era."""
    await trio.to_thread.run_sync(run_examples, base_url)
