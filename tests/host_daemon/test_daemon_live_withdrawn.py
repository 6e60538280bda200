"""A permission request the agent withdrew (Codex's ``serverRequest/resolved``) still gets its
``permission_resolved`` when the client then decides it: ``closed``, since nobody waits for it.

A small agent stands in for the CLI: it asks, then withdraws the request; its driver (as
Codex's) refuses a decision for a request it no longer has.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import pytest
import trio
from _support.daemon import running_daemon

from host_daemon import (
    AgentEvent,
    PermissionDecision,
    PermissionRequest,
    PermissionResolved,
    RunEvent,
    RunFinished,
    RunRequest,
    open_run,
)
from host_daemon._live_adapters import LIVE_ADAPTERS
from host_daemon._live_driver import DriverOutput, DriverRefused, PermissionAsk
from host_daemon._parsers import Reason
from host_daemon._records import ApprovalBehavior

_AGENT = """\
import json, sys
if sys.argv[1:] == ["--help"]:  # the probe's live check
    print("--permission-prompt-tool --input-format"); sys.exit(0)
if sys.argv[1:] == ["--version"]:
    print("1.0"); sys.exit(0)
for line in sys.stdin:
    message = json.loads(line)
    if message.get("prompt"):
        print(json.dumps({"ask": "7"}), flush=True)
        print(json.dumps({"withdraw": "7"}), flush=True)
    elif message.get("interrupt"):
        print(json.dumps({"interrupted": True}), flush=True)
"""


def _end(outcome: Any, *, session_open: bool) -> RunFinished:
    return RunFinished(
        outcome=outcome,
        exit_code=None,
        signal=None,
        session_id="fake-session",
        final_text=None,
        cost_usd=None,
        num_turns=None,
        usage=None,
        error=None,
        session_open=session_open,
    )


class _WithdrawingDriver:
    """Asks on ``ask``, forgets the request on ``withdraw``; an interrupt ends the turn."""

    steerable = False

    def __init__(self) -> None:
        self._in_turn = False
        self._pending: set[str] = set()

    @property
    def session_id(self) -> str | None:
        return "fake-session"

    @property
    def in_turn(self) -> bool:
        return self._in_turn

    def start(self, prompt: str) -> DriverOutput:
        return self.prompt(prompt)

    def prompt(self, text: str) -> DriverOutput:
        self._in_turn = True
        return DriverOutput(writes=[json.dumps({"prompt": text}).encode() + b"\n"])

    def feed(self, line: str, *, truncated: bool) -> DriverOutput:
        obj = json.loads(line)
        event = AgentEvent(kind="other", raw=line)
        if "ask" in obj:
            self._pending.add(obj["ask"])
            ask = PermissionAsk(request_id=obj["ask"], tool_name="Bash", input={"command": "ls"})
            return DriverOutput(events=[event], asks=[ask])
        if "withdraw" in obj:
            self._pending.discard(obj["withdraw"])
        if "interrupted" in obj:
            self._in_turn = False
            return DriverOutput(
                events=[event], turn_finished=_end("interrupted", session_open=True)
            )
        return DriverOutput(events=[event])

    def note_stderr(self, text: str) -> None:
        del text

    def steer(self, text: str) -> DriverOutput:
        raise DriverRefused("this agent cannot be steered")

    def decide(
        self,
        request_id: str,
        behavior: ApprovalBehavior,
        *,
        message: str | None = None,
        updated_input: dict[str, Any] | None = None,
    ) -> DriverOutput:
        if request_id not in self._pending:
            raise DriverRefused(f"no pending request {request_id!r}")
        self._pending.discard(request_id)
        return DriverOutput()

    def interrupt(self) -> DriverOutput:
        return DriverOutput(writes=[b'{"interrupt": true}\n'])

    def close(self) -> DriverOutput:
        return DriverOutput(close_stdin=True)

    def finish(self, exit_code: int | None, signal: int | None, *, reason: Reason) -> RunFinished:
        self._in_turn = False
        return _end("success" if reason == "exited" else reason, session_open=False)


class _WithdrawingAdapter:
    def live_argv(self, executable: str, request: RunRequest, permission_mode: str) -> list[str]:
        return [executable]

    def new_driver(self, request: RunRequest) -> _WithdrawingDriver:
        return _WithdrawingDriver()


@pytest.fixture
def agent(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stand-in CLI, registered (for this test) as claude's live adapter."""
    path = tmp_path / "withdrawing-agent"
    path.write_text(f"#!{sys.executable}\n{_AGENT}")
    path.chmod(0o755)
    monkeypatch.setitem(LIVE_ADAPTERS, "claude", _WithdrawingAdapter())  # type: ignore[index]
    return str(path)


async def test_decision_for_a_withdrawn_request_resolves_it_closed(
    agent: str, tmp_path: pathlib.Path, subreaper: None
) -> None:
    """The client decides a request the agent withdrew: it is resolved ``closed`` (once), not
    left without an answer."""
    request = RunRequest(agent="claude", prompt="go", cwd=str(tmp_path), live=True, session_key="k")
    events: list[RunEvent] = []
    async with running_daemon([tmp_path], {"CLAUDE_PATH": agent}) as daemon:
        with trio.fail_after(30):
            async with open_run(daemon.host, daemon.port, daemon.token, request) as stream:
                async for event in stream:
                    events.append(event)
                    if isinstance(event, AgentEvent) and "withdraw" in event.raw:
                        [asked] = [e for e in events if isinstance(e, PermissionRequest)]
                        decision = PermissionDecision(request_id=asked.request_id, behavior="allow")
                        await stream.decide(decision)
                        await stream.interrupt()
    [asked] = [e for e in events if isinstance(e, PermissionRequest)]
    resolved = [e for e in events if isinstance(e, PermissionResolved)]
    assert [(r.request_id, r.behavior, r.decided_by) for r in resolved] == [
        (asked.request_id, "deny", "closed")
    ]
    assert isinstance(events[-1], RunFinished)
    assert events[-1].outcome == "interrupted"
