"""Claude Code kept alive on stdin: the stream-json control protocol as a ``LiveDriver``.

``claude -p --input-format=stream-json --output-format=stream-json --verbose
--permission-prompt-tool=stdio --replay-user-messages`` reads one JSON line per message on stdin
(verified with Claude Code 2.1.332, see tests/host_daemon/fixtures/README.md):

- a prompt is a ``user`` line; each ends with a ``result`` line, and the process waits for the
  next prompt in the same conversation (same ``session_id``);
- a tool that needs permission arrives as ``control_request {subtype: can_use_tool}``; the answer
  is a ``control_response`` with ``behavior: allow`` (and ``updatedInput``) or ``deny`` (and a
  ``message`` the model receives);
- ``control_request {subtype: interrupt}`` stops the turn (a running Bash tool included): its
  ``control_response``, then a ``result`` with subtype ``error_during_execution``;
- a ``user`` line written while a turn runs (steering) is read when Claude next looks: merged
  into the running turn (attached to the next tool result), or, when the turn had no tool call
  left, run as one more turn with its own ``result``. ``--replay-user-messages`` echoes each user
  line (``isReplay: true``) when Claude takes it, before the ``result`` that answers it: so the
  turn ends at the first ``result`` after every line written was echoed.

Events and the turn's outcome come from ``ClaudeParser``, one per turn.
"""

from __future__ import annotations

from typing import Any, Final

import attrs
import orjson

from ._agent_events import ClaudeParser
from ._live_driver import DriverOutput, DriverRefused, PermissionAsk
from ._parsers import Reason
from ._records import AgentEvent, ApprovalBehavior, RunFinished, RunRequest

__all__ = ["CLAUDE_LIVE", "ClaudeLiveAdapter", "ClaudeLiveDriver"]

_INTERRUPT_ID_PREFIX: Final = "coding-agent-interrupt-"


