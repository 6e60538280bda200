"""Codex's ``app-server`` as a live driver: JSON-RPC messages, one a line, without ``"jsonrpc"``.

What the pinned codex 0.171.0 does (its ``app-server generate-json-schema`` output, and the real
CLI driven against a scripted model, ``tests/host_daemon/test_daemon_live_codex*.py``):

- Handshake: ``initialize`` (answered), the ``initialized`` notification, then ``thread/start
  {cwd, approvalPolicy}`` or ``thread/resume {threadId, ...}``, whose ``result.thread.id`` is the
  session id, then ``turn/start {threadId, input}`` (``result.turn.id``). The turn ends with the
  ``turn/completed`` notification: ``turn.status`` ``completed``, ``failed`` (``turn.error``) or
  ``interrupted``.
- ``approvalPolicy: "untrusted"`` makes every command ask, even ``ls``. Codex refuses that value
  in its configuration ("no longer supported"), so it goes into ``thread/start``/``resume``; the
  sandbox (the permission mode) goes on the argv as ``--config=sandbox_mode=...``. An approved
  command runs outside the sandbox (Codex's rule: a write outside the workspace, or in a
  read-only sandbox, succeeds): an approval grants what a Claude Bash approval grants.
- Approvals are server requests: ``item/commandExecution/requestApproval {itemId, command, cwd}``
  and ``item/fileChange/requestApproval {itemId}`` (the changes come before it, in the
  ``item/started`` of that item), answered ``{"decision": "accept" | "decline"}``. A decline has
  no room for a message (the model reads "rejected by user"), so a deny's message is sent as a
  ``turn/steer``, and the decline only once Codex answered it: the model reads both in its next
  call, same turn. Codex runs a request such as ``turn/steer`` in a task of its own but hands an
  approval's answer to the waiting turn at once, so a decline written with the steer can overtake
  it: the model then answers the rejection without the message, and Codex calls it once more for
  the late steer. Codex answers ``turn/steer`` once the input waits in the turn.
- ``turn/steer {threadId, expectedTurnId, input}`` reaches the model in its next call of the same
  turn; once the turn ended Codex answers "no active turn to steer" (an ``error`` event here).
- ``turn/interrupt {threadId, turnId}`` ends the turn (``interrupted``), but a command it started
  keeps running, in its own session, until the app-server exits: after an interrupted turn the
  driver asks ``end_process``, and the next turn resumes the thread in a new process.
"""

from __future__ import annotations

import itertools
import os
import shlex
import time
from typing import Any, Final

import attrs
import orjson

from ._agent_events import CodexParser
from ._agents import plain_name_error
from ._limits import codex_limit
from ._live_driver import DriverOutput, DriverRefused, PermissionAsk
from ._parsers import Reason
from ._records import AgentEvent, ApprovalBehavior, Outcome, RunFinished, RunRequest
from ._version import __version__

__all__ = ["CODEX_LIVE", "SANDBOX_MODES", "CodexLiveAdapter", "CodexLiveDriver"]

SANDBOX_MODES: Final = frozenset({"read-only", "workspace-write", "danger-full-access"})
APPROVAL_POLICY: Final = "untrusted"
COMMAND_APPROVAL: Final = "item/commandExecution/requestApproval"
FILE_CHANGE_APPROVAL: Final = "item/fileChange/requestApproval"

