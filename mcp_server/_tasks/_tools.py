"""The MCP surface of coding tasks: the original's tools, ``wait_task``, resources and prompts.

Every tool answers with one text block and ``structuredContent {status: "success" | "error",
message, result | error}`` (the original's shape), declares that shape as its output schema, and
sets ``isError`` when it failed. Every answer is sized for a model's context: long text is cut at
``MAX_TEXT_CHARS`` with a marker naming the resource that holds the rest.

Logs are paged by sequence number: ``task://{id}/logs`` is the first page, and
``task://{id}/logs/{after}`` the events after seq ``after``; each page names the next one.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
import orjson
import trio
from cattrs.preconf.json import make_converter

from host_daemon import AGENT_NAMES, DaemonError
from host_daemon._records import AgentName
from mcp_server._core._errors import InvalidParams, ResourceNotFound
from mcp_server._core._registry import (
    JSON,
    Prompt,
    PromptArgument,
    PromptResult,
    Registry,
    RequestContext,
    Resource,
    ResourceContents,
    ResourceTemplate,
    TextContents,
    Tool,
    ToolResult,
)

from ._model import InvalidTransition, RunReport, Task, TaskEvent, TaskOptions
from ._runner import (
    ChangeKind,
    PathRefused,
    RunNotStarted,
    ShuttingDown,
    TaskBusy,
    TaskNotFound,
    TaskRunner,
)
from ._store import StateWriteError, register_strict_scalars

log = logging.getLogger("mcp_server.tasks")

MAX_TEXT_CHARS = 60_000
"""Cap on one answer's text (~15k tokens), well under a client's 25k-token limit."""
MAX_FIELD_CHARS = 20_000
"""Cap on one long field (an agent's final text) inside an answer."""
MAX_MESSAGE_CHARS = 2_000
"""Cap on an error message, which may quote an argument."""
LOG_PAGE_EVENTS = 200
LIST_TASKS = 50
"""Tasks listed in one answer (each ~0.7 kB): the rest are counted, and readable one by one."""
MAX_WAIT_S = 50.0
DEFAULT_WAIT_S = 30.0
PROGRESS_INTERVAL_S = 1.0

# -- arguments: the tool-call boundary's one strict converter ------------------------------


ARGS = make_converter(forbid_extra_keys=True)
register_strict_scalars(ARGS)


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


def _length(low: int, high: int) -> Callable[[Any, attrs.Attribute[Any], str], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if not low <= len(value) <= high:
            raise ValueError(f"{attribute.name} must be {low}..{high} characters, got {len(value)}")

    return check


@attrs.frozen
class RunOptionsArgs:
    agent: AgentName = "claude"
    project_dir: str | None = None
    model: str | None = None
    max_turns: int | None = attrs.field(default=None, validator=_positive)
    max_budget_usd: float | None = attrs.field(default=None, validator=_positive)
    timeout_s: float | None = attrs.field(default=None, validator=_positive)
    permission_mode: str | None = None


@attrs.frozen
class CreateArgs(RunOptionsArgs):
    title: str = attrs.field(kw_only=True, validator=_length(1, 255))
    instructions: str = attrs.field(kw_only=True, validator=_length(1, 10_000))


@attrs.frozen
class UpdateArgs:
    id: str
    instructions: str = attrs.field(validator=_length(1, 10_000))


@attrs.frozen
class IdArgs:
    id: str


@attrs.frozen
class OptionalIdArgs:
    id: str | None = None


@attrs.frozen
class WaitArgs:
    id: str
    timeout_s: float = attrs.field(default=DEFAULT_WAIT_S)

    @timeout_s.validator
    def _bounded(self, _: attrs.Attribute[float], value: float) -> None:
        if not 0 <= value <= MAX_WAIT_S:
            raise ValueError(f"timeout_s must be 0..{MAX_WAIT_S:g}, got {value:g}")


@attrs.frozen
class NoArgs:
    pass


@attrs.frozen
class PromptIdArgs:
    prompt_id: str | None = None


class ToolFailure(Exception):
    """A tool call that fails with a code and a message (an ``isError`` result)."""

    def __init__(self, code: str, message: str, result: JSON | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.result = result


def _format_attrs_error(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, ValueError) and not isinstance(exc, cattrs.BaseValidationError):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


T = TypeVar("T")


def parse_args(cls: type[T], arguments: JSON) -> T:
    """Structure a tool's arguments strictly, or fail with ``expected X, got Y @ $.path``."""
    try:
        return ARGS.structure(arguments, cls)
    except cattrs.BaseValidationError as exc:
        lines = cattrs.transform_error(exc, path="$", format_exception=_format_attrs_error)
        raise ToolFailure("invalid_arguments", "; ".join(lines)) from None
    except (TypeError, ValueError) as exc:
        raise ToolFailure("invalid_arguments", str(exc)) from None


# -- shaping answers ------------------------------------------------------------------------


def cap(text: str | None, limit: int, where: str) -> str | None:
    """``text`` cut to ``limit`` characters with a marker saying where the rest is."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n… [cut: {len(text) - limit} more characters; the rest is in {where}]"


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def report_view(task: Task, report: RunReport | None) -> JSON | None:
    """A run's report as clients see it."""
    if report is None:
        return None
    return {
        "outcome": report.outcome,
        "final_text": cap(report.final_text, MAX_FIELD_CHARS, f"task://{task.id}/logs"),
        "cost_usd": report.cost_usd,
        "num_turns": report.num_turns,
        "usage": report.usage,
        "files_changed": report.files_changed[:200],
        "error": cap(report.error, 4000, f"task://{task.id}/logs"),
        "exit_code": report.exit_code,
        "signal": report.signal,
        "session_id": report.session_id,
        "session_note": report.session_note,
        "started_at": _time(report.started_at),
        "finished_at": _time(report.finished_at),
        "duration_s": round(report.duration(), 3),
    }


def task_view(task: Task, *, full: bool = False) -> JSON:
    """A task as clients see it (``full`` adds the instructions and the last report)."""
    view: JSON = {
        "task_id": task.id,
        "title": task.title,
        "description": task.title,
        "agent": task.agent,
        "tool": task.agent,
        "status": task.status,
        "project_dir": task.project_dir,
        "session_id": task.session_id,
        "created_at": _time(task.created_at),
        "updated_at": _time(task.updated_at),
        "started_at": _time(task.started_at),
        "completed_at": _time(task.completed_at),
        "turns": len(task.turns),
        "event_count": task.event_count,
        "outcome": task.report.outcome if task.report else None,
        "logs": f"task://{task.id}/logs",
    }
    if full:
        view["options"] = attrs.asdict(task.options)
        view["instructions"] = [
            cap(turn.instructions, 2000, f"task://{task.id}") for turn in task.turns[-10:]
        ]
        view["report"] = report_view(task, task.report)
        view["result"] = f"task://{task.id}/result"
    return view


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def success(message: str, result: Any) -> ToolResult:
    """A successful answer in the original's shape."""
    structured = {"status": "success", "message": message, "result": result}
    text = cap(_dumps(structured), MAX_TEXT_CHARS, "the structured content and resources")
    return ToolResult(content=[{"type": "text", "text": text}], structured_content=structured)


def failure(code: str, message: str, result: Any = None) -> ToolResult:
    """A failed answer (``isError``) in the original's shape.

    The message is cut to ``MAX_MESSAGE_CHARS``: it may quote an argument, and arguments can be
    megabytes (an unknown id, an unexpected key).
    """
    message = cap(message, MAX_MESSAGE_CHARS, "the arguments of the call") or ""
    structured: JSON = {"status": "error", "message": message, "error": {"code": code}}
    if result is not None:
        structured["result"] = result
    text = cap(_dumps(structured), MAX_TEXT_CHARS, "the structured content and resources")
    return ToolResult(
        content=[{"type": "text", "text": text}], structured_content=structured, is_error=True
    )


OUTPUT_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["success", "error"]},
        "message": {"type": "string"},
        "result": {},
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}},
            "required": ["code"],
        },
    },
    "required": ["status", "message"],
}

