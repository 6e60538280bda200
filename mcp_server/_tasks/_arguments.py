"""The tools' arguments: attrs classes whose fields carry their bounds, and schemas made of them.

A bound is written once, on the field (:func:`argument`). :func:`input_schema` states it in the
JSON Schema that clients see and the MCP core validates against before the handler runs; the
argument converter checks it again as it structures that field (:func:`parse_args`, so the
error names the field), and it is the field's attrs validator for any other construction.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from host_daemon import AgentName, MergeStrategy
from mcp_server._core import JSON

from ._convert import describe_error, make_strict_converter
from ._errors import TaskError

MAX_WAIT_S = 50.0
DEFAULT_WAIT_S = 30.0

_BOUNDS = "bounds"
_DESCRIPTION = "description"


@attrs.frozen
class Bounds:
    """Limits of one argument; an attrs validator and a piece of JSON Schema at once."""

    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    max_items: int | None = None

    def __call__(self, _: Any, __: attrs.Attribute[Any], value: object) -> None:
        """Check ``value`` (``None``, an argument left out, has no bounds to meet)."""
        if isinstance(value, str):
            if self.min_length is not None and len(value) < self.min_length:
                raise ValueError(
                    f"expected at least {self.min_length} characters, got {len(value)}"
                )
            if self.max_length is not None and len(value) > self.max_length:
                raise ValueError(f"expected at most {self.max_length} characters, got {len(value)}")
        elif isinstance(value, list):
            if self.max_items is not None and len(value) > self.max_items:
                raise ValueError(f"expected at most {self.max_items} items, got {len(value)}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"expected a value >= {self.minimum:g}, got {value:g}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"expected a value <= {self.maximum:g}, got {value:g}")
            if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
                raise ValueError(f"expected a value > {self.exclusive_minimum:g}, got {value:g}")

    def schema(self) -> JSON:
        """The JSON Schema keywords that state these bounds."""
        keywords = {
            "minLength": self.min_length,
            "maxLength": self.max_length,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "exclusiveMinimum": self.exclusive_minimum,
            "maxItems": self.max_items,
        }
        return {key: value for key, value in keywords.items() if value is not None}


def argument(
    default: Any = attrs.NOTHING,
    *,
    description: str | None = None,
    kw_only: bool = False,
    min_length: int | None = None,
    max_length: int | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    max_items: int | None = None,
) -> Any:
    """An argument field: its bounds and description, written once for both the cattrs check
    and the JSON Schema."""
    limits = Bounds(min_length, max_length, minimum, maximum, exclusive_minimum, max_items)
    checked = limits if limits != Bounds() else None
    metadata: dict[str, Any] = {_BOUNDS: checked, _DESCRIPTION: description}
    return attrs.field(default=default, kw_only=kw_only, validator=checked, metadata=metadata)


# -- the arguments of each tool -------------------------------------------------------------


@attrs.frozen
class RunOptionsArgs:
    agent: AgentName = argument(
        "claude", description="Which coding-agent CLI runs the task (default claude)."
    )
    project_dir: str | None = argument(
        None,
        description="Directory to work in, relative to the workspace (default: the workspace).",
    )
    model: str | None = argument(None, description="Model name passed to the agent CLI.")
    max_turns: int | None = argument(None, description="Agent turns per run.", minimum=1)
    max_budget_usd: float | None = argument(
        None, description="Spending cap per run, in USD.", exclusive_minimum=0
    )
    timeout_s: float | None = argument(
        None, description="Wall-clock limit per run, in seconds.", exclusive_minimum=0
    )
    permission_mode: str | None = argument(None, description="The agent CLI's permission mode.")
    live: bool | None = argument(
        None,
        description="A supervised live run: the agent stays alive between turns, asks before "
        "tools that need permission (the task is then input_required: approve, or answer the "
        "elicitation), takes steering (update_task during a turn) and interrupt_task. Default: "
        "live when the daemon says the agent can; false: one process per turn, and what needs "
        "permission is denied.",
    )
    allow_rules: list[str] | None = argument(
        None,
        description="Narrow the daemon's allow rules (Claude's syntax, e.g. 'Bash(pytest:*)'): "
        "only what matches one of these and a daemon rule is allowed without asking. Never "
        "widens them.",
        max_items=100,
    )
    deny_rules: list[str] | None = argument(
        None,
        description="Rules whose matches are denied at once, on top of the daemon's.",
        max_items=100,
    )
    approval_timeout_s: float | None = argument(
        None,
        description="Deny a permission request nobody answered after this many seconds (at "
        "most the daemon's limit, 900 by default).",
        exclusive_minimum=0,
    )


@attrs.frozen
class CreateArgs(RunOptionsArgs):
    title: str = argument(kw_only=True, min_length=1, max_length=255)
    instructions: str = argument(kw_only=True, min_length=1, max_length=10_000)
    isolation: Literal["worktree", "none"] | None = argument(
        None,
        kw_only=True,
        description="'worktree': a git worktree of its own on a new branch coding-agent/…; "
        "'none': the project dir itself. Default: worktree when the project dir is inside a "
        "git repository, else none (the result says which, and why).",
    )
    base_ref: str | None = argument(
        None,
        kw_only=True,
        description="Where the task's branch starts (a branch, tag or commit; default HEAD).",
        min_length=1,
        max_length=255,
    )
    include_uncommitted: bool = argument(
        False,
        kw_only=True,
        description="Copy the checkout's uncommitted changes in as the branch's first commit.",
    )
    notify_url: str | None = argument(
        None,
        kw_only=True,
        description="A webhook told when the task completes, fails, waits or needs a decision "
        "(besides the server's own): https (http on loopback) to a host the owner allowed "
        "(NOTIFY_ALLOWED_HOSTS); 'ntfy+https://…' for the ntfy format.",
        min_length=1,
        max_length=2048,
    )
    priority: Literal["high", "normal", "low"] = argument(
        "normal",
        kw_only=True,
        description="Its place when runs wait for capacity: high before normal before low, "
        "then the oldest (default normal).",
    )
    host: str | None = argument(
        None,
        kw_only=True,
        description="The host daemon it runs on, by name (check_status lists the hosts). "
        "Default: the host whose roots contain project_dir (the longest root wins).",
        min_length=1,
        max_length=64,
    )

    def __attrs_post_init__(self) -> None:
        if self.isolation == "none" and (self.base_ref is not None or self.include_uncommitted):
            raise ValueError(
                "base_ref and include_uncommitted need a worktree, got isolation 'none'"
            )


@attrs.frozen
class MergeArgs:
    id: str
    strategy: MergeStrategy = argument(
        "merge",
        description="'merge' (a merge commit, also when a fast-forward would do), 'squash' "
        "(one commit) or 'rebase' (the task's commits replayed on the base branch).",
    )
    message: str | None = argument(
        None,
        description="The merge or squash commit's message (default: composed from the task).",
        min_length=1,
        max_length=10_000,
    )


@attrs.frozen
class UpdateArgs:
    id: str
    instructions: str = argument(min_length=1, max_length=10_000)


@attrs.frozen
class IdArgs:
    id: str


@attrs.frozen
class ApproveArgs:
    id: str
    request_id: str = argument(
        description="The pending request's id (wait_task, report or task://{id} list them).",
        min_length=1,
        max_length=256,
    )
    decision: Literal["allow", "deny"] = argument(description="Let the agent use the tool, or not.")
    message: str | None = argument(
        None, description="Why (a deny's message reaches the agent).", max_length=10_000
    )
    remember: Literal["once", "task"] = argument(
        "once",
        description="'task': also allow this rule (the agent's suggestion, else the exact "
        "command or path) for the rest of the task.",
    )


@attrs.frozen
class OptionalIdArgs:
    id: str | None = None


@attrs.frozen
class WaitArgs:
    id: str
    timeout_s: float = argument(DEFAULT_WAIT_S, minimum=0, maximum=MAX_WAIT_S)


@attrs.frozen
class NoArgs:
    pass


@attrs.frozen
class PromptIdArgs:
    prompt_id: str | None = None


# -- schemas --------------------------------------------------------------------------------

_JSON_TYPES: Mapping[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_schema(kind: Any, where: str) -> JSON:
    """The JSON Schema of a field's type; an optional field's is its type's (``None`` is the
    default a client leaves out, not a value it sends)."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        present = [arm for arm in get_args(kind) if arm is not type(None)]
        if len(present) == 1:
            return _type_schema(present[0], where)
    if origin is Literal:
        values = list(get_args(kind))
        if all(type(value) is str for value in values):
            return {"type": "string", "enum": values}
    if kind in _JSON_TYPES:
        return {"type": _JSON_TYPES[kind]}
    if get_origin(kind) is list:
        (item,) = get_args(kind)
        return {"type": "array", "items": _type_schema(item, f"{where}[]")}
    raise TypeError(f"no JSON Schema for {kind!r} @ {where}")


