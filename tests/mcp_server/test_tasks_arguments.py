"""Tool arguments: schemas generated from the attrs classes, bounds written once, one wording."""

from __future__ import annotations

import datetime
import functools
import pathlib
from pathlib import PurePosixPath
from typing import Any

import attrs
import orjson
import pytest

from mcp_server import Registry
from mcp_server._core import validate
from mcp_server._tasks import (
    TOOLS,
    DaemonEndpoint,
    TaskNotices,
    TaskOptions,
    TaskRunner,
    TaskStore,
    Workspace,
    register_tasks,
)
from mcp_server._tasks._arguments import (
    CreateArgs,
    ToolFailure,
    argument,
    input_schema,
    parse_args,
)
from mcp_server._tasks._convert import describe_error
from mcp_server._tasks._files import decode_task, encode_task
from mcp_server._tasks._model import new_task

_RUN_OPTIONS: dict[str, Any] = {
    "agent": {
        "type": "string",
        "enum": ["claude", "codex", "gemini"],
        "description": "Which coding-agent CLI runs the task (default claude).",
    },
    "project_dir": {
        "type": "string",
        "description": "Directory to work in, relative to the workspace (default: the workspace).",
    },
    "model": {"type": "string", "description": "Model name passed to the agent CLI."},
    "max_turns": {"type": "integer", "minimum": 1, "description": "Agent turns per run."},
    # Before: no bound here, though the handler refused <= 0 (the schema was wrong).
    "max_budget_usd": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "Spending cap per run, in USD.",
    },
    # Before: no bound here either, though the handler refused <= 0.
    "timeout_s": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "Wall-clock limit per run, in seconds.",
    },
    "permission_mode": {"type": "string", "description": "The agent CLI's permission mode."},
    # Issue 8: supervised live runs.
    "live": {
        "type": "boolean",
        "description": "A supervised live run: the agent stays alive between turns, asks before "
        "tools that need permission (the task is then input_required: approve, or answer the "
        "elicitation), takes steering (update_task during a turn) and interrupt_task. Default: "
        "live when the daemon says the agent can; false: one process per turn, and what needs "
        "permission is denied.",
    },
    "allow_rules": {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 100,
        "description": "Narrow the daemon's allow rules (Claude's syntax, e.g. 'Bash(pytest:*)'): "
        "only what matches one of these and a daemon rule is allowed without asking. Never "
        "widens them.",
    },
    "deny_rules": {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 100,
        "description": "Rules whose matches are denied at once, on top of the daemon's.",
    },
    "approval_timeout_s": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "Deny a permission request nobody answered after this many seconds (at "
        "most the daemon's limit, 900 by default).",
    },
}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


