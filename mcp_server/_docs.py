"""Render docs/tools.md from the registry ``register_tasks`` builds, so the reference cannot drift.

    PYTHONPATH=$PWD python -m mcp_server._docs >docs/tools.md

``tests/test_docs.py`` fails while the file differs from what this renders. The example calls
are written here and checked against each tool's input schema at render time; a tool, status or
prompt without its entry here stops the rendering with the name that is missing.
"""

from __future__ import annotations

import functools
import pathlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import orjson

from ._core import Registry, validate
from ._tasks import (
    OUTPUT_SCHEMA,
    TASK_STATUSES,
    DaemonEndpoint,
    TaskNotices,
    TaskRunner,
    TaskStore,
    Workspace,
    register_tasks,
)

#: One example call per tool and what its answer's ``result`` holds.
EXAMPLES: dict[str, tuple[dict[str, Any], str]] = {
    "create_task": (
        {
            "title": "Add a greeting",
            "instructions": "Create hello.py that prints hello.",
            "project_dir": "demo",
        },
        "the task (`task_id`, `status`, `agent`, `logs`, `isolation` and why, `branch`, ...); "
        "as an MCP task, the task with its last `report` once the run ends",
    ),
    "merge_task": (
        {"id": "t-1", "strategy": "squash"},
        "the task, `completed` with `review` `merged`, and `merge` (`base_branch`, `commit`, "
        "`files`, `checkout_updated`); error `merge_conflict` or `dirty_checkout` lists the files",
    ),
    "discard_task": (
        {"id": "t-1"},
        "the task, `cancelled` with `review` `discarded`, and what was removed",
    ),
    "update_task": (
        {"id": "t-1", "instructions": "Also print the date."},
        "the task, its run started again in the same conversation; during a live turn "
        "`steered: true` (the instructions went into it), else error `busy` while a run is in "
        "flight",
    ),
    "approve": (
        {"id": "t-1", "request_id": "r-1", "decision": "allow", "remember": "task"},
        "the task once the decision reached the agent (`status` back to `in_progress` when no "
        "other request is pending); error `not_pending` when the request was already decided, "
        "timed out or its run ended",
    ),
    "interrupt_task": (
        {"id": "t-1"},
        "the task, `waiting`, its last `report` with outcome `interrupted`; error "
        "`not_running` when no run is in flight",
    ),
    "end_task": (
        {"id": "t-1"},
        "the task, `completed`, with its last `report` (its worktree and branch stay)",
    ),
    "report": (
        {"id": "t-1"},
        "the task with its instructions, last `report` and, for a worktree task, its "
        "`diffstat`; without `id`, every task with statistics",
    ),
    "check_status": (
        {},
        "the daemon's probe (`reachable`, the agents found with `live` and `live_note`, `git`, "
        "`live_sessions`, the `policy` rules), `hosts` (each host daemon's `address`, `roots`, "
        "`healthy` or `error`, `agents`, `active_runs`/`max_concurrent_runs`, `running`, "
        "`queued`), the disk, counts",
    ),
    "clean_state": ({}, "`deleted`: how many tasks were deleted"),
    "get_prompt": ({"prompt_id": "fix_bug"}, "the prompt; without `prompt_id`, every prompt"),
    "wait_task": (
        {"id": "t-1", "timeout_s": 30},
        "the task when its run has ended, or as it is when `timeout_s` passed; at once, "
        "`input_required` with `pending_approvals`, when a permission request waits and the "
        "client cannot elicit",
    ),
}

#: What each task status means.
STATUSES: dict[str, str] = {
    "pending": "created; its first run has not started yet",
    "queued": "accepted; its run waits for capacity (its host daemon's runs, its project's "
    "run), "
    "a hold or a budget, and starts by itself in order (priority, then age); `queue_position` "
    "and `queue_reason` say where and why; `end_task` dequeues it",
    "limited": "its last run hit the agent's usage limit; it resumes by itself when the limit "
    "resets (`limit` says when)",
    "in_progress": "a run is in flight",
    "input_required": "a live run is in flight and its agent waits for a decision on a "
    "permission request (`approve`, or the elicitation `wait_task` sends)",
    "waiting": "the last run succeeded; the task waits for `update_task` or `end_task`",
    "completed": "ended with `end_task`, or its branch merged with `merge_task` "
    "(`review`: `merged`)",
    "failed": "the last run failed (its report says why); `update_task` tries again",
    "cancelled": "the run was cancelled; `update_task` starts a new turn (not after "
    "`discard_task`: `review` `discarded`)",
    "interrupted": "the run ended without its end reaching the server (the host daemon "
    "restarted, or the run was detached longer than the daemon's grace; the report says why); "
    "`update_task` resumes it (a turn stopped with `interrupt_task` ends `waiting`)",
}


