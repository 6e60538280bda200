"""Each agent CLI's events: Claude Code's, Codex's and Gemini CLI's NDJSON as ``AgentEvent``s.

One ``EventParser`` subclass per CLI: ``_on_event`` maps the CLI's event types, ``_decide`` reads
its terminal event (the outcome rules common to all are in ``_parsers``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from ._limits import claude_limit, codex_limit, gemini_limit
from ._parsers import EventParser
from ._records import AgentEvent, Outcome, RunRequest

__all__ = ["ClaudeParser", "CodexParser", "GeminiParser"]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text_of(content: Any) -> str:
    """Tool result content: a string, or a list of blocks whose text parts are joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            block["text"]
            for block in content
            if isinstance(block, dict) and isinstance(block.get("text"), str)
        )
    return ""


# --- claude -------------------------------------------------------------------------------------

_CLAUDE_SUBTYPE_ERRORS: Final[Mapping[str, str]] = {
    "error_max_turns": "reached the maximum number of turns",
    "error_max_budget_usd": "reached the maximum budget",
    "error_during_execution": "failed during execution",
}


class ClaudeParser(EventParser):
    """Claude Code's ``--output-format stream-json --verbose`` events."""

    agent = "claude"

    def __init__(self, request: RunRequest | None = None) -> None:
        super().__init__(request)
        self.result: dict[str, Any] | None = None
        self.rate_limit: dict[str, Any] | None = None

    def _on_event(self, obj: dict[str, Any]) -> list[AgentEvent]:
        kind = obj.get("type")
        if kind == "system" and obj.get("subtype") == "init":
            data = {key: obj.get(key) for key in ("model", "cwd", "permissionMode", "tools")}
            data["version"] = obj.get("claude_code_version")
            return self._started(_str(obj.get("session_id")), data)
        if kind == "assistant":
            return self._assistant(obj)
        if kind == "user":
            return self._tool_results(obj)
        if kind == "rate_limit_event":
            info = _dict(obj.get("rate_limit_info")) or {}
            self.rate_limit = info
            data = dict(info, status=info.get("status"), resets_at=info.get("resetsAt"))
            return [self._event("rate_limit", data=data)]
        if kind == "result":
            return self._result(obj)
        return [self._event("other", data={"type": kind, "subtype": obj.get("subtype")})]

    def _assistant(self, obj: dict[str, Any]) -> list[AgentEvent]:
        message = _dict(obj.get("message")) or {}
        content = message.get("content")
        events = []
        # Only a list holds blocks (iterating a long string would visit every character).
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                events.append(self._event("text", text=block["text"]))
            elif block.get("type") == "tool_use":
                events.append(
                    self._event(
                        "tool_use",
                        tool_name=_str(block.get("name")),
                        tool_use_id=_str(block.get("id")),
                        tool_input=_dict(block.get("input")),
                    )
                )
        if isinstance(obj.get("error"), str):
            self.last_error = obj["error"]
        return events

    def _tool_results(self, obj: dict[str, Any]) -> list[AgentEvent]:
        message = _dict(obj.get("message")) or {}
        content = message.get("content")
        events = []
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                events.append(
                    self._event(
                        "tool_result",
                        tool_use_id=_str(block.get("tool_use_id")),
                        text=_text_of(block.get("content")),
                        is_error=block.get("is_error") is True,
                    )
                )
        return events

    def _result(self, obj: dict[str, Any]) -> list[AgentEvent]:
        self.result = obj
        self.limit = claude_limit(obj, self.rate_limit)
        self.session_id = _str(obj.get("session_id")) or self.session_id
        self.final_text = _str(obj.get("result"))
        self.cost_usd = _number(obj.get("total_cost_usd"))
        self.num_turns = _int(obj.get("num_turns"))
        self.usage = _dict(obj.get("usage"))
        data = {
            "usage": self.usage,
            "cost_usd": self.cost_usd,
            "num_turns": self.num_turns,
            "duration_ms": obj.get("duration_ms"),
            "subtype": obj.get("subtype"),
            "is_error": obj.get("is_error"),
            "permission_denials": obj.get("permission_denials"),
        }
        events = [self._event("usage", session_id=self.session_id, data=data)]
        if obj.get("is_error") is True or obj.get("subtype") != "success":
            events.append(self._event("error", text=self._result_error(obj), is_error=True))
        return events

    def _result_error(self, obj: dict[str, Any]) -> str:
        subtype = _str(obj.get("subtype")) or "unknown"
        errors = [error for error in obj.get("errors") or [] if isinstance(error, str)]
        detail = "; ".join(errors) or _str(obj.get("result")) or ""
        message = _CLAUDE_SUBTYPE_ERRORS.get(subtype)
        if message is None:
            status = obj.get("api_error_status")
            message = f"API error {status}" if status is not None else f"error result ({subtype})"
        return f"claude {message}: {detail}" if detail else f"claude {message}"

    def _decide(self, exit_code: int | None) -> tuple[Outcome, str | None]:
        if self.result is None:
            return "error", self._exit_without_terminal(exit_code, "result event")
        if self.result.get("is_error") is True or self.result.get("subtype") != "success":
            return "error", self._result_error(self.result)
        if exit_code != 0:
            return "error", f"claude reported success but exited with code {exit_code}"
        return "success", None


