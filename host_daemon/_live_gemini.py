"""Gemini CLI kept alive over the Agent Client Protocol (``gemini --acp``), as a live driver.

ACP is JSON-RPC 2.0, one message a line, both ways (shapes checked against Gemini CLI 0.61.0;
transcripts in ``tests/host_daemon/fixtures/live_gemini_*.jsonl``):

- client → agent: ``initialize {protocolVersion: 1}``, then ``session/new {cwd, mcpServers}`` or,
  to resume, ``session/load {sessionId, cwd, mcpServers}`` (the agent advertises
  ``agentCapabilities.loadSession``), then one ``session/prompt {sessionId, prompt}`` per turn,
  whose *response* ends the turn (``stopReason`` ``end_turn``, ``cancelled``,
  ``max_turn_requests``, ``max_tokens``, ``refusal``); ``session/cancel`` (a notification) stops
  the running turn and the session stays;
- agent → client: ``session/update`` notifications (message and thought chunks, ``tool_call``,
  ``tool_call_update``, …) and the request ``session/request_permission {toolCall, options}``,
  answered ``{outcome: {outcome: "selected", optionId}}`` or ``{outcome: {outcome: "cancelled"}}``.

A permission request carries no tool input, only what the agent shows a person: its ``kind``
(``execute``, ``edit``, ``read``, …), a ``title`` (the command itself for the shell tool), the
file ``locations`` and, for edits, a diff. It is normalized from those (``Bash`` + ``command``,
``Edit``/``Write``/``Read`` + ``file_path``); Gemini's own tool name is the prefix of its
``toolCallId`` (``run_shell_command__run_shell_command_17…``).

Gemini's own policy runs some shell commands unasked (``ls``, ``echo``, ``pwd``, ``git status``):
the argv adds ``--policy=gemini-live-policy.toml`` (shipped beside this module), a user-tier rule
that makes every shell command ask, so that the daemon's rules and the client see each one.

Known limits of the protocol (as 0.61.0 has it): a deny cannot carry a message (the model reads
``Tool "run_shell_command" was canceled by the user.``); a turn cannot be steered.
"""

from __future__ import annotations

import importlib.resources
import os
import time
from typing import Any, Final

import attrs
import orjson

from ._agents import plain_name_error
from ._limits import gemini_limit
from ._live_driver import DriverOutput, DriverRefused, LiveAdapter, PermissionAsk
from ._parsers import Reason, signal_name
from ._records import AgentEvent, AgentEventKind, ApprovalBehavior, Outcome, RunFinished, RunRequest

__all__ = ["GEMINI_LIVE", "GeminiLiveAdapter", "GeminiLiveDriver", "acp_flag"]

PROTOCOL_VERSION: Final = 1
_STDERR_KEPT: Final = 500
#: Gemini's tool names → the normalized names the approval rules use.
_SHELL_TOOLS: Final = frozenset({"run_shell_command"})
_WRITE_TOOLS: Final = frozenset({"write_file"})
_READ_TOOLS: Final = frozenset({"read_file"})
_STOP_ERRORS: Final = {
    "max_turn_requests": "gemini stopped: the turn limit was reached",
    "max_tokens": "gemini stopped: the context window is full",
    "refusal": "gemini refused to go on",
}
_INTERRUPTED: Final = {
    "cancelled": "the run was cancelled",
    "timed_out": "the run timed out",
    "killed": "the run was killed (daemon shutdown)",
}


def acp_flag(help_text: str) -> str | None:
    """The flag that starts ACP mode in this ``gemini --help``, if any (``--acp`` preferred)."""
    for flag in ("--acp", "--experimental-acp"):
        if flag in help_text.split():
            return flag
    return None