CLIENTS_SAW: dict[str, dict[str, Any]] = {
    "create_task": _object(
        {
            "title": {"type": "string", "minLength": 1, "maxLength": 255},
            "instructions": {"type": "string", "minLength": 1, "maxLength": 10000},
            **_RUN_OPTIONS,
            # Issue 9: where the task runs (a worktree of its own by default in a git repo).
            "isolation": {
                "type": "string",
                "enum": ["worktree", "none"],
                "description": "'worktree': a git worktree of its own on a new branch "
                "coding-agent/…; 'none': the project dir itself. Default: worktree when the "
                "project dir is inside a git repository, else none (the result says which, and "
                "why).",
            },
            "base_ref": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "description": "Where the task's branch starts (a branch, tag or commit; "
                "default HEAD).",
            },
            "include_uncommitted": {
                "type": "boolean",
                "description": "Copy the checkout's uncommitted changes in as the branch's "
                "first commit.",
            },
            # Issue 10: a webhook of the task's own, checked against the owner's allowlist.
            "notify_url": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2048,
                "description": "A webhook told when the task completes, fails, waits or needs "
                "a decision (besides the server's own): https (http on loopback) to a host the "
                "owner allowed (NOTIFY_ALLOWED_HOSTS); 'ntfy+https://…' for the ntfy format.",
            },
            "priority": {
                "type": "string",
                "enum": ["high", "normal", "low"],
                "description": "Its place when runs wait for capacity: high before normal "
                "before low, then the oldest (default normal).",
            },
            # Issue 14: several hosts.
            "host": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "The host daemon it runs on, by name (check_status lists the "
                "hosts). Default: the host whose roots contain project_dir (the longest root "
                "wins).",
            },
        },
        ["title", "instructions"],
    ),
    "merge_task": _object(
        {
            "id": {"type": "string"},
            "strategy": {
                "type": "string",
                "enum": ["merge", "squash", "rebase"],
                "description": "'merge' (a merge commit, also when a fast-forward would do), "
                "'squash' (one commit) or 'rebase' (the task's commits replayed on the base "
                "branch).",
            },
            "message": {
                "type": "string",
                "minLength": 1,
                "maxLength": 10000,
                "description": "The merge or squash commit's message (default: composed from "
                "the task).",
            },
        },
        ["id"],
    ),
    "discard_task": _object({"id": {"type": "string"}}, ["id"]),
    "update_task": _object(
        {
            "id": {"type": "string"},
            "instructions": {"type": "string", "minLength": 1, "maxLength": 10000},
        },
        ["id", "instructions"],
    ),
    "end_task": _object({"id": {"type": "string"}}, ["id"]),
    # Issue 8: answering a live task's permission request, and stopping its turn.
    "approve": _object(
        {
            "id": {"type": "string"},
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 256,
                "description": "The pending request's id (wait_task, report or task://{id} list "
                "them).",
            },
            "decision": {
                "type": "string",
                "enum": ["allow", "deny"],
                "description": "Let the agent use the tool, or not.",
            },
            "message": {
                "type": "string",
                "maxLength": 10000,
                "description": "Why (a deny's message reaches the agent).",
            },
            "remember": {
                "type": "string",
                "enum": ["once", "task"],
                "description": "'task': also allow this rule (the agent's suggestion, else the "
                "exact command or path) for the rest of the task.",
            },
        },
        ["id", "request_id", "decision"],
    ),
    "interrupt_task": _object({"id": {"type": "string"}}, ["id"]),
    "report": _object({"id": {"type": "string"}}, []),
    "check_status": _object({}, []),
    "clean_state": _object({}, []),
    "get_prompt": _object({"prompt_id": {"type": "string"}}, []),
    "wait_task": _object(
        {"id": {"type": "string"}, "timeout_s": {"type": "number", "minimum": 0, "maximum": 50.0}},
        ["id"],
    ),
}
"""Each tool's input schema as it was written by hand, with the two fixes marked above."""


def registered(tmp_path: pathlib.Path) -> Registry:
    """The coding-task surface declared on a registry (no daemon is contacted)."""
    registry = Registry()
    runner = TaskRunner(
        functools.partial(TaskStore, tmp_path / "state"),
        DaemonEndpoint(host="127.0.0.1", port=9, token="t"),
        Workspace(PurePosixPath("/w"), PurePosixPath("/w")),
        listener=TaskNotices(registry),
    )
    register_tasks(registry, runner)
    return registry


def test_generated_schemas_are_what_clients_saw(tmp_path: pathlib.Path) -> None:
    """Every tool's generated input schema equals the hand-written one (plus the two fixes)."""
    registry = registered(tmp_path)
    schemas = {name: tool.input_schema for name, tool in registry.tools.items()}
    assert orjson.loads(orjson.dumps(schemas)) == CLIENTS_SAW


def _edges(schema: dict[str, Any]) -> list[tuple[Any, bool]]:
    """(value, allowed) pairs on each side of every bound the schema states."""
    edges: list[tuple[Any, bool]] = []
    if "minLength" in schema:
        edges += [("x" * schema["minLength"], True), ("x" * (schema["minLength"] - 1), False)]
    if "maxLength" in schema:
        edges += [("x" * schema["maxLength"], True), ("x" * (schema["maxLength"] + 1), False)]
    step = 1 if schema["type"] == "integer" else 0.5
    if "minimum" in schema:
        edges += [(schema["minimum"], True), (schema["minimum"] - step, False)]
    if "maximum" in schema:
        edges += [(schema["maximum"], True), (schema["maximum"] + step, False)]
    if "exclusiveMinimum" in schema:
        edges += [(schema["exclusiveMinimum"] + step, True), (schema["exclusiveMinimum"], False)]
    return edges