# --- codex --------------------------------------------------------------------------------------


class CodexParser(EventParser):
    """``codex exec --json`` events (thread/turn/item)."""

    agent = "codex"

    def __init__(self, request: RunRequest | None = None) -> None:
        super().__init__(request)
        self.terminal: dict[str, Any] | None = None

    def _on_event(self, obj: dict[str, Any]) -> list[AgentEvent]:
        kind = obj.get("type")
        if kind == "thread.started":
            return self._started(_str(obj.get("thread_id")), {})
        if kind == "turn.completed":
            self.terminal = obj
            self.num_turns = (self.num_turns or 0) + 1
            usage = _dict(obj.get("usage"))
            if usage is not None:
                self.usage = _add_usage(self.usage, usage)
            return [self._event("usage", data={"usage": usage, "num_turns": self.num_turns})]
        if kind == "turn.failed":
            self.terminal = obj
            error = _dict(obj.get("error")) or {}
            self.last_error = _str(error.get("message")) or "the turn failed"
            self.limit = self.limit or codex_limit(self.last_error, self.clock())
            return [self._event("error", text=self.last_error, is_error=True)]
        if kind == "error":
            self.last_error = _str(obj.get("message")) or "error"
            self.limit = self.limit or codex_limit(self.last_error, self.clock())
            return [self._event("error", text=self.last_error, is_error=True)]
        if kind in ("item.started", "item.updated", "item.completed"):
            item = _dict(obj.get("item"))
            if item is not None:
                return self._item(kind, item)
        return [self._event("other", data={"type": kind})]

    def _item(self, kind: str, item: dict[str, Any]) -> list[AgentEvent]:  # noqa: PLR0911 -- one return per item type reads as a table
        item_type = item.get("type")
        item_id = _str(item.get("id"))
        completed = kind == "item.completed"
        if item_type == "agent_message" and completed:
            self.final_text = _str(item.get("text"))
            return [self._event("text", text=self.final_text)]
        if item_type == "command_execution":
            if kind == "item.started":
                command = {"command": item.get("command")}
                return [
                    self._event(
                        "tool_use", tool_name="shell", tool_use_id=item_id, tool_input=command
                    )
                ]
            if completed:
                failed = item.get("status") == "failed" or _int(item.get("exit_code")) not in (0,)
                return [
                    self._event(
                        "tool_result",
                        tool_use_id=item_id,
                        text=_str(item.get("aggregated_output")) or "",
                        is_error=failed,
                        data={"exit_code": item.get("exit_code"), "status": item.get("status")},
                    )
                ]
        if item_type == "file_change" and completed:
            changes = [c for c in item.get("changes") or [] if isinstance(c, dict)]
            summary = "\n".join(f"{c.get('kind')} {c.get('path')}" for c in changes)
            return [
                self._event(
                    "tool_use",
                    tool_name="file_change",
                    tool_use_id=item_id,
                    tool_input={"changes": changes},
                ),
                self._event(
                    "tool_result",
                    tool_use_id=item_id,
                    text=summary,
                    is_error=item.get("status") == "failed",
                ),
            ]
        if item_type == "mcp_tool_call":
            name = f"{item.get('server')}.{item.get('tool')}"
            if kind == "item.started":
                arguments = _dict(item.get("arguments"))
                return [
                    self._event(
                        "tool_use", tool_name=name, tool_use_id=item_id, tool_input=arguments
                    )
                ]
            if completed:
                error = _dict(item.get("error"))
                text = _str(error.get("message")) if error else json.dumps(item.get("result"))
                return [
                    self._event(
                        "tool_result",
                        tool_use_id=item_id,
                        text=text,
                        is_error=error is not None or item.get("status") == "failed",
                    )
                ]
        if item_type == "error":
            self.last_error = _str(item.get("message")) or "error"
            return [self._event("error", text=self.last_error, is_error=True)]
        return [self._event("other", data={"type": kind, "item_type": item_type})]

    def _decide(self, exit_code: int | None) -> tuple[Outcome, str | None]:
        if self.terminal is None:
            return "error", self._exit_without_terminal(exit_code, "turn ended")
        if self.terminal.get("type") == "turn.failed":
            return "error", f"codex turn failed: {self.last_error}"
        if exit_code != 0:
            return "error", f"codex completed its turn but exited with code {exit_code}"
        return "success", None