_RUN_OPTIONS: JSON = {
    "agent": {
        "type": "string",
        "enum": list(AGENT_NAMES),
        "description": "Which coding-agent CLI runs the task (default claude).",
    },
    "project_dir": {
        "type": "string",
        "description": "Directory to work in, relative to the workspace (default: the workspace).",
    },
    "model": {"type": "string", "description": "Model name passed to the agent CLI."},
    "max_turns": {"type": "integer", "minimum": 1, "description": "Agent turns per run."},
    "max_budget_usd": {"type": "number", "description": "Spending cap per run, in USD."},
    "timeout_s": {"type": "number", "description": "Wall-clock limit per run, in seconds."},
    "permission_mode": {"type": "string", "description": "The agent CLI's permission mode."},
}


def _schema(properties: JSON, required: tuple[str, ...] = ()) -> JSON:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


# -- the tools ------------------------------------------------------------------------------


@attrs.define
class TaskTools:
    """The handlers, bound to a runner and the registry they notify."""

    runner: TaskRunner
    registry: Registry
    features: Mapping[str, bool] = attrs.field(factory=dict)
    _errors: dict[type[BaseException], str] = attrs.field(
        factory=lambda: {
            TaskNotFound: "task_not_found",
            TaskBusy: "busy",
            PathRefused: "path_outside_workspace",
            InvalidTransition: "invalid_state",
            ShuttingDown: "shutting_down",
            StateWriteError: "state_unwritable",
        }
    )

    def _guard(
        self, handler: Callable[[RequestContext, JSON], Awaitable[ToolResult]]
    ) -> Callable[[RequestContext, JSON], Awaitable[ToolResult]]:
        async def guarded(ctx: RequestContext, arguments: JSON) -> ToolResult:
            try:
                return await handler(ctx, arguments)
            except ToolFailure as exc:
                return failure(exc.code, exc.message, exc.result)
            except (
                TaskNotFound,
                TaskBusy,
                PathRefused,
                InvalidTransition,
                ShuttingDown,
                StateWriteError,
            ) as exc:
                return failure(self._errors[type(exc)], str(exc))
            except RunNotStarted as exc:
                task = self.runner.get(exc.task_id)
                return failure(exc.code, str(exc), task_view(task, full=True))

        return guarded

    async def create_task(self, ctx: RequestContext, arguments: JSON) -> ToolResult:
        args = parse_args(CreateArgs, arguments)
        task = await self.runner.create(
            title=args.title,
            instructions=args.instructions,
            agent=args.agent,
            project_dir=args.project_dir,
            options=_options(args),
        )
        return await self._started(ctx, task, "created")

    async def update_task(self, ctx: RequestContext, arguments: JSON) -> ToolResult:
        args = parse_args(UpdateArgs, arguments)
        task = await self.runner.follow_up(args.id, args.instructions)
        return await self._started(ctx, task, "updated")

    async def _started(self, ctx: RequestContext, task: Task, verb: str) -> ToolResult:
        if not ctx.as_task:
            return success(
                f"task {task.id} {verb}; the agent is working "
                f"(follow it with wait_task or task://{task.id})",
                task_view(task),
            )
        task = await self._follow(ctx, task.id)
        view = task_view(task, full=True)
        if task.status == "waiting":
            return success(
                f"task {task.id}: the run succeeded; the task waits for follow-ups", view
            )
        return failure("run_" + task.status, f"task {task.id}: the run ended {task.status}", view)

    async def _follow(self, ctx: RequestContext, task_id: str) -> Task:
        """Wait for the run's end, sending progress; a cancelled MCP task stops the run."""
        try:
            while self.runner.is_running(task_id):
                seq = self.runner.last_seq(task_id)
                await ctx.progress(float(seq), None, f"{seq} events")
                with trio.move_on_after(PROGRESS_INTERVAL_S):
                    await self.runner.wait(task_id, MAX_WAIT_S)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self.runner.stop(task_id)
            raise
        return self.runner.get(task_id)

    async def end_task(self, ctx: RequestContext, arguments: JSON) -> ToolResult:
        args = parse_args(IdArgs, arguments)
        task = await self.runner.end(args.id)
        return success(f"task {task.id} ended", task_view(task, full=True))

    async def report(self, ctx: RequestContext, arguments: JSON) -> ToolResult:
        args = parse_args(OptionalIdArgs, arguments)
        if args.id is not None:
            task = self.runner.get(args.id)
            return success(f"task {task.id} is {task.status}", task_view(task, full=True))
        tasks = self.runner.tasks()
        return success(f"{len(tasks)} tasks", statistics_view(tasks))

    async def check_status(self, ctx: RequestContext, arguments: JSON) -> ToolResult:
        parse_args(NoArgs, arguments)
        status = await self.status_view()
        if not status["state"]["writable"]:
            return failure("state_unwritable", status["state"]["error"], status)
        if not status["daemon"]["reachable"]:
            return failure("daemon_unavailable", status["daemon"]["error"], status)
        return success("the host daemon answers", status)

    async def status_view(self) -> JSON:
        """The daemon's probe (or why it failed), the state disk's condition, the task counts."""
        store = self.runner.store
        await store.retry(probe=True)
        state: JSON = {
            "path": str(store.root),
            "writable": store.fault is None,
            "error": None if store.fault is None else str(store.fault),
            "unsaved_tasks": store.unsaved(),
        }
        daemon: JSON
        try:
            info = await self.runner.probe()
        except DaemonError as exc:
            daemon = {"reachable": False, "error": f"{exc.code}: {exc.message}"}
        except OSError as exc:
            daemon = {"reachable": False, "error": f"connection failed: {exc}"}
        else:
            daemon = {
                "reachable": True,
                "version": info.daemon_version,
                "protocol_version": info.protocol_version,
                "agents": [attrs.asdict(agent) for agent in info.agents],
                "roots": info.roots,
                "active_runs": info.active_runs,
                "max_concurrent_runs": info.max_concurrent_runs,
            }
        daemon["host"] = self.runner.daemon.host
        daemon["port"] = self.runner.daemon.port
        tasks = self.runner.tasks()
        return {
            "daemon": daemon,
            "state": state,
            "features": dict(self.features),
            "active_tasks": sum(task.status == "in_progress" for task in tasks),
            "total_tasks": len(tasks),
            "running_processes": self.runner.running(),
        }

    async def clean_state(self, ctx: RequestContext, arguments: JSON) -> ToolResult:
        parse_args(NoArgs, arguments)
        deleted = await self.runner.clean()
        return success(f"deleted {deleted} tasks (runs stopped first)", {"deleted": deleted})

    async def wait_task(self, ctx: RequestContext, arguments: JSON) -> ToolResult:
        args = parse_args(WaitArgs, arguments)
        self.runner.get(args.id)
        log.info("wait_task: waiting for task %s (up to %g s)", args.id, args.timeout_s)
        task = await self.runner.wait(args.id, args.timeout_s)
        still = task.status == "in_progress"
        message = (
            f"task {task.id} is still running; call wait_task again"
            if still
            else f"task {task.id} is {task.status}"
        )
        return success(message, task_view(task, full=not still))

    async def get_prompt(self, ctx: RequestContext, arguments: JSON) -> ToolResult:
        args = parse_args(PromptIdArgs, arguments)
        if args.prompt_id is None:
            return success(f"{len(PROMPTS)} prompts", [_prompt_view(p) for p in PROMPTS.values()])
        spec = PROMPTS.get(args.prompt_id)
        if spec is None:
            raise ToolFailure(
                "prompt_not_found",
                f"no prompt {args.prompt_id!r}; known: {', '.join(PROMPTS)}",
            )
        return success(f"prompt {spec.name}", _prompt_view(spec))

    # -- notifications --------------------------------------------------------------------

    def on_change(self, task_id: str, kind: ChangeKind) -> None:
        """Announce a task's change to subscribers (the runner rate-limits output)."""
        uri = f"task://{task_id}"
        if kind == "created":
            self.registry.add_resource(self._task_resource(task_id))
        elif kind == "deleted":
            self.registry.remove_resource(uri)
        self.registry.resource_updated(uri)
        self.registry.resource_updated(f"{uri}/logs")
        if kind != "output":
            self.registry.resource_updated(f"{uri}/result")
            self.registry.resource_updated("agent://tasks")

    # -- resources ------------------------------------------------------------------------

    def _task_resource(self, task_id: str) -> Resource:
        task = self.runner.get(task_id)
        return Resource(
            uri=f"task://{task_id}",
            name=f"task-{task_id}",
            title=task.title,
            description=f"Task {task.title!r}: status, turns and the last run's report.",
            mime_type="application/json",
            read=self._read_task,
        )

    async def _read_task(self, uri: str) -> list[ResourceContents]:
        return await self._read_task_template(uri, {"id": uri.removeprefix("task://")})

    async def _read_task_template(
        self, uri: str, variables: Mapping[str, str]
    ) -> list[ResourceContents]:
        task = self._task_or_not_found(uri, variables["id"])
        return _json_contents(uri, task_view(task, full=True))

    async def _read_result(self, uri: str, variables: Mapping[str, str]) -> list[ResourceContents]:
        task = self._task_or_not_found(uri, variables["id"])
        return _json_contents(
            uri,
            {"task_id": task.id, "status": task.status, "report": report_view(task, task.report)},
        )

    async def _read_logs_first(
        self, uri: str, variables: Mapping[str, str]
    ) -> list[ResourceContents]:
        return await self._read_logs(uri, {"id": variables["id"], "after": "0"})

    async def _read_logs(self, uri: str, variables: Mapping[str, str]) -> list[ResourceContents]:
        task = self._task_or_not_found(uri, variables["id"])
        after_text = variables["after"]
        # str.isdigit() alone admits '²' (int() then fails) and '٣' (int() reads 3).
        if not (after_text.isascii() and after_text.isdigit()) or len(after_text) > 12:
            raise InvalidParams(f"expected a sequence number, got {after_text!r} @ $.params.uri")
        after = int(after_text)
        events = await self.runner.events(task.id, after, LOG_PAGE_EVENTS)
        page: list[JSON] = []
        size = 0
        for event in events:
            item = _event_view(event, task.id)
            size += len(orjson.dumps(item))
            if page and size > MAX_TEXT_CHARS:
                break
            page.append(item)
        last = page[-1]["seq"] if page else after
        latest = self.runner.last_seq(task.id)
        return _json_contents(
            uri,
            {
                "task_id": task.id,
                "status": task.status,
                "after": after,
                "events": page,
                "last_seq": latest,
                "next": f"task://{task.id}/logs/{last}" if last < latest else None,
                "follow": f"task://{task.id}/logs/{last}",
            },
        )

    def _task_or_not_found(self, uri: str, task_id: str) -> Task:
        try:
            return self.runner.get(task_id)
        except TaskNotFound:
            raise ResourceNotFound(uri) from None

    async def _read_status(self, uri: str) -> list[ResourceContents]:
        return _json_contents(uri, await self.status_view())

    async def _read_tasks(self, uri: str) -> list[ResourceContents]:
        tasks = self.runner.tasks()
        views = [task_view(task) for task in tasks[-LIST_TASKS:]]
        return _json_contents(
            uri,
            {"total_tasks": len(tasks), "tasks_omitted": len(tasks) - len(views), "tasks": views},
        )

    # -- registration ---------------------------------------------------------------------

    def register(self) -> None:
        """Declare the tools, resources, templates and prompts on the registry."""
        add = self.registry.add_tool
        tools: list[tuple[str, str, JSON, Callable[..., Awaitable[ToolResult]], bool]] = [
            (
                "create_task",
                "Create a coding task and start an agent on it; returns at once with the task "
                "id (as an MCP task it returns when the run ends, with its report).",
                _schema(
                    {
                        "title": {"type": "string", "minLength": 1, "maxLength": 255},
                        "instructions": {"type": "string", "minLength": 1, "maxLength": 10000},
                        **_RUN_OPTIONS,
                    },
                    ("title", "instructions"),
                ),
                self.create_task,
                True,
            ),
            (
                "update_task",
                "Send follow-up instructions to a task: the agent continues the same "
                "conversation. Refused with code 'busy' while a run is in flight (wait_task).",
                _schema(
                    {
                        "id": {"type": "string"},
                        "instructions": {"type": "string", "minLength": 1, "maxLength": 10000},
                    },
                    ("id", "instructions"),
                ),
                self.update_task,
                True,
            ),
            (
                "end_task",
                "End a task: stops its run if one is in flight (the agent's whole process "
                "tree), then marks it completed.",
                _schema({"id": {"type": "string"}}, ("id",)),
                self.end_task,
                False,
            ),
            (
                "report",
                "One task's details and last report, or every task with statistics.",
                _schema({"id": {"type": "string"}}),
                self.report,
                False,
            ),
            (
                "check_status",
                "Probe the host daemon (reachability, agents found), check the state disk "
                "(an error while it refuses writes) and count tasks.",
                _schema({}),
                self.check_status,
                False,
            ),
            (
                "clean_state",
                "Delete every task (runs in flight are stopped first).",
                _schema({}),
                self.clean_state,
                False,
            ),
            (
                "get_prompt",
                "One prompt template, or all of them.",
                _schema({"prompt_id": {"type": "string"}}),
                self.get_prompt,
                False,
            ),
            (
                "wait_task",
                f"Wait until a task's run ends or timeout_s passes (at most {MAX_WAIT_S:g} s, "
                f"default {DEFAULT_WAIT_S:g} s); returns the task.",
                _schema(
                    {
                        "id": {"type": "string"},
                        "timeout_s": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S},
                    },
                    ("id",),
                ),
                self.wait_task,
                False,
            ),
        ]
        for name, description, schema, handler, tasks in tools:
            add(
                Tool(
                    name=name,
                    description=description,
                    input_schema=schema,
                    output_schema=OUTPUT_SCHEMA,
                    handler=self._guard(handler),
                    task_support="optional" if tasks else "forbidden",
                )
            )
        self.registry.add_resource(
            Resource(
                uri="agent://status",
                name="agent-status",
                description="The host daemon's probe and task counts.",
                mime_type="application/json",
                read=self._read_status,
            )
        )
        self.registry.add_resource(
            Resource(
                uri="agent://tasks",
                name="agent-tasks",
                description=f"The tasks (the latest {LIST_TASKS}), newest last.",
                mime_type="application/json",
                read=self._read_tasks,
            )
        )
        templates = [
            (
                "task://{id}",
                "task",
                "A task: status, turns, last report.",
                self._read_task_template,
            ),
            (
                "task://{id}/logs",
                "task-logs",
                f"A task's events from the start, at most {LOG_PAGE_EVENTS} per page; "
                "'next' names the following page.",
                self._read_logs_first,
            ),
            (
                "task://{id}/logs/{after}",
                "task-logs-after",
                "A task's events with seq > after (a page; 'next' names the following one).",
                self._read_logs,
            ),
            ("task://{id}/result", "task-result", "A task's last run report.", self._read_result),
        ]
        for uri_template, name, description, read in templates:
            self.registry.add_template(
                ResourceTemplate(
                    uri_template=uri_template,
                    name=name,
                    description=description,
                    mime_type="application/json",
                    read=read,
                    complete=self._complete_id,
                )
            )
        for task in self.runner.tasks():
            self.registry.add_resource(self._task_resource(task.id))
        for spec in PROMPTS.values():
            self.registry.add_prompt(spec.prompt())

    async def _complete_id(
        self, argument: str, partial: str, _context: Mapping[str, str]
    ) -> list[str]:
        if argument != "id":
            return []
        return [task.id for task in self.runner.tasks() if task.id.startswith(partial)][:100]


