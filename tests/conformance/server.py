"""The conformance fixture server: every tool, resource and prompt the official harness calls.

Run from the repository root: ``python tests/conformance/server.py --port PORT`` (127.0.0.1, auth
off). It prints ``serving <url>`` once listening (``--port 0`` picks a free port) and drains on
SIGTERM/SIGINT. The fixtures are test material built on the product's MCP core; they never enter
the product's own registry. ``build_registry()`` is also imported by the SDK-client, fuzz and
benchmark code (``from conformance.server import build_registry`` with ``tests`` on the path).

Fixture names, arguments and texts follow the scenario sources of
``@modelcontextprotocol/conformance`` 0.1.16 and 0.2.0-alpha.12.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from host_daemon import watch_shutdown_signals
from mcp_server import (
    BlobContents,
    HttpSettings,
    InternalError,
    Prompt,
    PromptArgument,
    PromptResult,
    Registry,
    RequestContext,
    Resource,
    ResourceTemplate,
    TextContents,
    Tool,
    ToolResult,
    serve,
)

log = logging.getLogger("conformance")
JSON = dict[str, Any]

# A 1x1 red PNG and a minimal WAV, as the harness's reference server sends them.
TEST_IMAGE_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5E"
    "rkJggg=="
)
TEST_AUDIO_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
WATCHED_URI = "test://watched-resource"
NO_ARGS: JSON = {"type": "object", "properties": {}}
JSON_SCHEMA_2020_12: JSON = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}
X_MCP_HEADER_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "region": {
            "type": "string",
            "description": "Mirrored as Mcp-Param-Region",
            "x-mcp-header": "Region",
        },
        "query": {"type": "string", "description": "Not mirrored"},
    },
    "required": ["region"],
}


def text(value: str) -> JSON:
    """A text content block."""
    return {"type": "text", "text": value}


InputRequest = tuple[str, JSON]


def schema(properties: JSON, required: list[str]) -> JSON:
    """A flat elicitation schema."""
    return {"type": "object", "properties": properties, "required": required}


def elicitation(message: str, properties: JSON, required: list[str]) -> InputRequest:
    """An ``elicitation/create`` input request."""
    return "elicitation/create", {
        "mode": "form",
        "message": message,
        "requestedSchema": schema(properties, required),
    }


def sampling(prompt: str, max_tokens: int) -> InputRequest:
    """A ``sampling/createMessage`` input request."""
    return "sampling/createMessage", {
        "messages": [{"role": "user", "content": text(prompt)}],
        "maxTokens": max_tokens,
    }


LIST_ROOTS: InputRequest = ("roots/list", {})


async def request_input(
    ctx: RequestContext, requests: Mapping[str, InputRequest]
) -> dict[str, JSON]:
    """Ask the client for several named inputs at once; returns the responses by key.

    On a legacy session the core sends each as a server→client request; on the 2026-07-28 leg it
    ends the call with an input-required result and re-runs the handler with the answers.
    """
    return await ctx.ask(requests)


def sampled_text(response: JSON) -> str:
    """The text of a ``sampling/createMessage`` result (``content`` may be a block or a list)."""
    content = response.get("content")
    if isinstance(content, list):
        content = content[0] if content else {}
    found = content.get("text") if isinstance(content, dict) else None
    return found if isinstance(found, str) else "No response"


def elicited(response: JSON) -> str:
    """``action`` and ``content`` of an elicitation result, as the reference server prints them."""
    content = response.get("content") or {}
    return f"action={response.get('action')}, content={json.dumps(content, separators=(',', ':'))}"


class Fixtures:
    """The fixture handlers, with the little state some of them keep."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.watched_version = 0
        self.dynamic_tool = False
        self.dynamic_prompt = False

    # ----- content tools (legacy and modern) -----

    async def simple_text(self, ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult([text("This is a simple text response for testing.")])

    async def image(self, ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult([{"type": "image", "data": TEST_IMAGE_BASE64, "mimeType": "image/png"}])

    async def audio(self, ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult([{"type": "audio", "data": TEST_AUDIO_BASE64, "mimeType": "audio/wav"}])

    async def embedded_resource(self, ctx: RequestContext, args: JSON) -> ToolResult:
        resource = {
            "uri": "test://embedded-resource",
            "mimeType": "text/plain",
            "text": "This is an embedded resource content.",
        }
        return ToolResult([{"type": "resource", "resource": resource}])

    async def multiple_content_types(self, ctx: RequestContext, args: JSON) -> ToolResult:
        resource = {
            "uri": "test://mixed-content-resource",
            "mimeType": "application/json",
            "text": json.dumps({"test": "data", "value": 123}),
        }
        return ToolResult(
            [
                text("Multiple content types test:"),
                {"type": "image", "data": TEST_IMAGE_BASE64, "mimeType": "image/png"},
                {"type": "resource", "resource": resource},
            ]
        )

    async def with_logging(self, ctx: RequestContext, args: JSON) -> ToolResult:
        for message in (
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ):
            await ctx.log("info", message)
        return ToolResult([text("Tool with logging executed successfully")])

    async def with_progress(self, ctx: RequestContext, args: JSON) -> ToolResult:
        for step in (0, 50, 100):
            await ctx.progress(step, 100, f"Completed step {step} of 100")
        return ToolResult([text("Tool with progress executed successfully")])

    async def error_handling(self, ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult(
            [text("This tool intentionally returns an error for testing")], is_error=True
        )

    async def x_mcp_header(self, ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult([text(f"region={args.get('region')}")])

    async def reconnection(self, ctx: RequestContext, args: JSON) -> ToolResult:
        ctx.close_sse_stream()
        await trio.sleep(0.1)
        return ToolResult(
            [
                text(
                    "Reconnection test completed successfully. If you received this, the client "
                    "properly reconnected after stream closure."
                )
            ]
        )

    async def json_schema_2020_12(self, ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult([text(f"JSON Schema 2020-12 tool called with: {json.dumps(args)}")])

    # ----- server→client requests (legacy) / input-required (modern) -----

    async def sampling(self, ctx: RequestContext, args: JSON) -> ToolResult:
        response = await ctx.sample(sampling(str(args.get("prompt", "")), 100)[1])
        return ToolResult([text(f"LLM response: {sampled_text(response)}")])

    async def elicitation(self, ctx: RequestContext, args: JSON) -> ToolResult:
        response = await ctx.elicit(
            str(args.get("message", "")),
            schema(
                {"response": {"type": "string", "description": "User's response"}}, ["response"]
            ),
        )
        return ToolResult([text(f"User response: {elicited(response)}")])

    async def elicitation_defaults(self, ctx: RequestContext, args: JSON) -> ToolResult:
        defaults = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {
                    "type": "boolean",
                    "description": "Verification status",
                    "default": True,
                },
            },
            "required": [],
        }
        response = await ctx.elicit(
            "Please review and update the form fields with defaults", defaults
        )
        return ToolResult([text(f"Elicitation completed: {elicited(response)}")])

    async def elicitation_enums(self, ctx: RequestContext, args: JSON) -> ToolResult:
        def titled(prefix: str) -> list[JSON]:
            names = ("First", "Second", "Third")
            return [
                {"const": f"value{i}", "title": f"{name} {prefix}"}
                for i, name in enumerate(names, start=1)
            ]

        options = ["option1", "option2", "option3"]
        enums = {
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Select one option",
                    "enum": options,
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Select one option with titles",
                    "oneOf": titled("Option"),
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Select one option (legacy)",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Select multiple options",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"type": "string", "enum": options},
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Select multiple options with titles",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"anyOf": titled("Choice")},
                },
            },
            "required": [],
        }
        response = await ctx.elicit("Please select options from the enum fields", enums)
        return ToolResult([text(f"Elicitation completed: {elicited(response)}")])

    # ----- 2026-07-28 diagnostics -----

    async def streaming_elicitation(self, ctx: RequestContext, args: JSON) -> ToolResult:
        await ctx.progress(0, 1, "asking")
        response = await ctx.elicit(
            "What is your name?", schema({"name": {"type": "string"}}, ["name"])
        )
        return ToolResult([text(f"Elicitation completed: {elicited(response)}")])

    async def missing_capability(self, ctx: RequestContext, args: JSON) -> ToolResult:
        response = await ctx.sample(sampling("Say hello", 10)[1])
        return ToolResult([text(f"LLM response: {sampled_text(response)}")])

    async def trigger_tool_change(self, ctx: RequestContext, args: JSON) -> ToolResult:
        if self.dynamic_tool:
            self.registry.remove_tool("test_dynamic_tool")
        else:
            self.registry.add_tool(
                Tool(
                    "test_dynamic_tool",
                    "A tool that test_trigger_tool_change adds and removes",
                    NO_ARGS,
                    self.simple_text,
                )
            )
        self.dynamic_tool = not self.dynamic_tool
        return ToolResult([text(f"test_dynamic_tool listed: {self.dynamic_tool}")])

    async def trigger_prompt_change(self, ctx: RequestContext, args: JSON) -> ToolResult:
        if self.dynamic_prompt:
            self.registry.remove_prompt("test_dynamic_prompt")
        else:
            self.registry.add_prompt(
                Prompt(
                    "test_dynamic_prompt",
                    "A prompt that test_trigger_prompt_change adds and removes",
                    self.simple_prompt,
                )
            )
        self.dynamic_prompt = not self.dynamic_prompt
        return ToolResult([text(f"test_dynamic_prompt listed: {self.dynamic_prompt}")])

    async def touch_watched(self, ctx: RequestContext, args: JSON) -> ToolResult:
        self.watched_version += 1
        self.registry.resource_updated(WATCHED_URI)
        return ToolResult([text(f"{WATCHED_URI} is now at version {self.watched_version}")])

    # ----- input-required (SEP-2322) -----

    async def ir_elicitation(self, ctx: RequestContext, args: JSON) -> ToolResult:
        answers = await request_input(
            ctx,
            {
                "user_name": elicitation(
                    "What is your name?", {"name": {"type": "string"}}, ["name"]
                )
            },
        )
        content = answers["user_name"].get("content") or {}
        return ToolResult([text(f"Hello, {content.get('name', 'unknown')}!")])

    async def ir_sampling(self, ctx: RequestContext, args: JSON) -> ToolResult:
        answers = await request_input(
            ctx, {"capital_question": sampling("What is the capital of France?", 100)}
        )
        return ToolResult([text(f"LLM response: {sampled_text(answers['capital_question'])}")])

    async def ir_list_roots(self, ctx: RequestContext, args: JSON) -> ToolResult:
        answers = await request_input(ctx, {"client_roots": LIST_ROOTS})
        roots = answers["client_roots"].get("roots") or []
        uris = ", ".join(str(root.get("uri")) for root in roots if isinstance(root, dict))
        return ToolResult([text(f"Client roots: {uris}")])

    async def ir_request_state(self, ctx: RequestContext, args: JSON) -> ToolResult:
        answers = await request_input(
            ctx,
            {"confirm": elicitation("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])},
        )
        return ToolResult([text(f"state-ok: confirmed {elicited(answers['confirm'])}")])

    async def ir_multiple_inputs(self, ctx: RequestContext, args: JSON) -> ToolResult:
        answers = await request_input(
            ctx,
            {
                "user_name": elicitation(
                    "What is your name?", {"name": {"type": "string"}}, ["name"]
                ),
                "greeting": sampling("Generate a greeting", 50),
                "client_roots": LIST_ROOTS,
            },
        )
        name = (answers["user_name"].get("content") or {}).get("name", "unknown")
        greeting = sampled_text(answers["greeting"])
        roots = len(answers["client_roots"].get("roots") or [])
        return ToolResult([text(f"{greeting}, {name}! ({roots} roots)")])

    async def ir_multi_round(self, ctx: RequestContext, args: JSON) -> ToolResult:
        step1 = await request_input(
            ctx,
            {
                "step1": elicitation(
                    "Step 1: What is your name?", {"name": {"type": "string"}}, ["name"]
                )
            },
        )
        step2 = await request_input(
            ctx,
            {
                "step2": elicitation(
                    "Step 2: What is your favorite color?",
                    {"color": {"type": "string"}},
                    ["color"],
                )
            },
        )
        name = (step1["step1"].get("content") or {}).get("name", "unknown")
        color = (step2["step2"].get("content") or {}).get("color", "unknown")
        return ToolResult([text(f"{name} likes {color}")])

    async def ir_tampered_state(self, ctx: RequestContext, args: JSON) -> ToolResult:
        answers = await request_input(
            ctx,
            {"confirm": elicitation("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])},
        )
        return ToolResult([text(f"state-ok: {elicited(answers['confirm'])}")])

    async def ir_capabilities(self, ctx: RequestContext, args: JSON) -> ToolResult:
        declared = ctx.client_capabilities
        wanted: dict[str, InputRequest] = {}
        if "elicitation" in declared:
            wanted["user_name"] = elicitation(
                "What is your name?", {"name": {"type": "string"}}, ["name"]
            )
        if "sampling" in declared:
            wanted["greeting"] = sampling("Generate a greeting", 50)
        if not wanted:
            return ToolResult([text("The client declared neither elicitation nor sampling")])
        answers = await request_input(ctx, wanted)
        return ToolResult([text(f"Answered: {', '.join(sorted(answers))}")])

    async def ir_prompt(self, ctx: RequestContext, args: Mapping[str, str]) -> PromptResult:
        answers = await request_input(
            ctx,
            {
                "user_context": elicitation(
                    "What context should the prompt use?",
                    {"context": {"type": "string"}},
                    ["context"],
                )
            },
        )
        context = (answers["user_context"].get("content") or {}).get("context", "none")
        return PromptResult([{"role": "user", "content": text(f"Use this context: {context}")}])

    # ----- tasks (2025-11-25 utility and the 2026-07-28 extension) -----

    async def greet(self, ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult([text(f"Hello, {args.get('name', 'World')}!")])

    async def slow_compute(self, ctx: RequestContext, args: JSON) -> ToolResult:
        seconds = float(args.get("seconds", 1))
        await trio.sleep(seconds)
        label = args.get("label", "")
        return ToolResult(
            [text(f"Computed {label} after {seconds:g}s")],
            structured_content={"label": label, "seconds": seconds},
        )

    async def progress_then_sleep(self, ctx: RequestContext, args: JSON) -> ToolResult:
        seconds = float(args.get("seconds", 1))
        await ctx.progress(0, seconds, "started")
        await trio.sleep(seconds)
        return ToolResult([text(f"Slept {seconds:g}s after reporting progress")])

    async def failing_job(self, ctx: RequestContext, args: JSON) -> ToolResult:
        await trio.sleep(1)
        return ToolResult([text("failing_job failed, as designed")], is_error=True)

    async def protocol_error_job(self, ctx: RequestContext, args: JSON) -> ToolResult:
        await trio.sleep(0.1)
        raise InternalError("protocol_error_job fails with a protocol error, as designed")

    async def confirm_delete(self, ctx: RequestContext, args: JSON) -> ToolResult:
        filename = str(args.get("filename", ""))
        answers = await request_input(
            ctx,
            {
                "confirm": elicitation(
                    f"Delete {filename}?", {"confirm": {"type": "boolean"}}, ["confirm"]
                )
            },
        )
        verdict = "deleted" if answers["confirm"].get("action") == "accept" else "kept"
        return ToolResult([text(f"{filename} {verdict}")])

    async def multi_input(self, ctx: RequestContext, args: JSON) -> ToolResult:
        answers = await request_input(
            ctx,
            {
                "first": elicitation("First value?", {"value": {"type": "string"}}, ["value"]),
                "second": elicitation("Second value?", {"value": {"type": "string"}}, ["value"]),
            },
        )
        values = [(answers[key].get("content") or {}).get("value") for key in ("first", "second")]
        return ToolResult([text(f"Got {values[0]} and {values[1]}")])

    async def tool_with_task(self, ctx: RequestContext, args: JSON) -> ToolResult:
        # The name is gathered by input_required rounds before the task exists (SEP-2663).
        answers = await ctx.ask(
            {
                "user_name": elicitation(
                    "What is your name?", {"name": {"type": "string"}}, ["name"]
                )
            },
            before_task=True,
        )
        name = (answers["user_name"].get("content") or {}).get("name", "unknown")
        await trio.sleep(0.5)
        return ToolResult([text(f"Task finished for user_name {name}")])

    # ----- resources -----

    async def static_text(self, uri: str) -> list[TextContents | BlobContents]:
        return [TextContents(uri, "This is the content of the static text resource.", "text/plain")]

    async def static_binary(self, uri: str) -> list[TextContents | BlobContents]:
        return [BlobContents(uri, TEST_IMAGE_BASE64, "image/png")]

    async def watched(self, uri: str) -> list[TextContents | BlobContents]:
        return [
            TextContents(
                uri, f"Watched resource content, version {self.watched_version}", "text/plain"
            )
        ]

    async def template(
        self, uri: str, variables: Mapping[str, str]
    ) -> list[TextContents | BlobContents]:
        ident = variables["id"]
        body = json.dumps({"id": ident, "templateTest": True, "data": f"Data for ID: {ident}"})
        return [TextContents(uri, body, "application/json")]

    async def complete_template(
        self, argument: str, partial: str, given: Mapping[str, str]
    ) -> list[str]:
        return [value for value in ("1", "2", "3", "123") if value.startswith(partial)]

    # ----- prompts -----

    async def simple_prompt(self, args: Mapping[str, str]) -> PromptResult:
        return PromptResult(
            [{"role": "user", "content": text("This is a simple prompt for testing.")}]
        )

    async def prompt_with_arguments(self, args: Mapping[str, str]) -> PromptResult:
        message = f"Prompt with arguments: arg1='{args['arg1']}', arg2='{args['arg2']}'"
        return PromptResult([{"role": "user", "content": text(message)}])

    async def prompt_with_embedded_resource(self, args: Mapping[str, str]) -> PromptResult:
        resource = {
            "uri": args["resourceUri"],
            "mimeType": "text/plain",
            "text": "Embedded resource content for testing.",
        }
        return PromptResult(
            [
                {"role": "user", "content": {"type": "resource", "resource": resource}},
                {"role": "user", "content": text("Please process the embedded resource above.")},
            ]
        )

    async def prompt_with_image(self, args: Mapping[str, str]) -> PromptResult:
        image = {"type": "image", "data": TEST_IMAGE_BASE64, "mimeType": "image/png"}
        return PromptResult(
            [
                {"role": "user", "content": image},
                {"role": "user", "content": text("Please analyze the image above.")},
            ]
        )

    async def complete_arguments(
        self, argument: str, partial: str, given: Mapping[str, str]
    ) -> list[str]:
        candidates = ("paris", "park", "party") if argument == "arg1" else ("alpha", "beta")
        return [value for value in candidates if value.startswith(partial)]


def build_registry() -> Registry:
    """A fresh registry holding every conformance fixture."""
    registry = Registry()
    f = Fixtures(registry)

    def tool(
        name: str,
        description: str,
        handler: Callable[[RequestContext, JSON], Awaitable[ToolResult]],
        schema: JSON | None = None,
        **kw: Any,
    ) -> None:
        registry.add_tool(Tool(name, description, schema or NO_ARGS, handler, **kw))

    tool("test_simple_text", "Tests simple text content response", f.simple_text)
    tool("test_image_content", "Tests image content response", f.image)
    tool("test_audio_content", "Tests audio content response", f.audio)
    tool("test_embedded_resource", "Tests embedded resource content response", f.embedded_resource)
    tool(
        "test_multiple_content_types",
        "Tests response with multiple content types (text, image, resource)",
        f.multiple_content_types,
    )
    tool(
        "test_tool_with_logging",
        "Tests tool that emits log messages during execution",
        f.with_logging,
    )
    tool("test_logging_tool", "Emits three info log messages", f.with_logging)
    tool(
        "test_tool_with_progress", "Tests tool that reports progress notifications", f.with_progress
    )
    tool("test_error_handling", "Tests error response handling", f.error_handling)
    tool(
        "test_reconnection",
        "Closes its SSE stream mid-call; the result arrives after the client reconnects",
        f.reconnection,
    )
    tool(
        "test_sampling",
        "Tests server-initiated sampling (LLM completion request)",
        f.sampling,
        {
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "description": "The prompt to send to the LLM"}
            },
            "required": ["prompt"],
        },
    )
    tool(
        "test_elicitation",
        "Tests server-initiated elicitation (user input request)",
        f.elicitation,
        {
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "The message to show the user"}
            },
            "required": ["message"],
        },
    )
    tool(
        "test_elicitation_sep1034_defaults",
        "Tests elicitation with default values per SEP-1034",
        f.elicitation_defaults,
    )
    tool(
        "test_elicitation_sep1330_enums",
        "Tests elicitation with enum schema improvements per SEP-1330",
        f.elicitation_enums,
    )
    tool(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
        f.json_schema_2020_12,
        JSON_SCHEMA_2020_12,
    )
    tool(
        "test_x_mcp_header",
        "Takes a region mirrored in the Mcp-Param-Region header (SEP-2243)",
        f.x_mcp_header,
        X_MCP_HEADER_SCHEMA,
    )
    tool(
        "test_streaming_elicitation",
        "Reports progress, then asks the user for input",
        f.streaming_elicitation,
    )
    tool(
        "test_missing_capability",
        "Needs the client's sampling capability",
        f.missing_capability,
    )
    tool(
        "test_trigger_tool_change",
        "Adds or removes test_dynamic_tool (announces tools list_changed)",
        f.trigger_tool_change,
    )
    tool(
        "test_trigger_prompt_change",
        "Adds or removes test_dynamic_prompt (announces prompts list_changed)",
        f.trigger_prompt_change,
    )
    tool(
        "test_touch_watched_resource",
        f"Changes {WATCHED_URI} and notifies its subscribers",
        f.touch_watched,
    )
    for name, handler in (
        ("elicitation", f.ir_elicitation),
        ("sampling", f.ir_sampling),
        ("list_roots", f.ir_list_roots),
        ("request_state", f.ir_request_state),
        ("multiple_inputs", f.ir_multiple_inputs),
        ("multi_round", f.ir_multi_round),
        ("tampered_state", f.ir_tampered_state),
        ("capabilities", f.ir_capabilities),
    ):
        tool(
            f"test_input_required_result_{name}",
            f"Input-required result flow ({name.replace('_', ' ')}, SEP-2322)",
            handler,
        )
    tool(
        "greet",
        "Returns Hello, {name}!",
        f.greet,
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    )
    tool(
        "slow_compute",
        "Sleeps `seconds` seconds, then returns; runs as a task when the client allows",
        f.slow_compute,
        {
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "minimum": 0},
                "label": {"type": "string"},
            },
        },
        task_support="optional",
    )
    tool(
        "progress_then_sleep",
        "Reports progress 0, then sleeps `seconds` seconds (a call visibly in flight)",
        f.progress_then_sleep,
        {"type": "object", "properties": {"seconds": {"type": "number", "minimum": 0}}},
    )
    tool(
        "failing_job",
        "Returns a tool error after about a second; must run as a task",
        f.failing_job,
        task_support="required",
    )
    tool(
        "protocol_error_job",
        "Fails with a protocol error",
        f.protocol_error_job,
        task_support="optional",
    )
    tool(
        "confirm_delete",
        "Asks for confirmation, then reports the decision",
        f.confirm_delete,
        {"type": "object", "properties": {"filename": {"type": "string"}}},
        task_support="optional",
    )
    tool(
        "multi_input",
        "Asks two questions at once",
        f.multi_input,
        task_support="optional",
    )
    tool(
        "test_tool_with_task",
        "Asks for user_name, then finishes as a task",
        f.tool_with_task,
        task_support="required",
    )

    registry.add_resource(
        Resource(
            "test://static-text",
            "static-text",
            f.static_text,
            description="A static text resource for testing",
            mime_type="text/plain",
            title="Static Text Resource",
        )
    )
    registry.add_resource(
        Resource(
            "test://static-binary",
            "static-binary",
            f.static_binary,
            description="A static binary resource (image) for testing",
            mime_type="image/png",
            title="Static Binary Resource",
        )
    )
    registry.add_resource(
        Resource(
            WATCHED_URI,
            "watched-resource",
            f.watched,
            description="A resource that test_touch_watched_resource changes",
            mime_type="text/plain",
            title="Watched Resource",
        )
    )
    registry.add_template(
        ResourceTemplate(
            "test://template/{id}/data",
            "template",
            f.template,
            description="A resource template with parameter substitution",
            mime_type="application/json",
            title="Resource Template",
            complete=f.complete_template,
        )
    )

    registry.add_prompt(
        Prompt(
            "test_simple_prompt",
            "A simple prompt without arguments",
            f.simple_prompt,
            title="Simple Test Prompt",
        )
    )
    registry.add_prompt(
        Prompt(
            "test_prompt_with_arguments",
            "A prompt with required arguments",
            f.prompt_with_arguments,
            (
                PromptArgument("arg1", "First test argument", required=True),
                PromptArgument("arg2", "Second test argument", required=True),
            ),
            title="Prompt With Arguments",
            complete=f.complete_arguments,
        )
    )
    registry.add_prompt(
        Prompt(
            "test_prompt_with_embedded_resource",
            "A prompt that includes an embedded resource",
            f.prompt_with_embedded_resource,
            (PromptArgument("resourceUri", "URI of the resource to embed", required=True),),
            title="Prompt With Embedded Resource",
        )
    )
    registry.add_prompt(
        Prompt(
            "test_prompt_with_image",
            "A prompt that includes image content",
            f.prompt_with_image,
            title="Prompt With Image",
        )
    )
    registry.add_prompt(
        Prompt(
            "test_input_required_result_prompt",
            "Asks the user for context before rendering (SEP-2322 on prompts/get)",
            f.simple_prompt,
            title="Prompt Needing Input",
            render_in_context=f.ir_prompt,
        )
    )
    return registry


async def run(port: int) -> None:
    """Serve the fixtures until SIGTERM or SIGINT, then drain."""
    settings = HttpSettings(
        host="127.0.0.1",
        port=port,
        auth_token=None,
        server_name="coding-agent-conformance",
        instructions="Conformance fixtures of the Coding Agent MCP core.",
    )
    shutdown = trio.Event()
    registry = build_registry()
    async with trio.open_nursery() as nursery:
        await nursery.start(watch_shutdown_signals, shutdown, nursery.cancel_scope, log)

        async def serve_then_stop(task_status: trio.TaskStatus[list[str]]) -> None:
            await serve(registry, settings, shutdown=shutdown, task_status=task_status)
            nursery.cancel_scope.cancel()

        urls = await nursery.start(serve_then_stop)
        for url in urls:
            print(f"serving {url}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """``server.py --port PORT``."""
    parser = argparse.ArgumentParser(description="Serve the MCP conformance fixtures.")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any)")
    args = parser.parse_args(argv)
    trio.run(run, args.port)


if __name__ == "__main__":
    main()