#: Streaming deltas repeat what the completed item says; the chatter says nothing we use.
_OPTED_OUT: Final = (
    "item/agentMessage/delta",
    "item/commandExecution/outputDelta",
    "item/fileChange/outputDelta",
    "item/reasoning/summaryTextDelta",
    "item/reasoning/summaryPartAdded",
    "item/reasoning/textDelta",
    "item/plan/delta",
    "thread/status/changed",
    "account/rateLimits/updated",
    "remoteControl/status/changed",
)
_SHELLS: Final = frozenset({"bash", "sh", "zsh", "dash"})
_METHOD_NOT_FOUND: Final = -32601


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def exec_item(item: dict[str, Any]) -> dict[str, Any]:
    """An app-server item in ``codex exec --json``'s shape, for ``CodexParser``'s item table.

    ``agentMessage``/``aggregatedOutput``/``inProgress`` become ``agent_message``/
    ``aggregated_output``/``in_progress``; a file change's ``kind {type}`` becomes its type.
    """
    converted = {_snake(key): value for key, value in item.items()}
    for key in ("type", "status"):
        if isinstance(converted.get(key), str):
            converted[key] = _snake(converted[key])
    if isinstance(converted.get("changes"), list):
        converted["changes"] = [
            dict(change, kind=_dict(change.get("kind")).get("type", change.get("kind")))
            for change in converted["changes"]
            if isinstance(change, dict)
        ]
    return converted


def unwrapped_command(command: str) -> str:
    """The script of ``/bin/bash -lc 'SCRIPT'`` (how Codex shows every command), else as is.

    Rules such as ``Bash(pytest:*)`` are about the script, not the shell that runs it.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if len(words) == 3 and os.path.basename(words[0]) in _SHELLS and words[1] in ("-c", "-lc"):
        return words[2]
    return command


def _usage_of(breakdown: dict[str, Any]) -> dict[str, Any]:
    """A token breakdown with ``codex exec``'s key names (those the headless runs report)."""
    return {
        _snake(key): value
        for key, value in breakdown.items()
        if isinstance(value, int) and not isinstance(value, bool)
    }


class _Events(CodexParser):
    """The app-server's notifications as the ``AgentEvent``s ``codex exec --json`` gives.

    The driver sets the line being read (``begin``); the first event made carries it in ``raw``.
    """

    def begin(self, line: str) -> None:
        self._raw = line

    def make(self, kind: Any, **fields: Any) -> AgentEvent:
        return self._event(kind, **fields)

    def leftover(self, data: dict[str, Any]) -> list[AgentEvent]:
        """An ``other`` event for a line no event carried yet (every line is kept once)."""
        return [self._event("other", data=data)] if self._raw else []

    def started(self, session_id: str | None, data: dict[str, Any]) -> list[AgentEvent]:
        return self._started(session_id, data)

    def item(self, method: str, item: dict[str, Any]) -> list[AgentEvent]:
        kind = "item.started" if method == "item/started" else "item.completed"
        return self._item(kind, exec_item(item))


@attrs.frozen
class _Pending:
    """An approval Codex waits on: its JSON-RPC id and what the client was asked."""

    rpc_id: int | str
    ask: PermissionAsk


@attrs.frozen
class _HeldDecline:
    """A decline written once Codex answered the steer that carries the deny's message."""

    rpc_id: int | str
    line: bytes