def input_schema(cls: type[Any]) -> JSON:
    """The JSON Schema of a tool's arguments class: types, bounds, descriptions, required."""
    attrs.resolve_types(cls)
    properties: JSON = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        schema = _type_schema(field.type, f"{cls.__name__}.{field.name}")
        bounds: Bounds | None = field.metadata.get(_BOUNDS)
        if bounds is not None:
            schema |= bounds.schema()
        description = field.metadata.get(_DESCRIPTION)
        if description is not None:
            schema["description"] = description
        properties[field.name] = schema
        if field.default is attrs.NOTHING:
            required.append(field.name)
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


OUTPUT_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["success", "error"]},
        "message": {"type": "string"},
        "result": {
            "description": "What the tool answers: an object (a task, statistics, a count), "
            "or for get_prompt without prompt_id a list of prompts.",
            "anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
        },
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}},
            "required": ["code"],
        },
    },
    "required": ["status", "message"],
}
"""Every tool's answer: the original's ``{status, message, result | error}``.

Every subschema has a validation keyword (the MCP Inspector's ``--strict`` lint warns on one
without; ``tests/mcp_server/test_tasks_tool_surface.py`` applies its rule to every tool)."""


# -- parsing --------------------------------------------------------------------------------


def _has_bounds(cls: Any) -> bool:
    return attrs.has(cls) and any(f.metadata.get(_BOUNDS) for f in attrs.fields(cls))


