"""The task CLI's commands: ``tasks``, ``show``, ``logs``, ``new``, ``send``, ``approve``,
``interrupt``, ``end``, ``merge``, ``discard``. Each talks MCP to the server; ``--json`` prints
the tool's ``result`` or the resource's JSON (``logs``: one event per line).

Exit codes: 0 done; 1 the task failed or a tool refused (unknown task, busy, conflict, …);
2 bad arguments; 3 the server cannot be reached or refused the token; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

import orjson
import trio

from ._client import (
    ConsoleError,
    McpSession,
    RpcError,
    ToolFailed,
    open_session,
)
from ._discovery import Endpoint, find_endpoint
from ._follow import follow_logs
from ._render import (
    ACTIVE,
    FAILED,
    JSON,
    Style,
    approval_hint,
    asking_lines,
    event_line,
    task_details,
    task_line,
    task_table,
)
from ._terminal import Output, wants_colour

COMMANDS = (
    "tasks",
    "show",
    "logs",
    "new",
    "send",
    "approve",
    "interrupt",
    "end",
    "merge",
    "discard",
)
DECISIONS = ("allow", "deny")
AGENTS = ("claude", "codex", "gemini")
STRATEGIES = ("merge", "squash", "rebase")
INTERRUPTED = 130


def _text(limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value.strip() or len(value) > limit:
            raise argparse.ArgumentTypeError(f"expected 1..{limit} characters, got {len(value)}")
        return value

    return check


class _RequestAndDecision(argparse.Action):
    """``[REQUEST] allow|deny``: the request id is optional when exactly one is pending."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given = list(values)
        if len(given) > 2 or given[-1] not in DECISIONS:
            parser.error(
                f"expected [REQUEST] allow|deny after the task id, got {' '.join(given)!r}"
            )
        if len(given) == 2 and not given[0].strip():
            parser.error("expected a request id, got an empty one")
        namespace.request_id = given[0] if len(given) == 2 else None
        namespace.decision = given[-1]


def add_console_commands(commands: Any) -> None:
    """Add the task commands to ``coding-agent``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("server (default: the running `coding-agent up`)")
    where.add_argument("--url", help="the MCP URL (env CODING_AGENT_URL)")
    where.add_argument(
        "--token", help="the bearer token (env MCP_AUTH_TOKEN, better: a flag shows in ps)"
    )
    where.add_argument("--state-path", type=pathlib.Path, help="up's state dir (env STATE_PATH)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    add = commands.add_parser
    tasks = add("tasks", parents=[common], help="list the tasks (the latest 50)")
    tasks.add_argument("--status", help="only these statuses (comma-separated)")
    tasks.add_argument("--project", help="only tasks of this project directory")
    add("show", parents=[common], help="a task's details").add_argument("id")
    logs = add("logs", parents=[common], help="a task's event log")
    logs.add_argument("id")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until the run ends")
    new = add("new", parents=[common], help="create a task and start its agent")
    new.add_argument("--title", required=True, type=_text(255))
    new.add_argument("instructions", type=_text(10_000))
    new.add_argument("--agent", choices=AGENTS, help="the agent CLI (default claude)")
    new.add_argument("--project-dir", help="relative to the workspace (default: the workspace)")
    new.add_argument(
        "--host", help="the host daemon it runs on (default: the one serving the project dir)"
    )
    new.add_argument("--wait", action="store_true", help="follow its log until the run ends")
    send = add("send", parents=[common], help="send follow-up instructions to a task")
    send.add_argument("id")
    send.add_argument("text", type=_text(10_000))
    send.add_argument("--wait", action="store_true", help="follow its log until the run ends")
    approve = add(
        "approve",
        parents=[common],
        help="allow or deny a task's pending permission request",
        description="Answer a live task's pending permission request; REQUEST may be left out "
        "when exactly one is pending (`coding-agent show ID` lists them).",
    )
    approve.add_argument("id")
    approve.add_argument(
        "decision",
        nargs="+",
        action=_RequestAndDecision,
        metavar="[REQUEST] allow|deny",
        help="the request's id (optional when only one is pending), then allow or deny",
    )
    approve.add_argument("--message", type=_text(10_000), help="why (a deny's reaches the agent)")
    approve.add_argument(
        "--remember",
        choices=("once", "task"),
        default="once",
        help="task: also allow this rule for the rest of the task (default once)",
    )
    add(
        "interrupt",
        parents=[common],
        help="stop a task's current turn (the task and its conversation stay)",
    ).add_argument("id")
    add("end", parents=[common], help="end a task (stops a run in flight)").add_argument("id")
    merge = add("merge", parents=[common], help="merge a worktree task's branch")
    merge.add_argument("id")
    merge.add_argument("--strategy", choices=STRATEGIES, help="default merge")
    merge.add_argument("--message", type=_text(10_000), help="the commit message")
    discard = add("discard", parents=[common], help="discard a worktree task's work")
    discard.add_argument("id")


def console_main(
    args: argparse.Namespace,
    environ: Mapping[str, str] = os.environ,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one task command; its exit code. Errors are one line on stderr, never a traceback."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    tty = stdout.isatty() and not args.json
    out = Output(stdout, tty=tty, style=Style(colour=tty and wants_colour(stdout, environ)))
    try:
        endpoint = find_endpoint(
            environ, url=args.url, token=args.token, state_path=args.state_path
        )
        return _unwrapped(trio.run, _run, args, endpoint, out)
    except KeyboardInterrupt:
        out.clear()
        print(f"coding-agent {args.command}: interrupted", file=stderr)
        return INTERRUPTED
    except ConsoleError as error:
        out.clear()
        if args.json:
            out.line(orjson.dumps(_error_json(error)).decode())
        print(f"coding-agent {args.command}: {error}", file=stderr)
        return error.exit_code


def _unwrapped(run: Callable[..., int], *args: Any) -> int:
    """``run(*args)``, a Ctrl-C or a :class:`ConsoleError` that trio delivered inside an
    exception group raised as itself (anything else stays a group: a bug to see)."""
    try:
        return run(*args)
    except BaseExceptionGroup as group:
        for kind in (KeyboardInterrupt, ConsoleError):
            matched: BaseException | None = group.split(kind)[0]
            while isinstance(matched, BaseExceptionGroup):
                matched = matched.exceptions[0]
            if matched is not None:
                raise matched from None
        raise


def _error_json(error: ConsoleError) -> JSON:
    if isinstance(error, ToolFailed):
        return error.answer
    return {"status": "error", "message": str(error), "error": {"code": error.code}}


async def _run(args: argparse.Namespace, endpoint: Endpoint, out: Output) -> int:
    async with open_session(endpoint.url, endpoint.token) as session:
        command = _COMMANDS[args.command]
        return await command(session, args, out)


def _print_json(out: Output, value: Any) -> None:
    out.line(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@contextlib.contextmanager
def _task_named(task_id: str) -> Iterator[None]:
    """A resource read of an unknown task becomes the tools' ``task_not_found`` (exit 1)."""
    try:
        yield
    except RpcError as exc:
        if not exc.resource_not_found:
            raise
        message = f"no task with id {task_id!r}"
        answer = {"status": "error", "message": message, "error": {"code": "task_not_found"}}
        raise ToolFailed("task_not_found", message, answer) from None