def _options(args: RunOptionsArgs) -> TaskOptions:
    return TaskOptions(
        model=args.model,
        max_turns=args.max_turns,
        max_budget_usd=args.max_budget_usd,
        timeout_s=args.timeout_s,
        permission_mode=args.permission_mode,
    )


def _event_view(event: TaskEvent, task_id: str) -> JSON:
    view: JSON = {
        "seq": event.seq,
        "time": event.time.isoformat(),
        "kind": event.kind,
        "summary": event.summary,
    }
    if event.data:
        data = _dumps(event.data)
        view["data"] = event.data if len(data) <= 8000 else {"cut": cap(data, 8000, "raw")}
    if event.raw is not None:
        view["raw"] = cap(event.raw, 8000, f"the agent's output (seq {event.seq})")
    return view


def _json_contents(uri: str, value: Any) -> list[ResourceContents]:
    return [TextContents(uri=uri, text=_dumps(value), mime_type="application/json")]


def statistics_view(tasks: list[Task]) -> JSON:
    """The original's statistics over every task, plus the latest ``LIST_TASKS`` tasks."""
    durations = [t.report.duration() for t in tasks if t.report]
    finished = [t for t in tasks if t.report is not None]
    succeeded = [t for t in finished if t.report and t.report.outcome == "success"]
    return {
        "total_tasks": len(tasks),
        "by_status": dict(Counter(t.status for t in tasks)),
        "by_tool": dict(Counter(t.agent for t in tasks)),
        "average_duration_seconds": round(statistics.fmean(durations), 3) if durations else None,
        "success_rate": round(len(succeeded) / len(finished), 4) if finished else None,
        "tasks_omitted": max(0, len(tasks) - LIST_TASKS),
        "tasks": [task_view(t) for t in tasks[-LIST_TASKS:]],
    }


