"""Live Gemini turns through a real daemon: the pinned ``gemini --acp`` and a scripted model.

Each test's daemon marks its agents' environment; once it stopped, nothing of them may be left
in ``/proc`` (the ``daemon`` fixture checks). No test resumes a Gemini session by id: Gemini
0.61.0 loses a conversation loaded in the minute it started (docs/daemon.md).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator

import pytest
from _support.live_agents import LiveAgentDaemon, allow_all, gemini_daemon
from _support.live_claude import finished, run_started, run_turn
from _support.polling import eventually
from _support.scripted_gemini import ScriptedGeminiModel, ShellCommand, open_scripted_gemini_model
from _support.scripted_model import Reply

from host_daemon import (
    InputAccepted,
    PermissionDecision,
    PermissionRequest,
    PermissionResolved,
    RunEvent,
    RunStream,
    probe,
)

pytestmark = [pytest.mark.agent_cli, pytest.mark.slow]


@pytest.fixture
async def model() -> AsyncIterator[ScriptedGeminiModel]:
    async with open_scripted_gemini_model() as scripted:
        yield scripted
        assert scripted.unexpected == []


@pytest.fixture
async def daemon(
    model: ScriptedGeminiModel, tmp_path: pathlib.Path, subreaper: None
) -> AsyncIterator[LiveAgentDaemon]:
    """A live Gemini daemon; once it stopped, no process of its agents may be left."""
    async with gemini_daemon(model, tmp_path) as served:
        yield served
    await eventually(lambda: not served.leftovers(), "no agent process left", timeout=10)


def _history(model: ScriptedGeminiModel) -> str:
    """The conversation the model was sent in its last call, as text."""
    return json.dumps(model.main_requests[-1]["contents"])


def _running(daemon: LiveAgentDaemon, name: str) -> list[int]:
    return [pid for pid, command in daemon.leftovers() if command == name]


async def test_command_asked_then_allowed_runs_and_session_stays(
    daemon: LiveAgentDaemon, model: ScriptedGeminiModel
) -> None:
    """A shell command is relayed as Bash; allowed, it runs in the run's directory (given
    relative to the root); the turn succeeds with the session open."""
    (daemon.root / "proj").mkdir()
    model.script(ShellCommand("echo live > f.txt"), Reply("written"))
    events = await run_turn(daemon, daemon.request("Write f.txt.", cwd="proj"), allow_all)
    started = run_started(events)
    assert (started.live, started.reused, started.steerable) == (True, False, False)
    asked = [e for e in events if isinstance(e, PermissionRequest)]
    assert [(a.tool_name, a.input) for a in asked] == [("Bash", {"command": "echo live > f.txt"})]
    resolved = [e for e in events if isinstance(e, PermissionResolved)]
    assert [(r.request_id, r.behavior, r.decided_by) for r in resolved] == [
        (asked[0].request_id, "allow", "client")
    ]
    end = finished(events)
    assert (end.outcome, end.session_open, end.final_text) == ("success", True, "written")
    assert (daemon.root / "proj" / "f.txt").read_text() == "live\n"
    assert any(pid == started.pid for pid, _ in daemon.leftovers())


async def test_denied_command_does_not_run(
    daemon: LiveAgentDaemon, model: ScriptedGeminiModel
) -> None:
    """A denied command does not run; the model is told it was cancelled (Gemini's protocol
    has no room for the deny's message)."""
    model.script(ShellCommand("echo live > f.txt"), Reply("left alone"))

    async def deny(stream: RunStream, event: RunEvent) -> None:
        if isinstance(event, PermissionRequest):
            decision = PermissionDecision(
                request_id=event.request_id, behavior="deny", message="not this one"
            )
            await stream.decide(decision)

    events = await run_turn(daemon, daemon.request("Write f.txt."), deny)
    resolved = [e for e in events if isinstance(e, PermissionResolved)]
    assert [(r.behavior, r.decided_by) for r in resolved] == [("deny", "client")]
    assert (finished(events).outcome, finished(events).final_text) == ("success", "left alone")
    assert not (daemon.root / "f.txt").exists()
    assert "canceled by the user" in _history(model)


async def test_second_turn_reuses_the_process_and_remembers(
    daemon: LiveAgentDaemon, model: ScriptedGeminiModel
) -> None:
    """The next turn goes to the same process and session; the model sees the first turn."""
    model.script(Reply("Hello."), Reply("You said hello first."))
    first = await run_turn(daemon, daemon.request("Say hello FIRST-TURN."))
    second = await run_turn(daemon, daemon.request("What did I ask first?"))
    assert run_started(second).reused is True
    assert run_started(second).pid == run_started(first).pid
    assert finished(second).session_id == finished(first).session_id is not None
    assert finished(second).final_text == "You said hello first."
    assert "FIRST-TURN" in _history(model)


async def test_interrupt_mid_command_leaves_no_command_and_the_talk_goes_on(
    daemon: LiveAgentDaemon, model: ScriptedGeminiModel
) -> None:
    """An interrupt while an allowed command runs ends the turn ``interrupted``; the command is
    gone from /proc, the session stays, and its next turn remembers the first."""
    model.script(ShellCommand("sleep 3000"), Reply("after the interrupt"))

    async def interrupt(stream: RunStream, event: RunEvent) -> None:
        await allow_all(stream, event)
        if isinstance(event, PermissionResolved):
            await eventually(lambda: bool(_running(daemon, "sleep")), "the command running")
            await stream.interrupt()

    first = await run_turn(daemon, daemon.request("Wait a long time, LONG-FIRST."), interrupt)
    end = finished(first)
    assert (end.outcome, end.session_open) == ("interrupted", True)
    await eventually(lambda: not _running(daemon, "sleep"), "the command gone", timeout=10)
    following = await run_turn(daemon, daemon.request("Go on."))
    assert (run_started(following).reused, run_started(following).pid) == (
        True,
        run_started(first).pid,
    )
    assert finished(following).final_text == "after the interrupt"
    assert "LONG-FIRST" in _history(model)


async def test_interrupt_while_asking_resolves_the_request_closed(
    daemon: LiveAgentDaemon, model: ScriptedGeminiModel
) -> None:
    """An interrupt with a request pending resolves it ``closed`` at once (Gemini's driver
    answered it): a decision sent right after is ignored, and the command never runs."""
    model.script(ShellCommand("echo late > f.txt"))

    async def interrupt_then_allow(stream: RunStream, event: RunEvent) -> None:
        if isinstance(event, PermissionRequest):
            await stream.interrupt()
            await stream.decide(PermissionDecision(request_id=event.request_id, behavior="allow"))

    events = await run_turn(daemon, daemon.request("Write f.txt."), interrupt_then_allow)
    [asked] = [e for e in events if isinstance(e, PermissionRequest)]
    resolved = [e for e in events if isinstance(e, PermissionResolved)]
    # Closed by the interrupt itself (the decision never reached the driver, nor was refused).
    assert [(r.request_id, r.behavior, r.decided_by, r.message) for r in resolved] == [
        (asked.request_id, "deny", "closed", "the turn ended")
    ]
    assert (finished(events).outcome, finished(events).session_open) == ("interrupted", True)
    assert not (daemon.root / "f.txt").exists()


async def test_steer_is_refused_and_the_turn_goes_on(
    daemon: LiveAgentDaemon, model: ScriptedGeminiModel
) -> None:
    """Gemini cannot take input mid-turn: the daemon answers ``steered=false`` with why."""
    model.script(ShellCommand("echo live > f.txt"), Reply("written"))
    asked: list[PermissionRequest] = []
    accepted: list[InputAccepted] = []

    async def steer_then_allow(stream: RunStream, event: RunEvent) -> None:
        if isinstance(event, PermissionRequest):
            asked.append(event)
            await stream.steer("also say hello")
        elif isinstance(event, InputAccepted):
            accepted.append(event)
            await allow_all(stream, asked[0])

    events = await run_turn(daemon, daemon.request("Write f.txt."), steer_then_allow)
    [refusal] = accepted
    assert refusal.steered is False
    assert "gemini cannot take input during a turn" in (refusal.message or "")
    assert finished(events).outcome == "success"
    assert "also say hello" not in _history(model)


async def test_policy_rules_decide_without_asking(
    model: ScriptedGeminiModel, tmp_path: pathlib.Path, subreaper: None
) -> None:
    """A daemon allow rule runs a command at once, a task deny rule refuses another; the
    client is never asked."""
    model.script(ShellCommand("touch a.txt"), ShellCommand("rm README.md"), Reply("ruled"))
    async with gemini_daemon(model, tmp_path, allow_rules=("Bash(touch:*)",)) as d:
        request = d.request("Touch, then remove.", deny_rules=["Bash(rm:*)"])
        events = await run_turn(d, request)
        assert not [e for e in events if isinstance(e, PermissionRequest)]
        resolved = [e for e in events if isinstance(e, PermissionResolved)]
        assert [(r.behavior, r.decided_by, r.rule) for r in resolved] == [
            ("allow", "policy", "Bash(touch:*)"),
            ("deny", "policy", "Bash(rm:*)"),
        ]
        assert finished(events).outcome == "success"
        assert (d.root / "a.txt").exists()
        assert (d.root / "README.md").exists()
    await eventually(lambda: not d.leftovers(), "no agent process left", timeout=10)


async def test_probe_says_gemini_runs_live(daemon: LiveAgentDaemon) -> None:
    """The pinned Gemini passes the live check; the note says it cannot be steered."""
    # A cold node on a loaded host may take seconds to answer: the probe waits for it.
    info = await probe(daemon.host, daemon.port, daemon.token, timeout=40.0, cli_wait_s=30.0)
    gemini = next(agent for agent in info.agents if agent.name == "gemini")
    assert gemini.live is True
    assert "not steerable" in (gemini.live_note or "")