async def _read_task_json(session: McpSession, task_id: str) -> JSON:
    with _task_named(task_id):
        return await session.read_json(f"task://{task_id}")


async def _tasks(session: McpSession, args: argparse.Namespace, out: Output) -> int:
    query = urllib.parse.urlencode(
        [
            (key, value)
            for key, value in (("status", args.status), ("project", args.project))
            if value
        ]
    )
    uri = f"agent://tasks?{query}" if query else "agent://tasks"
    listing = await out.waiting("reading tasks", lambda: session.read_json(uri))
    if args.json:
        _print_json(out, listing)
        return 0
    if not listing["tasks"]:
        out.line("no tasks")
        return 0
    for line in task_table(listing["tasks"], out.style):
        out.line(line)
    if listing.get("tasks_omitted"):
        out.line(f"({listing['tasks_omitted']} older tasks not shown)")
    for line in asking_lines(listing["tasks"], out.style):
        out.line(line)
    return 0


async def _show(session: McpSession, args: argparse.Namespace, out: Output) -> int:
    task = await _read_task_json(session, args.id)
    if args.json:
        _print_json(out, task)
        return 0
    for line in task_details(task, out.style):
        out.line(line)
    return 0


async def _logs(session: McpSession, args: argparse.Namespace, out: Output) -> int:
    with _task_named(args.id):
        last = await _follow(session, args.id, out, json_lines=args.json, live=args.follow)
    if not args.follow:
        return 0
    return _ended(last, out, json_output=args.json)


async def _follow(
    session: McpSession,
    task_id: str,
    out: Output,
    *,
    json_lines: bool,
    live: bool,
    after: int = 0,
) -> JSON:
    def emit(event: JSON) -> None:
        if json_lines:
            out.line(orjson.dumps(event).decode())
            return
        out.line(event_line(event, out.style))
        hint = approval_hint(task_id, event, out.style)
        if hint:
            out.line(hint)

    status = {"now": "waiting for the run"}

    def label() -> str:
        return status["now"].replace("_", " ")

    def seen(page: JSON) -> None:
        status["now"] = str(page["status"])

    return await out.waiting(
        label, lambda: follow_logs(session, task_id, emit, live=live, after=after, on_page=seen)
    )


def _ended(page: JSON, out: Output, *, json_output: bool) -> int:
    """The line that closes a followed run; 1 when the task failed."""
    status = str(page["status"])
    if not json_output:
        out.line(f"{page['task_id']} run ended: status {out.style.status(status)}")
    return 1 if status in FAILED else 0


async def _new(session: McpSession, args: argparse.Namespace, out: Output) -> int:
    arguments: JSON = {"title": args.title, "instructions": args.instructions}
    if args.agent:
        arguments["agent"] = args.agent
    if args.project_dir:
        arguments["project_dir"] = args.project_dir
    if args.host:
        arguments["host"] = args.host
    answer = await out.waiting(
        "creating the task", lambda: session.call_tool("create_task", arguments)
    )
    return await _started(session, args, out, answer, "created")