class CodexLiveDriver:
    """One ``codex app-server`` process: a thread, its turns, approvals, steering, interrupts."""

    steerable = True

    def __init__(self, request: RunRequest) -> None:
        self._request = request
        self._events = _Events(request)
        self._ids = itertools.count(1)
        #: Our requests in flight: JSON-RPC id → method.
        self._calls: dict[int, str] = {}
        self._thread_id: str | None = None
        self._turn_id: str | None = None
        self._in_turn = False
        self._prompt: str | None = None
        self._queued_steers: list[str] = []
        self._interrupt_wanted = False
        self._pending: dict[str, _Pending] = {}
        #: Declines waiting for Codex's answer to their message's steer: steer's id → decline.
        self._held_declines: dict[int, _HeldDecline] = {}
        #: File-change items seen started, by id (their approval request names only the id).
        self._changes: dict[str, list[dict[str, Any]]] = {}
        self._turn_usage: dict[str, Any] | None = None
        self._last_finished: RunFinished | None = None

    # -- the LiveDriver protocol ------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        """The thread id (``thread/resume`` takes it back)."""
        return self._thread_id

    @property
    def in_turn(self) -> bool:
        """Whether a turn runs (from ``start``/``prompt`` until its ``turn/completed``)."""
        return self._in_turn

    def start(self, prompt: str) -> DriverOutput:
        """``initialize``; the thread and the turn follow its answer."""
        self._begin_turn(prompt)
        params = {
            "clientInfo": {"name": "coding-agent", "title": "Coding Agent", "version": __version__},
            "capabilities": {"optOutNotificationMethods": list(_OPTED_OUT)},
        }
        return DriverOutput(writes=[self._call("initialize", params)])

    def feed(self, line: str, *, truncated: bool) -> DriverOutput:
        """One line from the app-server: a response, a notification or a request of its own."""
        if truncated or not line.strip():
            return DriverOutput(events=self._events.feed(line, truncated=truncated))
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            return DriverOutput(events=self._events.feed(line))
        self._events.begin(line)
        method = _str(message.get("method"))
        if method is not None and "id" in message:
            out = self._server_request(message["id"], method, _dict(message.get("params")))
        elif method is not None:
            out = self._notification(method, _dict(message.get("params")))
        elif isinstance(message.get("id"), int):
            out = self._response(message["id"], message)
        else:
            out = DriverOutput()
        leftover = self._events.leftover(
            {"method": method} if method else {"id": message.get("id")}
        )
        return attrs.evolve(out, events=[*leftover, *out.events]) if leftover else out

    def note_stderr(self, text: str) -> None:
        """Kept for the error of a turn the process ended."""
        self._events.note_stderr(text)

    def prompt(self, text: str) -> DriverOutput:
        """``turn/start`` in the same thread."""
        if self._in_turn:
            raise DriverRefused("a codex turn is already running")
        if self._thread_id is None:
            raise DriverRefused("the codex thread did not start")
        self._begin_turn(text)
        return DriverOutput(writes=[self._turn_start()])

    def steer(self, text: str) -> DriverOutput:
        """``turn/steer`` (queued until the turn has an id)."""
        if not self._in_turn:
            raise DriverRefused("no codex turn is running")
        if self._turn_id is None:
            self._queued_steers.append(text)
            return DriverOutput()
        return DriverOutput(writes=[self._steer(text)])

    def decide(
        self,
        request_id: str,
        behavior: ApprovalBehavior,
        *,
        message: str | None = None,
        updated_input: dict[str, Any] | None = None,
    ) -> DriverOutput:
        """``accept`` or ``decline``; a deny's message goes first, as a steer of the turn, and
        the decline once Codex answered the steer (see the module docstring).

        ``updated_input`` is Claude's only: Codex runs what it asked for or nothing.
        """
        pending = self._pending.pop(request_id, None)
        if pending is None:
            raise DriverRefused(f"codex has no pending permission request {request_id!r}")
        decision = "accept" if behavior == "allow" else "decline"
        answer = _line({"id": pending.rpc_id, "result": {"decision": decision}})
        if behavior == "deny" and message and self._turn_id is not None:
            what = pending.ask.input.get("command") or pending.ask.input.get("file_path")
            steer_id, steer = self._steer_call(f"Permission denied for {what}: {message}")
            self._held_declines[steer_id] = _HeldDecline(pending.rpc_id, answer)
            return DriverOutput(writes=[steer])
        return DriverOutput(writes=[answer])

    def interrupt(self) -> DriverOutput:
        """``turn/interrupt``; the turn ends at its ``turn/completed`` (then the process goes)."""
        if not self._in_turn:
            raise DriverRefused("no codex turn is running")
        if self._turn_id is None or self._thread_id is None:
            self._interrupt_wanted = True
            return DriverOutput()
        params = {"threadId": self._thread_id, "turnId": self._turn_id}
        return DriverOutput(writes=[self._call("turn/interrupt", params)])

    def close(self) -> DriverOutput:
        """Close stdin: the app-server exits, ending what it started."""
        return DriverOutput(close_stdin=True)

    def finish(self, exit_code: int | None, signal: int | None, *, reason: Reason) -> RunFinished:
        """The process ended: the turn in flight ends with it (or the last turn's result)."""
        self._pending.clear()
        self._held_declines.clear()
        if not self._in_turn and self._last_finished is not None:
            return attrs.evolve(
                self._last_finished, exit_code=exit_code, signal=signal, session_open=False
            )
        self._in_turn = False
        finished = self._events.finish(exit_code, signal, reason=reason)
        return attrs.evolve(finished, usage=self._turn_usage, num_turns=None, session_open=False)

    # -- what Codex says -----------------------------------------------------------------------

    def _response(self, rpc_id: int, message: dict[str, Any]) -> DriverOutput:
        held = self._held_declines.pop(rpc_id, None)
        out = self._answered(rpc_id, message)
        if held is None:
            return out
        # Accepted or refused, the steer is settled: the approval is answered either way.
        return attrs.evolve(out, writes=[held.line, *out.writes])

    def _answered(self, rpc_id: int, message: dict[str, Any]) -> DriverOutput:
        method = self._calls.pop(rpc_id, None)
        error = message.get("error")
        result = _dict(message.get("result"))
        if method is None:
            return DriverOutput()
        if error is not None:
            return self._call_failed(method, _str(_dict(error).get("message")) or str(error))
        if method == "initialize":
            return DriverOutput(writes=[_line({"method": "initialized"}), self._thread_call()])
        if method in ("thread/start", "thread/resume"):
            return self._thread_ready(result)
        if method == "turn/start":
            return self._turn_known(_str(_dict(result.get("turn")).get("id")))
        return DriverOutput()

    def _call_failed(self, method: str, detail: str) -> DriverOutput:
        if method in ("turn/steer", "turn/interrupt"):
            text = f"codex refused {method}: {detail}"
            return DriverOutput(events=[self._events.make("error", text=text, is_error=True)])
        self._events.last_error = detail
        if method == "turn/start":
            return self._turn_over("error", f"codex refused the turn: {detail}", open_=True)
        what = "resume thread " + str(self._request.resume_session_id)
        doing = what if method == "thread/resume" else f"answer {method}"
        out = self._turn_over("error", f"codex could not {doing}: {detail}", open_=False)
        return attrs.evolve(out, close_stdin=True)

    def _thread_ready(self, result: dict[str, Any]) -> DriverOutput:
        thread = _dict(result.get("thread"))
        self._thread_id = _str(thread.get("id"))
        sandbox = _dict(result.get("sandbox")).get("type")
        data = {
            "model": result.get("model"),
            "cwd": result.get("cwd"),
            "sandbox": sandbox,
            "approvalPolicy": result.get("approvalPolicy"),
            "version": thread.get("cliVersion"),
        }
        events = self._events.started(self._thread_id, data)
        if self._events.resume_mismatch is not None:
            out = self._turn_over("error", self._events.resume_mismatch, open_=False)
            return attrs.evolve(out, events=[*events, *out.events], close_stdin=True)
        if result.get("approvalPolicy") != APPROVAL_POLICY:
            # Without it commands would run unasked: never go on.
            error = (
                f"expected codex approval policy {APPROVAL_POLICY!r}, "
                f"got {result.get('approvalPolicy')!r}"
            )
            out = self._turn_over("error", error, open_=False)
            return attrs.evolve(out, events=[*events, *out.events], end_process=True)
        return DriverOutput(events=events, writes=[self._turn_start()])

    def _turn_known(self, turn_id: str | None) -> DriverOutput:
        if turn_id is None or not self._in_turn or self._turn_id is not None:
            return DriverOutput()
        self._turn_id = turn_id
        writes = [self._steer(text) for text in self._queued_steers]
        self._queued_steers.clear()
        if self._interrupt_wanted:
            self._interrupt_wanted = False
            params = {"threadId": self._thread_id, "turnId": turn_id}
            writes.append(self._call("turn/interrupt", params))
        return DriverOutput(writes=writes)

    def _notification(self, method: str, params: dict[str, Any]) -> DriverOutput:
        if method == "turn/started":
            return self._turn_known(_str(_dict(params.get("turn")).get("id")))
        if method == "turn/completed":
            return self._turn_completed(_dict(params.get("turn")))
        if method in ("item/started", "item/completed"):
            item = _dict(params.get("item"))
            if item.get("type") == "fileChange" and isinstance(item.get("id"), str):
                changes = item.get("changes")
                self._changes[item["id"]] = changes if isinstance(changes, list) else []
            return DriverOutput(events=self._events.item(method, item))
        if method == "thread/tokenUsage/updated":
            last = _usage_of(_dict(_dict(params.get("tokenUsage")).get("last")))
            self._turn_usage = {
                key: (self._turn_usage or {}).get(key, 0) + value for key, value in last.items()
            }
            return DriverOutput()
        if method == "error":
            error = _dict(params.get("error"))
            text = _str(error.get("message")) or "codex reported an error"
            retrying = params.get("willRetry") is True
            if not retrying:
                self._events.last_error = text
            event = self._events.make(
                "error", text=text, is_error=True, data={"will_retry": retrying}
            )
            return DriverOutput(events=[event])
        if method == "serverRequest/resolved":
            # Codex withdrew it (the turn ended): a late answer would reach nobody.
            rpc_id = params.get("requestId")
            for request_id, pending in list(self._pending.items()):
                if pending.rpc_id == rpc_id:
                    del self._pending[request_id]
            for steer_id, held in list(self._held_declines.items()):
                if held.rpc_id == rpc_id:
                    del self._held_declines[steer_id]
        return DriverOutput()

    def _turn_completed(self, turn: dict[str, Any]) -> DriverOutput:
        if not self._in_turn or (self._turn_id is not None and turn.get("id") != self._turn_id):
            return DriverOutput()
        status = turn.get("status")
        if status == "completed":
            return self._turn_over("success", None, open_=True)
        if status == "interrupted":
            # A command of the turn may still run: only the process's end stops it.
            out = self._turn_over("interrupted", "the turn was interrupted", open_=False)
            return attrs.evolve(out, end_process=True)
        message = _str(_dict(turn.get("error")).get("message")) or self._events.last_error
        self._events.last_error = message
        return self._turn_over("error", f"codex turn failed: {message or status}", open_=True)

    def _server_request(self, rpc_id: Any, method: str, params: dict[str, Any]) -> DriverOutput:
        if method not in (COMMAND_APPROVAL, FILE_CHANGE_APPROVAL) or not isinstance(
            rpc_id, int | str
        ):
            # Questions to a person we cannot relay (user input, MCP elicitation, ...): answer
            # at once, or the turn would wait forever.
            refusal = {"code": _METHOD_NOT_FOUND, "message": f"{method} is not supported here"}
            event = self._events.make("other", data={"method": method, "refused": True})
            return DriverOutput(events=[event], writes=[_line({"id": rpc_id, "error": refusal})])
        item_id = _str(params.get("itemId"))
        tool_input: dict[str, Any]
        if method == COMMAND_APPROVAL and params.get("kind", "command") == "command":
            command = _str(params.get("command")) or ""
            tool_name, tool_input = "Bash", {"command": unwrapped_command(command)}
        elif method == COMMAND_APPROVAL:
            tool_name, tool_input = method, dict(params)
        else:
            # One approval covers every file of the patch: ``file_path`` is the first (what
            # Edit rules read), ``file_paths`` all of them (what a careful policy reads).
            changes = self._changes.get(item_id or "", [])
            paths = [
                c["path"] for c in changes if isinstance(c, dict) and isinstance(c.get("path"), str)
            ]
            tool_name, tool_input = "Edit", {"changes": changes, "file_paths": paths}
            if paths:
                tool_input["file_path"] = paths[0]
        request_id = str(rpc_id)
        ask = PermissionAsk(
            request_id=request_id,
            tool_name=tool_name,
            input=tool_input,
            description=_str(params.get("reason")),
            tool_use_id=item_id,
            agent_tool_name=method,
        )
        self._pending[request_id] = _Pending(rpc_id, ask)
        return DriverOutput(asks=[ask])

    # -- what we say ---------------------------------------------------------------------------

    def _call(self, method: str, params: dict[str, Any]) -> bytes:
        return self._numbered_call(method, params)[1]

    def _numbered_call(self, method: str, params: dict[str, Any]) -> tuple[int, bytes]:
        rpc_id = next(self._ids)
        self._calls[rpc_id] = method
        return rpc_id, _line({"id": rpc_id, "method": method, "params": params})

    def _thread_call(self) -> bytes:
        params: dict[str, Any] = {"cwd": self._request.cwd, "approvalPolicy": APPROVAL_POLICY}
        if self._request.model is not None:
            params["model"] = self._request.model
        if self._request.resume_session_id is not None:
            return self._call(
                "thread/resume", dict(params, threadId=self._request.resume_session_id)
            )
        return self._call("thread/start", params)

    def _turn_start(self) -> bytes:
        texts = [self._prompt or "", *self._queued_steers]
        self._queued_steers.clear()
        params = {
            "threadId": self._thread_id,
            "input": [{"type": "text", "text": text} for text in texts],
        }
        return self._call("turn/start", params)

    def _steer(self, text: str) -> bytes:
        return self._steer_call(text)[1]

    def _steer_call(self, text: str) -> tuple[int, bytes]:
        params = {
            "threadId": self._thread_id,
            "expectedTurnId": self._turn_id,
            "input": [{"type": "text", "text": text}],
        }
        return self._numbered_call("turn/steer", params)

    # -- turns ---------------------------------------------------------------------------------

    def _begin_turn(self, prompt: str) -> None:
        self._in_turn = True
        self._prompt = prompt
        self._turn_id = None
        self._turn_usage = None
        self._interrupt_wanted = False
        self._events.final_text = None
        self._events.output_truncated = False

    def _turn_over(self, outcome: Outcome, error: str | None, *, open_: bool) -> DriverOutput:
        self._in_turn = False
        self._turn_id = None
        self._queued_steers.clear()
        self._pending.clear()
        self._held_declines.clear()
        self._changes.clear()
        data = {"usage": self._turn_usage, "num_turns": 1}
        events = [self._events.make("usage", data=data)]
        if error is not None and outcome == "error":
            events.append(self._events.make("error", text=error, is_error=True))
        limit = codex_limit(error, time.time()) if error and outcome == "error" else None
        finished = RunFinished(
            outcome="limited" if limit is not None else outcome,
            exit_code=None,
            signal=None,
            session_id=self._thread_id,
            final_text=self._events.final_text,
            cost_usd=None,
            num_turns=1,
            usage=self._turn_usage,
            error=error,
            output_truncated=self._events.output_truncated,
            session_open=open_,
            limit=limit,
        )
        self._last_finished = finished
        return DriverOutput(events=events, turn_finished=finished)


def _line(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message) + b"\n"


@attrs.frozen
class CodexLiveAdapter:
    """``codex app-server`` on stdio, the sandbox from the permission mode."""

    def live_argv(self, executable: str, request: RunRequest, permission_mode: str) -> list[str]:
        """``codex app-server --config=sandbox_mode="MODE"`` (prompts go over stdin)."""
        if permission_mode not in SANDBOX_MODES:
            expected = ", ".join(sorted(SANDBOX_MODES))
            raise ValueError(f"expected a codex sandbox mode ({expected}), got {permission_mode!r}")
        return [executable, "app-server", f'--config=sandbox_mode="{permission_mode}"']

    def new_driver(self, request: RunRequest) -> CodexLiveDriver:
        """A driver for one process; ``request.resume_session_id`` resumes that thread."""
        for field in ("model", "resume_session_id"):
            value = getattr(request, field)
            if value is not None and (error := plain_name_error(value)) is not None:
                raise ValueError(f"{error} @ $.{field}")
        return CodexLiveDriver(request)


CODEX_LIVE: Final = CodexLiveAdapter()