def _line(message: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", **message}) + b"\n"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def agent_tool_name(tool_call: dict[str, Any]) -> str | None:
    """Gemini's tool name: ``toolCallId`` is ``NAME__NAME_<time>_<n>`` (else None)."""
    call_id = _str(tool_call.get("toolCallId")) or ""
    start = 0
    while (index := call_id.find("__", start)) > 0:
        name = call_id[:index]
        if call_id[index + 2 :].startswith(name + "_"):
            return name
        start = index + 2
    return None


def _paths(tool_call: dict[str, Any]) -> list[str]:
    paths = [_str(_dict(loc).get("path")) for loc in _list(tool_call.get("locations"))]
    paths += [
        _str(_dict(item).get("path"))
        for item in _list(tool_call.get("content"))
        if _dict(item).get("type") == "diff"
    ]
    return list(dict.fromkeys(path for path in paths if path))


def _content_text(tool_call: dict[str, Any]) -> str:
    """The text a tool call shows: its text blocks, and ``path`` for each diff."""
    texts = []
    for item in _list(tool_call.get("content")):
        block = _dict(item)
        if block.get("type") == "content":
            texts.append(_str(_dict(block.get("content")).get("text")) or "")
        elif block.get("type") == "diff":
            texts.append(f"{block.get('path')}: edited")
    return "\n".join(text for text in texts if text)


def normalized_tool(tool_call: dict[str, Any]) -> tuple[str, dict[str, Any], str | None]:
    """``(tool_name, input, agent_tool_name)`` of an ACP tool call, for the approval rules."""
    agent_name = agent_tool_name(tool_call)
    kind = _str(tool_call.get("kind")) or "other"
    title = _str(tool_call.get("title")) or ""
    paths = _paths(tool_call)
    if agent_name in _SHELL_TOOLS or (agent_name is None and kind == "execute"):
        return "Bash", {"command": title}, agent_name
    if kind == "edit" and paths:
        if agent_name in _WRITE_TOOLS:
            diffs = [
                _dict(item)
                for item in _list(tool_call.get("content"))
                if _dict(item).get("type") == "diff"
            ]
            content = _str(diffs[0].get("newText")) if diffs else None
            tool_input: dict[str, Any] = {"file_path": paths[0]}
            if content is not None:
                tool_input["content"] = content
            return "Write", tool_input, agent_name
        return "Edit", {"file_path": paths[0]}, agent_name
    if kind == "read" and paths and (agent_name in _READ_TOOLS or agent_name is None):
        return "Read", {"file_path": paths[0]}, agent_name
    tool_input = {"title": title}
    if paths:
        tool_input["paths"] = paths
    return agent_name or kind, tool_input, agent_name


@attrs.define
class _Pending:
    """A ``session/request_permission`` not answered yet."""

    rpc_id: Any
    options: list[dict[str, Any]]


class GeminiLiveDriver:
    """One ``gemini --acp`` process: a sans-IO state machine (see ``_live_driver``)."""

    steerable = False

    def __init__(self, request: RunRequest) -> None:
        if not os.path.isabs(request.cwd):
            raise ValueError(f"expected the run's real directory (absolute), got {request.cwd!r}")
        self._cwd = request.cwd
        self._resume = request.resume_session_id
        self._session_id: str | None = None
        self._next_id = 0
        #: Our requests in flight: id → method.
        self._calls: dict[int, str] = {}
        self._prompt_id: int | None = None
        self._queued_prompt: str | None = None
        self._in_turn = False
        self._interrupting = False
        self._pending: dict[str, _Pending] = {}
        #: After ``session/load``, the agent replays the conversation as updates, partly after its
        #: answer: until then, and until its ``available_commands_update`` (sent when the replay
        #: has been queued), updates are the past, not the turn.
        self._replaying = False
        self._loaded = False
        self._commands_seen = False
        self._reply: list[str] = []
        self._usage: dict[str, Any] | None = None
        self._model: str | None = None
        self._stderr: str | None = None
        self._truncated = False
        self._raw = ""

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def in_turn(self) -> bool:
        return self._in_turn

    # -- what the session asks --------------------------------------------------------------------

    def start(self, prompt: str) -> DriverOutput:
        """``initialize``; the session and the prompt follow its answer."""
        self._begin_turn()
        self._queued_prompt = prompt
        capabilities = {"fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False}
        params = {"protocolVersion": PROTOCOL_VERSION, "clientCapabilities": capabilities}
        return DriverOutput(writes=[self._call("initialize", params)])

    def prompt(self, text: str) -> DriverOutput:
        if self._in_turn:
            raise DriverRefused("gemini is in a turn: a prompt goes in once it ended")
        if self._session_id is None:
            raise DriverRefused("gemini has no session (it did not start, or it ended)")
        self._begin_turn()
        return DriverOutput(writes=[self._send_prompt(text)])

    def steer(self, text: str) -> DriverOutput:
        raise DriverRefused(
            "gemini cannot take input during a turn (ACP has no steering): "
            "send it as the next turn, or interrupt this one first"
        )

    def decide(
        self,
        request_id: str,
        behavior: ApprovalBehavior,
        *,
        message: str | None = None,
        updated_input: dict[str, Any] | None = None,
    ) -> DriverOutput:
        """Pick the agent's "allow once" or "reject" option (``message`` cannot reach it)."""
        pending = self._pending.pop(request_id, None)
        if pending is None:
            raise DriverRefused(f"no permission request {request_id!r} is pending")
        kinds = ("allow_once", "allow_always") if behavior == "allow" else ("reject_once",)
        option = next(
            (
                option_id
                for kind in kinds
                for option in pending.options
                if _dict(option).get("kind") == kind
                and (option_id := _str(_dict(option).get("optionId"))) is not None
            ),
            None,
        )
        if behavior == "allow" and option is None:
            option = "proceed_once"
        outcome = (
            {"outcome": "selected", "optionId": option}
            if option is not None
            else {"outcome": "cancelled"}
        )
        return DriverOutput(writes=[_line({"id": pending.rpc_id, "result": {"outcome": outcome}})])

    def interrupt(self) -> DriverOutput:
        """``session/cancel``, and every pending permission request answered "cancelled"."""
        if not self._in_turn or self._interrupting:
            return DriverOutput()
        self._interrupting = True
        writes = [self._cancel_pending(request_id) for request_id in list(self._pending)]
        if self._prompt_id is None:
            # Still starting: no prompt will be sent, the turn ends when the session is there.
            self._queued_prompt = None
            if self._session_id is not None:
                return DriverOutput(writes=writes, turn_finished=self._end_turn(None))
            return DriverOutput(writes=writes)
        params = {"sessionId": self._session_id}
        writes.append(_line({"method": "session/cancel", "params": params}))
        return DriverOutput(writes=writes)

    def close(self) -> DriverOutput:
        return DriverOutput(close_stdin=True)

    def note_stderr(self, text: str) -> None:
        text = text.strip()
        if text:
            self._stderr = text[:_STDERR_KEPT]

    def finish(self, exit_code: int | None, signal: int | None, *, reason: Reason) -> RunFinished:
        """The process ended: the turn in flight (if any) ends with it, the session too."""
        in_turn, self._in_turn = self._in_turn, False
        self._pending.clear()
        outcome: Outcome
        if reason != "exited":
            outcome, error = reason, _INTERRUPTED[reason]
        elif signal is not None:
            outcome, error = "killed", f"gemini was killed by {signal_name(signal)}"
        elif in_turn or exit_code != 0:
            outcome = "error"
            error = f"gemini exited with code {exit_code}" + (" during a turn" if in_turn else "")
            if self._stderr:
                error += f": {self._stderr}"
        else:
            outcome, error = "success", None
        return self._finished(outcome, error, exit_code=exit_code, signal=signal, open_=False)

    # -- what the agent printed -------------------------------------------------------------------

    def feed(self, line: str, *, truncated: bool) -> DriverOutput:
        if truncated:
            self._truncated = True
            return DriverOutput(events=[AgentEvent(kind="other", raw=line, truncated=True)])
        if not line.strip():
            return DriverOutput()
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            return DriverOutput(events=[AgentEvent(kind="other", raw=line)])
        self._raw = line
        if "method" in message and "id" in message:
            output = self._on_request(message)
        elif "method" in message:
            output = self._on_notification(message)
        else:
            output = self._on_response(message)
        if self._raw:  # nothing carried the line yet: keep it in the transcript
            output.events.insert(0, self._event("other", data={"method": message.get("method")}))
        return output

    def _on_response(self, message: dict[str, Any]) -> DriverOutput:
        rpc_id = message.get("id")
        method = self._calls.pop(rpc_id, None) if isinstance(rpc_id, int) else None
        error = _dict(message.get("error")) if "error" in message else None
        result = _dict(message.get("result"))
        if method == "initialize":
            return self._on_initialized(result, error)
        if method in ("session/new", "session/load"):
            return self._on_session(method, result, error)
        if method == "session/prompt" and rpc_id == self._prompt_id:
            return self._on_prompt_done(result, error)
        return DriverOutput()

    def _on_initialized(self, result: dict[str, Any], error: dict[str, Any] | None) -> DriverOutput:
        if error is not None:
            return self._failed(f"gemini refused to initialize: {_error_text(error)}")
        events = []
        params: dict[str, Any] = {"cwd": self._cwd, "mcpServers": []}
        can_load = _dict(result.get("agentCapabilities")).get("loadSession") is True
        if self._resume is not None and can_load:
            load = {"sessionId": self._resume, **params}
            self._replaying = True
            return DriverOutput(writes=[self._call("session/load", load)])
        if self._resume is not None:
            text = f"gemini cannot load sessions: a new conversation replaces {self._resume}"
            events.append(self._event("error", text=text, is_error=True))
            self._resume = None
        return DriverOutput(events=events, writes=[self._call("session/new", params)])

    def _on_session(
        self, method: str, result: dict[str, Any], error: dict[str, Any] | None
    ) -> DriverOutput:
        if error is not None:
            if method == "session/load":
                what = f"gemini cannot resume session {self._resume}"
            else:
                what = "gemini cannot start a session"
            return self._failed(f"{what}: {_error_text(error)}")
        session_id = _str(result.get("sessionId")) if method == "session/new" else self._resume
        self._loaded = True
        if self._commands_seen:
            self._replaying = False
        self._session_id = session_id
        self._model = _str(_dict(result.get("models")).get("currentModelId"))
        mode = _str(_dict(result.get("modes")).get("currentModeId"))
        data = {"model": self._model, "mode": mode, "resumed": method == "session/load"}
        events = [self._event("init", session_id=session_id, data=data)]
        prompt, self._queued_prompt = self._queued_prompt, None
        if prompt is None:  # interrupted while starting
            return DriverOutput(events=events, turn_finished=self._end_turn(None))
        return DriverOutput(events=events, writes=[self._send_prompt(prompt)])

    def _on_prompt_done(self, result: dict[str, Any], error: dict[str, Any] | None) -> DriverOutput:
        self._prompt_id = None
        self._replaying = False
        quota = _dict(_dict(result.get("_meta")).get("quota"))
        tokens = _dict(quota.get("token_count"))
        events = []
        if tokens:
            self._usage = {**tokens, "model_usage": _list(quota.get("model_usage"))}
            events.append(self._event("usage", data=self._usage))
        if error is not None:
            text = f"gemini reported an error: {_error_text(error)}"
            events.append(self._event("error", text=text, is_error=True))
            return DriverOutput(events=events, turn_finished=self._end_turn(text))
        stop = _str(result.get("stopReason")) or "end_turn"
        stop_error = None if stop in ("end_turn", "cancelled") else _STOP_ERRORS.get(stop, stop)
        if stop_error is not None:
            events.append(self._event("error", text=stop_error, is_error=True))
        return DriverOutput(
            events=events, turn_finished=self._end_turn(stop_error, cancelled=stop == "cancelled")
        )

    def _on_notification(self, message: dict[str, Any]) -> DriverOutput:
        params = _dict(message.get("params"))
        if message.get("method") != "session/update":
            return DriverOutput()
        update = _dict(params.get("update"))
        kind = update.get("sessionUpdate")
        if self._replaying:
            if kind == "available_commands_update":
                self._commands_seen = True
                self._replaying = not self._loaded
            elif kind == "tool_call_update" or (
                kind == "tool_call" and update.get("status") not in ("completed", "failed")
            ):
                self._replaying = False  # the turn has begun: the past is never in progress
            if self._replaying or kind == "available_commands_update":
                data = {"session_update": kind, "replayed": self._replaying}
                return DriverOutput(events=[self._event("other", data=data)])
        if kind == "agent_message_chunk":
            text = _str(_dict(update.get("content")).get("text")) or ""
            self._reply.append(text)
            return DriverOutput(events=[self._event("text", text=text, data={"delta": True})])
        if kind == "tool_call":
            self._reply = []
            return DriverOutput(events=self._tool_events(update))
        if kind == "tool_call_update":
            return DriverOutput(events=self._tool_events(update))
        return DriverOutput(events=[self._event("other", data={"session_update": kind})])

    def _tool_events(self, update: dict[str, Any]) -> list[AgentEvent]:
        """A ``tool_call`` announces a tool (``tool_use``); a call that ended, its result."""
        status = update.get("status")
        call_id = _str(update.get("toolCallId"))
        events = []
        if update.get("sessionUpdate") == "tool_call":
            events.append(self._tool_use(update))
        if status in ("completed", "failed"):
            text = _content_text(update)
            failed = status == "failed"
            events.append(
                self._event("tool_result", tool_use_id=call_id, text=text, is_error=failed)
            )
        if not events:
            events.append(self._event("other", data={"session_update": "tool_call_update"}))
        return events

    def _tool_use(self, tool_call: dict[str, Any]) -> AgentEvent:
        name, tool_input, agent_name = normalized_tool(tool_call)
        return self._event(
            "tool_use",
            tool_name=agent_name or name,
            tool_use_id=_str(tool_call.get("toolCallId")),
            tool_input=tool_input,
            data={"kind": tool_call.get("kind"), "title": tool_call.get("title"), "tool": name},
        )

    def _on_request(self, message: dict[str, Any]) -> DriverOutput:
        rpc_id = message.get("id")
        if message.get("method") != "session/request_permission":
            # No fs/terminal capability was offered: nothing else should be asked.
            error = {"code": -32601, "message": f"method not found: {message.get('method')}"}
            event = self._event("other", data={"method": message.get("method")})
            return DriverOutput(events=[event], writes=[_line({"id": rpc_id, "error": error})])
        params = _dict(message.get("params"))
        tool_call = _dict(params.get("toolCall"))
        request_id = f"acp-{rpc_id}"
        self._replaying = False
        options = [_dict(option) for option in _list(params.get("options"))]
        self._pending[request_id] = _Pending(rpc_id=rpc_id, options=options)
        name, tool_input, agent_name = normalized_tool(tool_call)
        self._reply = []
        event = self._tool_use(tool_call)
        ask = PermissionAsk(
            request_id=request_id,
            tool_name=name,
            input=tool_input,
            description=_content_text(tool_call) or _str(tool_call.get("title")),
            tool_use_id=_str(tool_call.get("toolCallId")),
            agent_tool_name=agent_name,
        )
        if self._interrupting:  # asked while a cancel is on its way: no one will answer it
            return DriverOutput(events=[event], writes=[self._cancel_pending(request_id)])
        return DriverOutput(events=[event], asks=[ask])

    # -- helpers ----------------------------------------------------------------------------------

    def _call(self, method: str, params: dict[str, Any]) -> bytes:
        self._next_id += 1
        self._calls[self._next_id] = method
        return _line({"id": self._next_id, "method": method, "params": params})

    def _send_prompt(self, text: str) -> bytes:
        prompt = [{"type": "text", "text": text}]
        line = self._call("session/prompt", {"sessionId": self._session_id, "prompt": prompt})
        self._prompt_id = self._next_id
        return line

    def _cancel_pending(self, request_id: str) -> bytes:
        pending = self._pending.pop(request_id)
        return _line({"id": pending.rpc_id, "result": {"outcome": {"outcome": "cancelled"}}})

    def _begin_turn(self) -> None:
        self._in_turn = True
        self._interrupting = False
        self._reply = []
        self._usage = None

    def _end_turn(self, error: str | None, *, cancelled: bool = False) -> RunFinished:
        interrupted = self._interrupting or cancelled
        self._in_turn = False
        self._interrupting = False
        self._pending.clear()
        outcome: Outcome = "error" if error is not None else "success"
        if interrupted and error is None:
            outcome, error = "interrupted", "the turn was interrupted"
        return self._finished(outcome, error, exit_code=None, signal=None, open_=True)

    def _failed(self, error: str) -> DriverOutput:
        """The session could not start: the turn ends, and so does the process."""
        self._in_turn = False
        event = self._event("error", text=error, is_error=True)
        finished = self._finished("error", error, exit_code=None, signal=None, open_=False)
        return DriverOutput(events=[event], turn_finished=finished, close_stdin=True)

    def _finished(
        self,
        outcome: Outcome,
        error: str | None,
        *,
        exit_code: int | None,
        signal: int | None,
        open_: bool,
    ) -> RunFinished:
        limit = gemini_limit(error, time.time()) if error and outcome == "error" else None
        return RunFinished(
            outcome="limited" if limit is not None else outcome,
            exit_code=exit_code,
            signal=signal,
            session_id=self._session_id,
            final_text="".join(self._reply) or None,
            cost_usd=None,
            num_turns=None,
            usage=self._usage,
            error=error,
            output_truncated=self._truncated,
            session_open=open_,
            limit=limit,
        )

    def _event(self, kind: AgentEventKind, **fields: Any) -> AgentEvent:
        """An event of the line being fed: the first one carries the line in ``raw``."""
        raw, self._raw = self._raw, ""
        return AgentEvent(kind=kind, raw=raw, session_id=fields.pop("session_id", None), **fields)


def _error_text(error: dict[str, Any]) -> str:
    message = _str(error.get("message")) or "error"
    details = _str(_dict(error.get("data")).get("details"))
    return f"{message} ({details})" if details else message


def live_policy_path() -> str:
    """The Gemini policy file that makes every shell command ask (see the file)."""
    return str(importlib.resources.files("host_daemon").joinpath("gemini-live-policy.toml"))


@attrs.frozen
class GeminiLiveAdapter:
    """``gemini --acp`` and its driver (a ``LiveAdapter``)."""

    def live_argv(self, executable: str, request: RunRequest, permission_mode: str) -> list[str]:
        """``gemini --acp --approval-mode=MODE --skip-trust [--policy=P] [--model=M]``.

        Prompts go to stdin. Unless the mode is ``yolo`` (the host owner let it run anything),
        a policy file makes every shell command ask, so that each one reaches the daemon's rules.
        """
        argv = [executable, "--acp", f"--approval-mode={permission_mode}", "--skip-trust"]
        if permission_mode != "yolo":
            argv.append(f"--policy={live_policy_path()}")
        if request.model is not None:
            if (error := plain_name_error(request.model)) is not None:
                raise ValueError(f"{error} @ $.model")
            argv.append(f"--model={request.model}")
        return argv

    def new_driver(self, request: RunRequest) -> GeminiLiveDriver:
        """A driver for one process; ``request.cwd`` must be the run's real directory."""
        return GeminiLiveDriver(request)


GEMINI_LIVE: Final[LiveAdapter] = GeminiLiveAdapter()