def build_registry(state: pathlib.Path) -> Registry:
    """The server's registry as ``run_server`` declares it (no daemon is contacted)."""
    registry = Registry()
    runner = TaskRunner(
        functools.partial(TaskStore, state),
        # Never used: rendering lists the registry and contacts no daemon.
        DaemonEndpoint(host="127.0.0.1", port=9, token="unused"),  # noqa: S106
        Workspace(PurePosixPath("/workspace"), PurePosixPath("/workspace")),
        listener=TaskNotices(registry),
    )
    register_tasks(registry, runner)
    return registry


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{_json(v)}`" for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    bounds = [
        f"{word} {schema[key]}"
        for key, word in (
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("minLength", "length ≥"),
            ("maxLength", "length ≤"),
        )
        if key in schema
    ]
    return " ".join([f"{' or '.join(kind) if isinstance(kind, list) else kind}", *bounds])


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _tool_lines(registry: Registry) -> Iterator[str]:
    missing = set(registry.tools) ^ set(EXAMPLES)
    if missing:
        raise SystemExit(f"mcp_server._docs: EXAMPLES and the tools differ in {sorted(missing)}")
    for name in sorted(registry.tools):
        tool = registry.tools[name]
        example, answer = EXAMPLES[name]
        problem = validate(tool.input_schema, example)
        if problem is not None:
            raise SystemExit(f"mcp_server._docs: the example for {name} is invalid: {problem}")
        required = set(tool.input_schema.get("required", ()))
        yield f"### `{name}`"
        yield ""
        yield _cell(tool.description)
        if tool.annotations is not None:
            hints = tool.annotations.json()
            title = hints.pop("title")
            yield ""
            yield (
                f"Annotations: {', '.join(f'`{k}` {_json(v)}' for k, v in hints.items())} "
                f"(title: {_cell(title)})."
            )
        if tool.task_support != "forbidden":
            yield ""
            yield f"May run as an MCP task (task support: `{tool.task_support}`)."
        yield ""
        properties = tool.input_schema.get("properties", {})
        if properties:
            yield "| argument | type | required | description |"
            yield "|---|---|---|---|"
            for arg, schema in properties.items():
                default = f" (default `{_json(schema['default'])}`)" if "default" in schema else ""
                yield (
                    f"| `{arg}` | {_type(schema)} | {'yes' if arg in required else 'no'} "
                    f"| {_cell(schema.get('description'))}{default} |"
                )
        else:
            yield "No arguments."
        yield ""
        yield f"Example: `{name} {_json(example)}` → `result`: {answer}."
        yield ""


def render(registry: Registry) -> str:
    """docs/tools.md for ``registry``."""
    if set(STATUSES) != set(TASK_STATUSES):
        raise SystemExit("mcp_server._docs: STATUSES and TASK_STATUSES differ")
    lines = [
        "# Tools, resources, prompts and statuses",
        "",
        "<!-- Generated by `python -m mcp_server._docs` from the server's registry; "
        "tests/test_docs.py fails while this file differs. Do not edit by hand. -->",
        "",
        "What `coding-agent up` and `coding-agent serve` offer an MCP client. How a first task",
        "goes: [the README](../README.md#a-first-task-end-to-end).",
        "",
        "## Tools",
        "",
        "Every tool answers `{status, message, result}` (`status` is `success`), or on failure",
        '`{status: "error", message, error: {code}}` with `isError` set; its output schema:',
        "",
        "```json",
        orjson.dumps(OUTPUT_SCHEMA, option=orjson.OPT_INDENT_2).decode(),
        "```",
        "",
        "The examples below show the arguments and what the answer's `result` holds.",
        "",
        *_tool_lines(registry),
        "## Resources",
        "",
        "| URI | name | description |",
        "|---|---|---|",
        *(
            f"| `{uri}` | {r.name} | {_cell(r.description)} |"
            for uri, r in sorted(registry.resources.items())
        ),
        "",
        "## Resource templates",
        "",
        "| URI template | name | description |",
        "|---|---|---|",
        *(
            f"| `{uri}` | {t.name} | {_cell(t.description)} |"
            for uri, t in sorted(registry.templates.items())
        ),
        "",
        "## Prompts",
        "",
        "| prompt | arguments | description |",
        "|---|---|---|",
        *(
            f"| `{name}` | "
            + (
                ", ".join(
                    f"`{a.name}`{'' if a.required else ' (optional)'}: {_cell(a.description)}"
                    for a in p.arguments
                )
                or "none"
            )
            + f" | {_cell(p.description)} |"
            for name, p in sorted(registry.prompts.items())
        ),
        "",
        "## Task statuses",
        "",
        "| status | meaning |",
        "|---|---|",
        *(f"| `{status}` | {STATUSES[status]} |" for status in TASK_STATUSES),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    """Print docs/tools.md."""
    with tempfile.TemporaryDirectory() as state:
        sys.stdout.write(render(build_registry(pathlib.Path(state))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
