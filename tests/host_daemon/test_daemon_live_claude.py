"""Live turns with the real Claude Code CLI: permission requests relayed, decided, timed out."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest
from _support.claude_cli import claude_executable
from _support.live_claude import (
    LiveDaemon,
    allow_all,
    finished,
    live_daemon,
    run_turn,
    text_of,
    tool_results,
)
from _support.polling import eventually
from _support.scripted_model import BashCall, Reply, ScriptedModel, open_scripted_model

from host_daemon import (
    PermissionDecision,
    PermissionRequest,
    PermissionResolved,
    RunEvent,
    RunStarted,
    RunStream,
)

pytestmark = pytest.mark.claude_cli

_WRITE = "python3 -c \"open('f.txt', 'w').write('written')\""
_WRITE2 = "python3 -c \"open('g.txt', 'w').write('second')\""


@pytest.fixture(scope="session")
def claude() -> str:
    return claude_executable()


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with open_scripted_model() as scripted:
        yield scripted
        assert scripted.unexpected == []


@pytest.fixture
async def daemon(
    claude: str, model: ScriptedModel, tmp_path: pathlib.Path, subreaper: None
) -> AsyncIterator[LiveDaemon]:
    """A live daemon; once it stopped, no process of its agents may be left."""
    async with live_daemon(claude, model, tmp_path) as served:
        yield served
    await eventually(lambda: not served.leftovers(), "no agent process left", timeout=10)


async def test_bash_asked_then_allowed_runs_and_session_stays(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """A Bash step is relayed as a permission request; allowed, it runs; the session stays open."""
    model.script(BashCall(_WRITE), Reply("done"))
    events = await run_turn(daemon, daemon.request("write f.txt"), allow_all)
    started = events[0]
    assert isinstance(started, RunStarted)
    assert (started.live, started.reused, started.steerable) == (True, False, True)
    asked = [e for e in events if isinstance(e, PermissionRequest)]
    assert [(a.tool_name, a.input["command"]) for a in asked] == [("Bash", _WRITE)]
    resolved = [e for e in events if isinstance(e, PermissionResolved)]
    assert [(r.behavior, r.decided_by, r.decider) for r in resolved] == [
        ("allow", "client", "test")
    ]
    end = finished(events)
    assert (end.outcome, end.session_open, end.final_text) == ("success", True, "done")
    assert (daemon.root / "f.txt").read_text() == "written"
    assert any(pid == started.pid for pid, _ in daemon.leftovers())


async def test_deny_message_reaches_the_model(daemon: LiveDaemon, model: ScriptedModel) -> None:
    """A deny's message comes back to the model as the tool's error result; nothing runs."""
    model.script(BashCall(_WRITE), Reply("understood"))

    async def deny(stream: RunStream, event: RunEvent) -> None:
        if isinstance(event, PermissionRequest):
            decision = PermissionDecision(
                request_id=event.request_id, behavior="deny", message="not on my watch"
            )
            await stream.decide(decision)

    events = await run_turn(daemon, daemon.request("write f.txt"), deny)
    assert finished(events).outcome == "success"
    results = tool_results(model)
    assert len(results) == 1
    assert results[0].get("is_error") is True
    assert "not on my watch" in text_of(results[0])
    assert not (daemon.root / "f.txt").exists()


async def test_two_requests_in_one_turn(daemon: LiveDaemon, model: ScriptedModel) -> None:
    """Two Bash steps in one turn are asked one after the other, each allowed, both run."""
    model.script(BashCall(_WRITE), BashCall(_WRITE2), Reply("both"))
    events = await run_turn(daemon, daemon.request("write two files"), allow_all)
    asked = [e.input["command"] for e in events if isinstance(e, PermissionRequest)]
    assert asked == [_WRITE, _WRITE2]
    assert finished(events).outcome == "success"
    assert (daemon.root / "f.txt").read_text() == "written"
    assert (daemon.root / "g.txt").read_text() == "second"


async def test_unanswered_request_is_denied_at_the_timeout(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """Nobody answers: the request is denied after the approval timeout, with a message."""
    model.script(BashCall(_WRITE), Reply("gave up"))
    events = await run_turn(daemon, daemon.request("write f.txt", approval_timeout_s=0.5))
    asked = [e for e in events if isinstance(e, PermissionRequest)]
    assert [a.timeout_s for a in asked] == [0.5]
    resolved = [e for e in events if isinstance(e, PermissionResolved)]
    assert [(r.behavior, r.decided_by) for r in resolved] == [("deny", "timeout")]
    assert "no decision within 0.5 s" in text_of(tool_results(model)[0])
    assert finished(events).outcome == "success"
    assert not (daemon.root / "f.txt").exists()


async def test_policy_rules_decide_without_asking(
    claude: str, model: ScriptedModel, tmp_path: pathlib.Path, subreaper: None
) -> None:
    """A daemon allow rule runs a matching command at once; a deny rule refuses another, with
    the rule in the model's message; the client is never asked."""
    model.script(BashCall(_WRITE), BashCall("make build"), Reply("ruled"))
    async with live_daemon(
        claude,
        model,
        tmp_path,
        allow_rules=("Bash(python3:*)",),
        deny_rules=("Bash(make:*)",),
    ) as daemon:
        events = await run_turn(daemon, daemon.request("write then remove"))
    assert not [e for e in events if isinstance(e, PermissionRequest)]
    resolved = [e for e in events if isinstance(e, PermissionResolved)]
    assert [(r.behavior, r.decided_by, r.rule) for r in resolved] == [
        ("allow", "policy", "Bash(python3:*)"),
        ("deny", "policy", "Bash(make:*)"),
    ]
    assert (daemon.root / "f.txt").read_text() == "written"
    assert "denied by rule Bash(make:*)" in text_of(tool_results(model)[1])
    assert finished(events).outcome == "success"
    await eventually(lambda: not daemon.leftovers(), "no agent process left", timeout=10)


async def test_remembered_rule_allows_the_next_request(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """An allow with ``remember_rule`` lets a later matching request through by that rule."""
    model.script(BashCall(_WRITE), BashCall(_WRITE2), Reply("remembered"))

    async def remember(stream: RunStream, event: RunEvent) -> None:
        if isinstance(event, PermissionRequest):
            decision = PermissionDecision(
                request_id=event.request_id, behavior="allow", remember_rule="Bash(python3:*)"
            )
            await stream.decide(decision)

    events = await run_turn(daemon, daemon.request("write two"), remember)
    assert len([e for e in events if isinstance(e, PermissionRequest)]) == 1
    resolved = [e for e in events if isinstance(e, PermissionResolved)]
    assert [(r.decided_by, r.rule) for r in resolved] == [
        ("client", "Bash(python3:*)"),
        ("policy", "Bash(python3:*)"),
    ]
    assert (daemon.root / "g.txt").read_text() == "second"