def _add_usage(total: dict[str, Any] | None, usage: dict[str, Any]) -> dict[str, Any]:
    merged = dict(total or {})
    for key, value in usage.items():
        if _int(value) is not None and _int(merged.get(key, 0)) is not None:
            merged[key] = merged.get(key, 0) + value
        else:
            merged[key] = value
    return merged


# --- gemini -------------------------------------------------------------------------------------

_GEMINI_EXIT_CODES: Final[Mapping[int, str]] = {
    1: "a general or API error",
    41: "an authentication error",
    42: "an input error",
    44: "a sandbox error",
    52: "a configuration error",
    53: "the turn limit",
    54: "a tool error",
    55: "an untrusted workspace (the folder is not trusted)",
    130: "cancellation",
}


class GeminiParser(EventParser):
    """Gemini CLI's ``-o stream-json`` events."""

    agent = "gemini"

    def __init__(self, request: RunRequest | None = None) -> None:
        super().__init__(request)
        self.result: dict[str, Any] | None = None
        self._reply: list[str] = []

    def _on_event(self, obj: dict[str, Any]) -> list[AgentEvent]:  # noqa: PLR0911 -- one return per event type reads as a table
        kind = obj.get("type")
        if kind == "init":
            return self._started(_str(obj.get("session_id")), {"model": obj.get("model")})
        if kind == "message":
            text = _str(obj.get("content")) or ""
            if obj.get("role") != "assistant":
                return [self._event("other", data={"type": kind, "role": obj.get("role")})]
            if obj.get("delta") is not True:
                self._reply = []
            self._reply.append(text)
            self.final_text = "".join(self._reply)
            return [self._event("text", text=text, data={"delta": obj.get("delta") is True})]
        if kind == "tool_use":
            self._reply = []
            return [
                self._event(
                    "tool_use",
                    tool_name=_str(obj.get("tool_name")),
                    tool_use_id=_str(obj.get("tool_id")),
                    tool_input=_dict(obj.get("parameters")),
                )
            ]
        if kind == "tool_result":
            failure = _dict(obj.get("error"))
            output = _str(failure.get("message")) if failure else _str(obj.get("output"))
            return [
                self._event(
                    "tool_result",
                    tool_use_id=_str(obj.get("tool_id")),
                    text=output or "",
                    is_error=obj.get("status") != "success",
                )
            ]
        if kind == "error":
            self.last_error = _str(obj.get("message")) or "error"
            data = {"severity": obj.get("severity")}
            return [self._event("error", text=self.last_error, is_error=True, data=data)]
        if kind == "result":
            self.result = obj
            stats = _dict(obj.get("stats"))
            self.usage = stats
            events = [self._event("usage", data={"stats": stats, "status": obj.get("status")})]
            if obj.get("status") != "success":
                error = _dict(obj.get("error")) or {}
                self.last_error = _str(error.get("message")) or self.last_error
                if self.last_error is not None:
                    self.limit = gemini_limit(self.last_error, self.clock())
                events.append(self._event("error", text=self.last_error, is_error=True))
            return events
        return [self._event("other", data={"type": kind})]

    def _decide(self, exit_code: int | None) -> tuple[Outcome, str | None]:
        if self.result is not None and self.result.get("status") != "success":
            return "error", f"gemini reported an error: {self.last_error or 'no message'}"
        if exit_code != 0:
            meaning = _GEMINI_EXIT_CODES.get(exit_code or 0, "an unknown error")
            message = f"gemini exited with code {exit_code} ({meaning})"
            detail = self._failure_detail()
            return "error", f"{message}: {detail}" if detail else message
        if self.result is None:
            return "error", self._exit_without_terminal(exit_code, "result event")
        return "success", None