# -- prompts --------------------------------------------------------------------------------


@attrs.frozen
class PromptSpec:
    """A prompt template with ``{{arg}}`` placeholders and its arguments."""

    name: str
    description: str
    template: str
    arguments: tuple[PromptArgument, ...]

    def render_text(self, values: Mapping[str, str]) -> str:
        missing = [a.name for a in self.arguments if a.required and not values.get(a.name)]
        if missing:
            raise InvalidParams(f"missing required argument(s): {', '.join(missing)}")
        unknown = sorted(set(values) - {a.name for a in self.arguments})
        if unknown:
            raise InvalidParams(f"unknown argument(s): {', '.join(unknown)}")
        text = self.template
        for argument in self.arguments:
            text = text.replace("{{" + argument.name + "}}", values.get(argument.name) or "")
        return "\n".join(line for line in text.splitlines() if not line.endswith(": ")).strip()

    def prompt(self) -> Prompt:
        async def render(values: Mapping[str, str]) -> PromptResult:
            text = self.render_text(values)
            return PromptResult(
                messages=[{"role": "user", "content": {"type": "text", "text": text}}],
                description=self.description,
            )

        return Prompt(
            name=self.name, description=self.description, render=render, arguments=self.arguments
        )


def _prompt_view(spec: PromptSpec) -> JSON:
    return {
        "id": spec.name,
        "name": spec.name,
        "description": spec.description,
        "template": spec.template,
        "arguments": [
            {"name": a.name, "description": a.description, "required": a.required}
            for a in spec.arguments
        ],
    }


