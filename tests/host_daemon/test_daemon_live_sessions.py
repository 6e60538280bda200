"""The live session machinery with a driver that ends the process on interrupt (as Codex's does).

A small agent stands in for a CLI whose interrupt leaves its tool running: the driver asks
``end_process``, and the daemon must end the whole group (the tool included, checked in /proc),
finish the turn ``interrupted`` with the session closed, and spawn again for the next turn.
"""

from __future__ import annotations

import json
import pathlib
import sys
import uuid
from typing import Any

import pytest
import trio
from _support.daemon import running_daemon
from _support.polling import eventually
from _support.procs import marked_processes

from host_daemon import RunFinished, RunRequest, RunStarted, open_run
from host_daemon._live_adapters import LIVE_ADAPTERS
from host_daemon._live_driver import DriverOutput, DriverRefused
from host_daemon._parsers import Reason
from host_daemon._records import AgentEvent, ApprovalBehavior

_MARKER = "CODING_AGENT_TEST_RUN"

_AGENT = """\
import json, subprocess, sys
if sys.argv[1:] == ["--help"]:
    print("--permission-prompt-tool --input-format"); sys.exit(0)
if sys.argv[1:] == ["--version"]:
    print("1.0"); sys.exit(0)
for line in sys.stdin:
    message = json.loads(line)
    if message.get("prompt") == "hang":
        subprocess.Popen(["sleep", "300"], start_new_session=True)
        print(json.dumps({"tool": "started"}), flush=True)
    elif message.get("prompt"):
        print(json.dumps({"done": message["prompt"]}), flush=True)
    elif message.get("interrupt"):
        print(json.dumps({"interrupted": True}), flush=True)
"""


class _EndingDriver:
    """Turns end on ``done``; an interrupt ends the process (the tool keeps running)."""

    steerable = False

    def __init__(self) -> None:
        self._in_turn = False

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
        if "done" in obj:
            self._in_turn = False
            end = RunFinished(
                outcome="success",
                exit_code=None,
                signal=None,
                session_id="fake-session",
                final_text=obj["done"],
                cost_usd=None,
                num_turns=None,
                usage=None,
                error=None,
                session_open=True,
            )
            return DriverOutput(events=[event], turn_finished=end)
        if "interrupted" in obj:
            return DriverOutput(events=[event], end_process=True)
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
        raise DriverRefused("nothing is pending")

    def interrupt(self) -> DriverOutput:
        return DriverOutput(writes=[b'{"interrupt": true}\n'])

    def close(self) -> DriverOutput:
        return DriverOutput(close_stdin=True)

    def finish(self, exit_code: int | None, signal: int | None, *, reason: Reason) -> RunFinished:
        self._in_turn = False
        outcome = "success" if reason == "exited" else reason
        return RunFinished(
            outcome=outcome,
            exit_code=exit_code,
            signal=signal,
            session_id="fake-session",
            final_text=None,
            cost_usd=None,
            num_turns=None,
            usage=None,
            error=None,
        )


class _EndingAdapter:
    def live_argv(self, executable: str, request: RunRequest, permission_mode: str) -> list[str]:
        return [executable]

    def new_driver(self, request: RunRequest) -> _EndingDriver:
        return _EndingDriver()


@pytest.fixture
def agent(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stand-in CLI, registered (for this test) as claude's live adapter."""
    path = tmp_path / "ending-agent"
    path.write_text(f"#!{sys.executable}\n{_AGENT}")
    path.chmod(0o755)
    monkeypatch.setitem(LIVE_ADAPTERS, "claude", _EndingAdapter())  # type: ignore[index]
    return str(path)


async def test_end_process_interrupt_ends_the_group_and_the_next_turn_respawns(
    agent: str, tmp_path: pathlib.Path, subreaper: None
) -> None:
    """An interrupt whose driver asks ``end_process``: turn ``interrupted``, session closed,
    the tool left running by the agent gone too; the next turn spawns a new process."""
    marker = uuid.uuid4().hex
    env = {"CLAUDE_PATH": agent, _MARKER: marker}
    request = RunRequest(
        agent="claude", prompt="hang", cwd=str(tmp_path), live=True, session_key="k"
    )
    async with running_daemon([tmp_path], env, kill_grace_s=1.0) as daemon:
        with trio.fail_after(30):
            async with open_run(daemon.host, daemon.port, daemon.token, request) as stream:
                async for event in stream:
                    if isinstance(event, AgentEvent) and "started" in event.raw:
                        await eventually(
                            lambda: any(c == "sleep" for _, c in marked_processes(_MARKER, marker)),
                            "the tool running",
                        )
                        await stream.interrupt()
            first = stream.finished
            assert first is not None
            assert (first.outcome, first.session_open) == ("interrupted", False)
            assert marked_processes(_MARKER, marker) == []
            follow = RunRequest(
                agent="claude", prompt="again", cwd=str(tmp_path), live=True, session_key="k"
            )
            async with open_run(daemon.host, daemon.port, daemon.token, follow) as stream:
                events = [event async for event in stream]
        started = events[0]
        assert isinstance(started, RunStarted)
        assert started.reused is False
        last = events[-1]
        assert isinstance(last, RunFinished)
        assert (last.final_text, last.session_open) == ("again", True)
    await eventually(lambda: not marked_processes(_MARKER, marker), "nothing left", timeout=10)
