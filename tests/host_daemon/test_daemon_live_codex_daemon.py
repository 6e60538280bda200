"""Live Codex turns through a real daemon: the pinned ``codex app-server`` and a scripted model.

Each test's daemon marks its agents' environment; once it stopped, nothing of them may be left
in ``/proc`` (the ``daemon`` fixture checks).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator

import pytest
from _support.live_agents import LiveAgentDaemon, allow_all, codex_daemon
from _support.live_claude import finished, run_started, run_turn
from _support.polling import eventually
from _support.scripted_codex import Patch, ScriptedCodexModel, ShellCall, open_scripted_codex_model
from _support.scripted_model import Hold, Reply

from host_daemon import (
    AgentEvent,
    InputAccepted,
    PermissionDecision,
    PermissionRequest,
    PermissionResolved,
    RunEvent,
    RunStarted,
    RunStream,
    close_session,
    probe,
)

pytestmark = [pytest.mark.agent_cli, pytest.mark.slow]

_DENY_MESSAGE = "Not in this task: leave f.txt alone."
_STEER = "STEERING: also mention the README."
_TWO_FILES = """\
*** Begin Patch
*** Add File: src/a.py
+a = 1
*** Add File: b.py
+b = 2
*** End Patch
"""


@pytest.fixture
async def model() -> AsyncIterator[ScriptedCodexModel]:
    async with open_scripted_codex_model() as scripted:
        yield scripted
        assert scripted.unexpected == []


@pytest.fixture
async def daemon(
    model: ScriptedCodexModel, tmp_path: pathlib.Path, subreaper: None
) -> AsyncIterator[LiveAgentDaemon]:
    """A live Codex daemon; once it stopped, no process of its agents may be left."""
    async with codex_daemon(model, tmp_path) as served:
        yield served
    await eventually(lambda: not served.leftovers(), "no agent process left", timeout=10)


def _history(model: ScriptedCodexModel) -> str:
    """What the model was sent in its last call, as text."""
    return json.dumps(model.main_requests[-1]["input"])


def _running(daemon: LiveAgentDaemon, name: str) -> list[int]:
    return [pid for pid, command in daemon.leftovers() if command == name]


async def test_command_asked_then_allowed_runs_and_session_stays(
    daemon: LiveAgentDaemon, model: ScriptedCodexModel
) -> None:
    """A command is relayed as Bash; allowed, it runs in the run's directory (given relative to
    the root); the turn succeeds with the session open."""
    (daemon.root / "proj").mkdir()
    model.script(ShellCall("echo hi > f.txt"), Reply("Created f.txt."))
    events = await run_turn(daemon, daemon.request("Create f.txt.", cwd="proj"), allow_all)
    started = run_started(events)
    assert (started.live, started.reused, started.steerable) == (True, False, True)
    asked = [e for e in events if isinstance(e, PermissionRequest)]
    assert [(a.tool_name, a.input) for a in asked] == [("Bash", {"command": "echo hi > f.txt"})]
    resolved = [e for e in events if isinstance(e, PermissionResolved)]
    assert [(r.request_id, r.behavior, r.decided_by) for r in resolved] == [
        (asked[0].request_id, "allow", "client")
    ]
    end = finished(events)
    assert (end.outcome, end.session_open, end.final_text) == ("success", True, "Created f.txt.")
    assert (daemon.root / "proj" / "f.txt").read_text() == "hi\n"
    assert any(pid == started.pid for pid, _ in daemon.leftovers())


async def test_denied_command_does_not_run_and_the_message_reaches_the_model(
    daemon: LiveAgentDaemon, model: ScriptedCodexModel
) -> None:
    """A denied command does not run; the model reads the rejection and the deny's message in
    the same call (a message arriving later would cost Codex one more call)."""
    model.script(ShellCall("echo hi > f.txt"), Reply("I left f.txt alone."))

    async def deny(stream: RunStream, event: RunEvent) -> None:
        if isinstance(event, PermissionRequest):
            decision = PermissionDecision(
                request_id=event.request_id, behavior="deny", message=_DENY_MESSAGE
            )
            await stream.decide(decision)

    events = await run_turn(daemon, daemon.request("Create f.txt."), deny)
    assert finished(events).outcome == "success"
    assert not (daemon.root / "f.txt").exists()
    assert len(model.main_requests) == 2
    assert "rejected by user" in _history(model)
    assert _DENY_MESSAGE in _history(model)


async def test_second_turn_reuses_the_process_and_remembers(
    daemon: LiveAgentDaemon, model: ScriptedCodexModel
) -> None:
    """The next turn goes to the same app-server (same pid and thread); the model sees turn 1."""
    model.script(Reply("Hello."), Reply("You said hello first."))
    first = await run_turn(daemon, daemon.request("Say hello FIRST-TURN."))
    second = await run_turn(daemon, daemon.request("What did I ask first?"))
    assert run_started(second).reused is True
    assert run_started(second).pid == run_started(first).pid
    assert finished(second).session_id == finished(first).session_id is not None
    assert finished(second).final_text == "You said hello first."
    assert "FIRST-TURN" in _history(model)


async def test_interrupt_mid_command_ends_the_process_and_the_next_turn_resumes(
    daemon: LiveAgentDaemon, model: ScriptedCodexModel
) -> None:
    """An interrupt while an allowed command runs ends the turn ``interrupted`` and the whole
    session (Codex leaves the command running otherwise): nothing is left in /proc; the next
    turn resumes the thread in a new process and the model still sees the first turn."""
    model.script(ShellCall("sleep 3000"), Reply("Resumed."))

    async def interrupt(stream: RunStream, event: RunEvent) -> None:
        await allow_all(stream, event)
        if isinstance(event, PermissionResolved):
            await eventually(lambda: bool(_running(daemon, "sleep")), "the command running")
            await stream.interrupt()

    first = await run_turn(daemon, daemon.request("Wait a long time, LONG-FIRST."), interrupt)
    end = finished(first)
    assert (end.outcome, end.session_open) == ("interrupted", False)
    assert end.session_id is not None
    await eventually(lambda: not daemon.leftovers(), "nothing of the session left", timeout=10)
    following = await run_turn(daemon, daemon.request("Go on.", resume_session_id=end.session_id))
    assert run_started(following).reused is False
    assert run_started(following).pid != run_started(first).pid
    assert (finished(following).session_id, finished(following).final_text) == (
        end.session_id,
        "Resumed.",
    )
    assert "LONG-FIRST" in _history(model)


async def test_requests_of_a_new_process_get_new_ids(
    daemon: LiveAgentDaemon, model: ScriptedCodexModel
) -> None:
    """Codex counts its request ids from 0 in each process: the ids the client sees still
    differ after a resume in a new process."""
    model.script(ShellCall("echo one > f.txt"), Reply("one"))
    model.script(ShellCall("echo two > g.txt"), Reply("two"))
    first = await run_turn(daemon, daemon.request("Write f.txt."), allow_all)
    thread = finished(first).session_id
    closed = await close_session(daemon.host, daemon.port, daemon.token, "task-1")
    assert closed.closed
    second = await run_turn(
        daemon, daemon.request("Write g.txt.", resume_session_id=thread), allow_all
    )
    assert run_started(second).pid != run_started(first).pid
    ids = [e.request_id for e in first + second if isinstance(e, PermissionRequest)]
    assert len(ids) == len(set(ids)) == 2
    assert (daemon.root / "g.txt").read_text() == "two\n"


async def test_steer_reaches_the_model_in_the_same_turn(
    daemon: LiveAgentDaemon, model: ScriptedCodexModel
) -> None:
    """A steer while the model thinks is accepted and in its next call, in the same turn."""
    hold = Hold(Reply("Looking."))
    model.script(hold, Reply("The project has a README."))
    accepted: list[InputAccepted] = []

    async def steer(stream: RunStream, event: RunEvent) -> None:
        if isinstance(event, AgentEvent) and (event.data or {}).get("method") == "turn/started":
            await hold.reached.wait()
            await stream.steer(_STEER)
        elif isinstance(event, InputAccepted):
            accepted.append(event)
        elif accepted and isinstance(event, AgentEvent) and "id" in (event.data or {}):
            hold.release()  # Codex answered the steer: it has it

    events = await run_turn(daemon, daemon.request("Describe the project."), steer)
    assert accepted == [InputAccepted(steered=True)]
    end = finished(events)
    assert (end.outcome, end.final_text) == ("success", "The project has a README.")
    assert _STEER in _history(model)
    assert len([e for e in events if isinstance(e, RunStarted)]) == 1


async def test_policy_rules_decide_without_asking(
    model: ScriptedCodexModel, tmp_path: pathlib.Path, subreaper: None
) -> None:
    """A daemon allow rule runs a command at once, a task deny rule refuses another (the rule in
    the model's input); a patch with one file outside the Edit allow rule is still asked."""
    model.script(ShellCall("touch a.txt"), ShellCall("rm README.md"), Patch(_TWO_FILES))
    model.script(Reply("ruled"))
    async with codex_daemon(model, tmp_path, allow_rules=("Bash(touch:*)", "Edit(src/**)")) as d:
        request = d.request("Touch, remove, patch.", deny_rules=["Bash(rm:*)"])
        events = await run_turn(d, request, allow_all)
        asked = [e for e in events if isinstance(e, PermissionRequest)]
        assert [(a.tool_name, sorted(a.input["file_paths"])) for a in asked] == [
            ("Edit", sorted([str(d.root / "src/a.py"), str(d.root / "b.py")]))
        ]
        resolved = [e for e in events if isinstance(e, PermissionResolved)]
        assert [(r.behavior, r.decided_by, r.rule) for r in resolved] == [
            ("allow", "policy", "Bash(touch:*)"),
            ("deny", "policy", "Bash(rm:*)"),
            ("allow", "client", None),
        ]
        assert finished(events).outcome == "success"
        assert (d.root / "a.txt").exists()
        assert (d.root / "README.md").exists()
        assert (d.root / "b.py").read_text() == "b = 2\n"
        assert "denied by rule Bash(rm:*)" in _history(model)
    await eventually(lambda: not d.leftovers(), "no agent process left", timeout=10)


async def test_probe_says_codex_runs_live(daemon: LiveAgentDaemon) -> None:
    """The pinned Codex passes the live check; the note says approved commands leave the
    sandbox."""
    # A cold node on a loaded host may take seconds to answer: the probe waits for it.
    info = await probe(daemon.host, daemon.port, daemon.token, timeout=40.0, cli_wait_s=30.0)
    codex = next(agent for agent in info.agents if agent.name == "codex")
    assert codex.live is True
    assert "outside codex's sandbox" in (codex.live_note or "")