def test_every_bound_is_enforced_alike_by_schema_and_cattrs(tmp_path: pathlib.Path) -> None:
    """At and past each stated bound, the core's schema check and the handler's parse agree."""
    registry = registered(tmp_path)
    arguments_classes = {spec.name: spec.arguments for spec in TOOLS}
    checked = 0
    for name, tool in registry.tools.items():
        schema = tool.input_schema
        # "x" for each required argument, or its first value when it is an enum.
        base = {key: schema["properties"][key].get("enum", ["x"])[0] for key in schema["required"]}
        arguments_class = arguments_classes[name]
        for key, property_schema in schema["properties"].items():
            for value, allowed in _edges(property_schema):
                arguments = base | {key: value}
                schema_ok = validate(schema, arguments, "$.arguments") is None
                try:
                    parse_args(arguments_class, arguments)
                except ToolFailure:
                    parsed_ok = False
                else:
                    parsed_ok = True
                assert (schema_ok, parsed_ok) == (allowed, allowed), (name, key, value)
                checked += 1
    assert checked >= 20


@pytest.mark.parametrize("limit", [3, 7])
def test_a_bound_written_once_changes_schema_and_parse(limit: int) -> None:
    """One bound on a field sets the schema's maxLength and the parse's limit together."""

    @attrs.frozen
    class Probe:
        name: str = argument(max_length=limit)

    schema = input_schema(Probe)
    assert schema["properties"]["name"]["maxLength"] == limit
    assert validate(schema, {"name": "x" * limit}) is None
    assert parse_args(Probe, {"name": "x" * limit}).name == "x" * limit
    assert validate(schema, {"name": "x" * (limit + 1)}) is not None
    with pytest.raises(ToolFailure, match=f"expected at most {limit} characters"):
        parse_args(Probe, {"name": "x" * (limit + 1)})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"title": 5, "instructions": "x"}, "expected str, got int @ $.arguments.title"),
        (
            {"title": "t", "instructions": "x", "max_turns": "3"},
            "expected int, got str @ $.arguments.max_turns",
        ),
        (
            {"title": "t", "instructions": "x", "timeout_s": True},
            "expected float, got bool @ $.arguments.timeout_s",
        ),
        (
            {"title": "x" * 256, "instructions": "x"},
            "expected at most 255 characters, got 256 @ $.arguments.title",
        ),
        (
            {"title": "t", "instructions": "x", "max_budget_usd": 0},
            "expected a value > 0, got 0 @ $.arguments.max_budget_usd",
        ),
        (
            {"title": "t", "instructions": "x", "agent": "cobol"},
            "expected one of 'claude', 'codex', 'gemini' @ $.arguments.agent",
        ),
        (
            {"title": "t", "instructions": "x", "isolation": "container"},
            "expected one of 'worktree', 'none' @ $.arguments.isolation",
        ),
        (
            {"title": "t", "instructions": "x", "isolation": "none", "base_ref": "main"},
            "base_ref and include_uncommitted need a worktree, got isolation 'none' @ $.arguments",
        ),
    ],
)
def test_argument_errors_say_expected_got_where(arguments: dict[str, Any], message: str) -> None:
    """A bad argument reads ``expected X, got Y @ $.arguments.field``."""
    with pytest.raises(ToolFailure) as failure:
        parse_args(CreateArgs, arguments)
    assert (failure.value.code, failure.value.message) == ("invalid_arguments", message)


def test_state_file_errors_use_the_same_wording() -> None:
    """A state record with a mistyped field fails as ``expected int, got str @ $.event_count``."""
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    task = new_task(
        title="t",
        instructions="x",
        agent="claude",
        project_dir="",
        cwd="/w",
        options=TaskOptions(),
        now=now,
    )
    record = orjson.loads(encode_task(task)) | {"event_count": "3"}
    with pytest.raises(Exception) as failure:  # noqa: PT011 (cattrs' group; described below)
        decode_task(orjson.dumps(record))
    assert describe_error(failure.value) == "expected int, got str @ $.event_count"