async def _send(session: McpSession, args: argparse.Namespace, out: Output) -> int:
    after = 0
    if args.wait:  # follow this turn only: from the log's end before it
        task = await _read_task_json(session, args.id)
        after = int(task["event_count"])
    arguments = {"id": args.id, "instructions": args.text}
    answer = await out.waiting(
        "sending the follow-up", lambda: session.call_tool("update_task", arguments)
    )
    return await _started(session, args, out, answer, "follow-up sent", after=after)


async def _started(
    session: McpSession,
    args: argparse.Namespace,
    out: Output,
    answer: JSON,
    verb: str,
    *,
    after: int = 0,
) -> int:
    task = answer["result"]
    if args.json and not args.wait:
        _print_json(out, task)
        return 0
    # With --wait --json every line is one JSON object: the task, then its events.
    out.line(orjson.dumps(task).decode() if args.json else task_line(verb, task, out.style))
    if not args.wait:
        return 0
    last = await _follow(
        session, task["task_id"], out, json_lines=args.json, live=True, after=after
    )
    return _ended(last, out, json_output=args.json)


async def _approve(session: McpSession, args: argparse.Namespace, out: Output) -> int:
    request_id = args.request_id
    if request_id is None:
        task = await _read_task_json(session, args.id)
        request_id = _only_pending(task)
    arguments: JSON = {
        "id": args.id,
        "request_id": request_id,
        "decision": args.decision,
        "remember": args.remember,
    }
    if args.message:
        arguments["message"] = args.message
    answer = await out.waiting(
        "sending the decision", lambda: session.call_tool("approve", arguments)
    )
    verb = ("allowed" if args.decision == "allow" else "denied") + f" request {request_id}"
    if args.remember == "task" and args.decision == "allow":
        verb += " (and its rule for the rest of the task)"
    return _finished(out, args, answer, verb)


def _only_pending(task: JSON) -> str:
    """The one pending request's id; a refusal naming them when there are none or several."""
    pending = task.get("pending_approvals") or []
    if len(pending) == 1:
        return str(pending[0]["request_id"])
    if not pending:
        message = f"task {task['task_id']} has no pending request (it is {task['status']})"
        code = "not_pending"
    else:
        listed = ", ".join(f"{p['request_id']} ({p['tool_name']})" for p in pending)
        message = (
            f"task {task['task_id']} has {len(pending)} pending requests: name one of {listed}"
        )
        code = "ambiguous_request"
    answer = {"status": "error", "message": message, "error": {"code": code}}
    raise ToolFailed(code, message, answer)


async def _interrupt(session: McpSession, args: argparse.Namespace, out: Output) -> int:
    answer = await out.waiting(
        "interrupting the turn", lambda: session.call_tool("interrupt_task", {"id": args.id})
    )
    return _finished(out, args, answer, "interrupted")


async def _end(session: McpSession, args: argparse.Namespace, out: Output) -> int:
    answer = await out.waiting(
        "ending the task", lambda: session.call_tool("end_task", {"id": args.id})
    )
    return _finished(out, args, answer, "ended")


async def _merge(session: McpSession, args: argparse.Namespace, out: Output) -> int:
    arguments: JSON = {"id": args.id}
    if args.strategy:
        arguments["strategy"] = args.strategy
    if args.message:
        arguments["message"] = args.message
    answer = await out.waiting("merging", lambda: session.call_tool("merge_task", arguments))
    code = _finished(out, args, answer, "merged")
    merge = answer["result"].get("merge")
    if not args.json and isinstance(merge, dict):
        files = merge.get("files") or []
        out.line(
            f"into {merge.get('base_branch')} at {str(merge.get('commit'))[:12]} "
            f"({len(files)} file{'' if len(files) == 1 else 's'})"
        )
    return code


async def _discard(session: McpSession, args: argparse.Namespace, out: Output) -> int:
    answer = await out.waiting(
        "discarding", lambda: session.call_tool("discard_task", {"id": args.id})
    )
    code = _finished(out, args, answer, "discarded")
    done = answer["result"].get("discard")
    if not args.json and isinstance(done, dict):
        worktree = "removed" if done.get("removed_worktree") else "was gone"
        branch = "deleted" if done.get("deleted_branch") else "was gone"
        out.line(f"worktree {worktree}, branch {branch}")
    return code


def _finished(out: Output, args: argparse.Namespace, answer: JSON, verb: str) -> int:
    task = answer["result"]
    if args.json:
        _print_json(out, task)
    else:
        out.line(task_line(verb, task, out.style))
    return 0


_COMMANDS = {
    "tasks": _tasks,
    "show": _show,
    "logs": _logs,
    "new": _new,
    "send": _send,
    "approve": _approve,
    "interrupt": _interrupt,
    "end": _end,
    "merge": _merge,
    "discard": _discard,
}

__all__ = ["ACTIVE", "COMMANDS", "add_console_commands", "console_main"]