def _arg(name: str, description: str, required: bool = False) -> PromptArgument:
    return PromptArgument(name=name, description=description, required=required)


PROMPTS: dict[str, PromptSpec] = {
    spec.name: spec
    for spec in (
        PromptSpec(
            name="fix_bug",
            description="Find and fix a bug, with a test that shows it fixed.",
            template=(
                "Fix this bug: {{bug_description}}\n"
                "Error message: {{error_message}}\n"
                "Affected files: {{affected_files}}\n"
                "Steps to reproduce: {{reproduction_steps}}\n"
                "Find the root cause, fix it, and add a test that fails without the fix."
            ),
            arguments=(
                _arg("bug_description", "What goes wrong", required=True),
                _arg("error_message", "The error message, if any"),
                _arg("affected_files", "Files involved, if known"),
                _arg("reproduction_steps", "How to make it happen"),
            ),
        ),
        PromptSpec(
            name="create_unit_tests",
            description="Write unit tests for a file.",
            template=(
                "Write unit tests for {{file_path}}.\n"
                "Test framework: {{test_framework}}\n"
                "Coverage target: {{coverage_target}}\n"
                "Cover normal cases, edge cases and errors; run the tests and make them pass."
            ),
            arguments=(
                _arg("file_path", "The file to test", required=True),
                _arg("test_framework", "Which framework to use (default: the project's)"),
                _arg("coverage_target", "Coverage to reach, e.g. 90%"),
            ),
        ),
        PromptSpec(
            name="create_react_component",
            description="Create a React component.",
            template=(
                "Create a React component named {{component_name}}: {{description}}\n"
                "Component type: {{component_type}}\n"
                "Styling: {{styling_approach}}\n"
                "Include tests: {{include_tests}}"
            ),
            arguments=(
                _arg("component_name", "The component's name", required=True),
                _arg("description", "What it does", required=True),
                _arg("component_type", "functional or class"),
                _arg("styling_approach", "CSS modules, styled-components, Tailwind, …"),
                _arg("include_tests", "yes or no"),
            ),
        ),
    )
}


def register_tasks(
    registry: Registry, runner: TaskRunner, *, features: Mapping[str, bool] | None = None
) -> TaskTools:
    """Declare the coding-task surface on ``registry`` and route the runner's changes to it."""
    tools = TaskTools(runner=runner, registry=registry, features=dict(features or {}))
    tools.register()
    runner.set_listener(tools.on_change)
    return tools