def _line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _user_line(text: str) -> bytes:
    return _line({"type": "user", "message": {"role": "user", "content": text}})


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class ClaudeLiveDriver:
    """One live ``claude`` process: turns, permission requests, steering, interrupts."""

    steerable = True

    def __init__(self, request: RunRequest) -> None:
        self._request = request
        self._parser = ClaudeParser(request)
        self._session_id: str | None = None
        self._in_turn = False
        #: User lines written to this process, and those Claude echoed back (took).
        self._written = 0
        self._taken = 0
        self._interrupting = False
        self._interrupts = 0
        #: Pending ``can_use_tool`` requests: their tool input (an allow without an edit
        #: sends it back as ``updatedInput``).
        self._pending: dict[str, dict[str, Any]] = {}

    @property
    def session_id(self) -> str | None:
        return self._session_id or self._parser.session_id

    @property
    def in_turn(self) -> bool:
        return self._in_turn

    # -- the client's side -------------------------------------------------------------------

    def start(self, prompt: str) -> DriverOutput:
        return self._begin_turn(prompt, self._parser)

    def prompt(self, text: str) -> DriverOutput:
        if self._in_turn:
            raise DriverRefused("a turn is running: steer it, or wait for its end")
        parser = ClaudeParser(None)
        parser.session_id = self.session_id
        return self._begin_turn(text, parser)

    def _begin_turn(self, text: str, parser: ClaudeParser) -> DriverOutput:
        self._parser = parser
        self._in_turn = True
        self._interrupting = False
        self._written += 1
        return DriverOutput(writes=[_user_line(text)])

    def steer(self, text: str) -> DriverOutput:
        if not self._in_turn:
            raise DriverRefused("no turn is running: send the text as the next turn's prompt")
        if self._interrupting:
            raise DriverRefused("the turn is being interrupted: send the text as the next turn")
        self._written += 1
        return DriverOutput(writes=[_user_line(text)])

    def decide(
        self,
        request_id: str,
        behavior: ApprovalBehavior,
        *,
        message: str | None = None,
        updated_input: dict[str, Any] | None = None,
    ) -> DriverOutput:
        original = self._pending.pop(request_id, None)
        if original is None:
            raise DriverRefused(f"no permission request {request_id!r} is pending")
        answer: dict[str, Any]
        if behavior == "allow":
            answer = {
                "behavior": "allow",
                "updatedInput": original if updated_input is None else updated_input,
            }
        else:
            answer = {"behavior": "deny", "message": message or "denied"}
        response = {"subtype": "success", "request_id": request_id, "response": answer}
        return DriverOutput(writes=[_line({"type": "control_response", "response": response})])

    def interrupt(self) -> DriverOutput:
        if not self._in_turn:
            raise DriverRefused("no turn is running")
        if self._interrupting:
            return DriverOutput()
        self._interrupting = True
        self._interrupts += 1
        request_id = f"{_INTERRUPT_ID_PREFIX}{self._interrupts}"
        request = {"subtype": "interrupt"}
        line = {"type": "control_request", "request_id": request_id, "request": request}
        return DriverOutput(writes=[_line(line)])

    def close(self) -> DriverOutput:
        return DriverOutput(close_stdin=True)

    # -- what Claude printed -----------------------------------------------------------------

    def note_stderr(self, text: str) -> None:
        self._parser.note_stderr(text)

    def feed(self, line: str, *, truncated: bool) -> DriverOutput:
        events = self._parser.feed(line, truncated=truncated)
        if truncated:
            return DriverOutput(events=events)
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return DriverOutput(events=events)
        if not isinstance(obj, dict):
            return DriverOutput(events=events)
        kind = obj.get("type")
        if kind == "control_request":
            return self._control_request(obj, events)
        if kind == "user" and obj.get("isReplay") is True:
            self._taken += 1
        elif kind == "result":
            self._session_id = self._parser.session_id or self._session_id
            return DriverOutput(events=events, turn_finished=self._result())
        elif kind == "system" and obj.get("subtype") == "init":
            self._session_id = self._parser.session_id or self._session_id
        return DriverOutput(events=events)

    def _control_request(self, obj: dict[str, Any], events: list[AgentEvent]) -> DriverOutput:
        request_id = _str(obj.get("request_id"))
        request = _dict(obj.get("request")) or {}
        if request_id is None:
            return DriverOutput(events=events)
        if request.get("subtype") != "can_use_tool":
            # Hooks and SDK MCP servers are not offered: say so instead of leaving it waiting.
            error = f"the coding-agent daemon does not handle {request.get('subtype')!r} requests"
            response = {"subtype": "error", "request_id": request_id, "error": error}
            return DriverOutput(
                events=events, writes=[_line({"type": "control_response", "response": response})]
            )
        tool_input = _dict(request.get("input")) or {}
        tool_name = _str(request.get("tool_name")) or "unknown"
        self._pending[request_id] = tool_input
        suggestions = request.get("permission_suggestions")
        ask = PermissionAsk(
            request_id=request_id,
            tool_name=tool_name,
            input=tool_input,
            description=_str(request.get("description")),
            suggestions=[s for s in suggestions if isinstance(s, dict)]
            if isinstance(suggestions, list)
            else [],
            tool_use_id=_str(request.get("tool_use_id")),
            agent_tool_name=tool_name,
        )
        return DriverOutput(events=events, asks=[ask])

    def _result(self) -> RunFinished | None:
        """The turn's end, unless a line written in it is still to be answered by a ``result``."""
        if not self._in_turn:
            return None
        if not self._interrupting and self._taken < self._written:
            return None  # a steering line Claude has not taken yet: it runs as one more turn
        self._taken = self._written  # after an interrupt, lines not taken are dropped
        self._in_turn = False
        self._pending.clear()
        finished = attrs.evolve(self._parser.finish(0, None, reason="exited"), exit_code=None)
        if self._interrupting:
            finished = attrs.evolve(
                finished, outcome="interrupted", error="the turn was interrupted"
            )
        return attrs.evolve(finished, session_open=True)

    def finish(self, exit_code: int | None, signal: int | None, *, reason: Reason) -> RunFinished:
        self._in_turn = False
        self._pending.clear()
        return self._parser.finish(exit_code, signal, reason=reason)


@attrs.frozen
class ClaudeLiveAdapter:
    """Claude Code's live argv and driver."""

    def live_argv(self, executable: str, request: RunRequest, permission_mode: str) -> list[str]:
        argv = [
            executable,
            "-p",
            "--input-format=stream-json",
            "--output-format=stream-json",
            "--verbose",
            "--permission-prompt-tool=stdio",
            "--replay-user-messages",
            f"--permission-mode={permission_mode}",
        ]
        if request.resume_session_id is not None:
            argv.append(f"--resume={request.resume_session_id}")
        if request.model is not None:
            argv.append(f"--model={request.model}")
        if request.max_turns is not None:
            argv.append(f"--max-turns={request.max_turns}")
        if request.max_budget_usd is not None:
            argv.append(f"--max-budget-usd={request.max_budget_usd:g}")
        return argv

    def new_driver(self, request: RunRequest) -> ClaudeLiveDriver:
        return ClaudeLiveDriver(request)


CLAUDE_LIVE: Final = ClaudeLiveAdapter()