def _bounded_structure_hook(cls: type[Any], converter: cattrs.Converter) -> Any:
    """Structure ``cls`` checking each field's bounds as the field is structured, so that an
    error names the field (``… @ $.arguments.title``), not the class."""
    attrs.resolve_types(cls)

    def checked(kind: Any, bounds: Bounds, field: attrs.Attribute[Any]) -> Any:
        def structure(value: Any, _: Any) -> Any:
            structured = converter.structure(value, kind)
            bounds(None, field, structured)
            return structured

        return structure

    overrides: dict[str, Any] = {  # field name -> cattrs.gen.AttributeOverride
        field.name: override(struct_hook=checked(field.type, field.metadata[_BOUNDS], field))
        for field in attrs.fields(cls)
        if field.metadata.get(_BOUNDS) is not None
    }
    return make_dict_structure_fn(cls, converter, **overrides)


def _make_argument_converter() -> cattrs.Converter:
    converter = make_strict_converter()
    converter.register_structure_hook_factory(
        _has_bounds, lambda cls: _bounded_structure_hook(cls, converter)
    )
    return converter


ARGUMENT_CONVERTER = _make_argument_converter()
"""The tool-call boundary's converter (the state files have their own, made alike)."""


# -- failing --------------------------------------------------------------------------------


class ToolFailure(TaskError):
    """A tool call that fails with a code and a message (an ``isError`` result)."""

    def __init__(self, code: str, message: str, result: JSON | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.result = result


T = TypeVar("T")


def parse_args(cls: type[T], arguments: JSON) -> T:
    """Structure a tool's arguments strictly, or fail with ``expected X, got Y @ $.arguments.Z``."""
    try:
        return ARGUMENT_CONVERTER.structure(arguments, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise ToolFailure("invalid_arguments", describe_error(exc, "$.arguments")) from None
