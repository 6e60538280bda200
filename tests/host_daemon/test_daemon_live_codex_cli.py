"""The real ``codex app-server`` under ``CodexLiveDriver``, against a scripted model on loopback.

No daemon: ``live_harness_codex`` spawns the pinned CLI in its own process group and feeds the
driver; ``live_codex_scenarios`` holds each session (also what records the replayed fixtures).
Each session's environment carries a unique marker variable, so "nothing is left" is a scan of
``/proc/*/environ``.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from _support.live_codex_scenarios import DENY_MESSAGE, STEER_TEXT, Outcome, run_scenario

from host_daemon._live_driver import DriverRefused

pytestmark = [pytest.mark.agent_cli, pytest.mark.slow]


def _model_input(body: dict[str, Any]) -> str:
    return json.dumps(body.get("input", []))


async def test_live_codex_command_asked_and_allowed_runs(tmp_path: pathlib.Path) -> None:
    """An allowed command asks as Bash with its script, then really runs; the turn succeeds."""
    outcome = await run_scenario("allow", tmp_path)
    live = outcome.sessions[0]
    [ask] = live.asks
    assert (ask.tool_name, ask.input) == ("Bash", {"command": "echo hi > f.txt"})
    assert ask.agent_tool_name == "item/commandExecution/requestApproval"
    assert (outcome.project / "f.txt").read_text() == "hi\n"
    [finished] = live.finished
    assert (finished.outcome, finished.session_open) == ("success", True)
    assert finished.final_text == "Created f.txt."
    assert finished.session_id == live.driver.session_id is not None
    assert finished.usage is not None
    assert finished.usage["input_tokens"] > 0
    assert await live.wait_exited() == 0
    assert not outcome.leftovers


async def test_live_codex_denied_command_does_not_run_and_message_reaches_model(
    tmp_path: pathlib.Path,
) -> None:
    """A denied command does not run; the model reads the rejection and the deny's message in
    the same call (a message arriving later would cost Codex one more call)."""
    outcome = await run_scenario("deny", tmp_path)
    assert not (outcome.project / "f.txt").exists()
    assert len(outcome.model.main_requests) == 2
    answering = _model_input(outcome.model.main_requests[1])
    assert "rejected by user" in answering
    assert DENY_MESSAGE in answering
    [finished] = outcome.sessions[0].finished
    assert (finished.outcome, finished.final_text) == ("success", "I left f.txt alone.")


async def test_live_codex_file_change_asked_as_edit_and_allowed(tmp_path: pathlib.Path) -> None:
    """An apply_patch asks as Edit with the file's path and the change; allowed, it is written."""
    outcome = await run_scenario("file_change", tmp_path)
    [ask] = outcome.sessions[0].asks
    assert ask.tool_name == "Edit"
    assert ask.input["file_path"] == str(outcome.project / "hello.py")
    assert [change["kind"] for change in ask.input["changes"]] == [{"type": "add"}]
    assert (outcome.project / "hello.py").read_text() == 'print("hello")\n'


async def test_live_codex_steer_reaches_model_in_the_same_turn(tmp_path: pathlib.Path) -> None:
    """A steer while the model thinks is in the model's next call; one turn, one RunFinished."""
    outcome = await run_scenario("steer", tmp_path)
    live = outcome.sessions[0]
    assert len(outcome.model.main_requests) == 2
    assert STEER_TEXT in _model_input(outcome.model.main_requests[1])
    [finished] = live.finished
    assert (finished.outcome, finished.final_text) == ("success", "The project has a README.")


async def test_live_codex_interrupt_ends_turn_and_process_leaving_nothing(
    tmp_path: pathlib.Path,
) -> None:
    """An interrupt mid-command: the turn ends interrupted, the driver ends the process, and no
    process of the session (the sandboxed sleep included) is left."""
    outcome: Outcome = await run_scenario("interrupt", tmp_path)
    live = outcome.sessions[0]
    [finished] = live.finished
    assert (finished.outcome, finished.session_open) == ("interrupted", False)
    assert live.ended_process
    assert not outcome.leftovers


async def test_live_codex_interrupt_while_asking_withdraws_the_request(
    tmp_path: pathlib.Path,
) -> None:
    """An interrupt while a request waits ends the turn; the request can no longer be decided
    and the command never ran."""
    outcome = await run_scenario("interrupt_asking", tmp_path)
    live = outcome.sessions[0]
    [ask] = live.asks
    [finished] = live.finished
    assert finished.outcome == "interrupted"
    with pytest.raises(DriverRefused):
        live.driver.decide(ask.request_id, "allow")
    assert not (outcome.project / "f.txt").exists()
    assert not outcome.leftovers


async def test_live_codex_resumed_thread_remembers_the_first_turn(tmp_path: pathlib.Path) -> None:
    """A new process resumes the thread: same id, and the model's call carries the first turn."""
    outcome = await run_scenario("resume", tmp_path)
    first, second = outcome.sessions
    assert second.driver.session_id == first.driver.session_id is not None
    [init] = [event for event in second.events if event.kind == "init"]
    assert init.session_id == first.driver.session_id
    assert "Create f.txt." in _model_input(outcome.model.main_requests[-1])
    [finished] = second.finished
    assert (finished.outcome, finished.final_text) == ("success", "f.txt says hi.")


async def test_live_codex_follow_up_turn_in_the_same_process(tmp_path: pathlib.Path) -> None:
    """A second prompt is a new turn in the same thread and process; the model sees the first."""
    outcome = await run_scenario("follow_up", tmp_path)
    [live] = outcome.sessions
    assert [f.outcome for f in live.finished] == ["success", "success"]
    assert live.finished[1].final_text == "You said hello first."
    assert "Say hello." in _model_input(outcome.model.main_requests[-1])
    assert [event.kind for event in live.events].count("init") == 1


async def test_live_codex_model_error_fails_the_turn_keeps_the_session(
    tmp_path: pathlib.Path,
) -> None:
    """An HTTP 400 from the model fails the turn with the API's message; the session stays."""
    outcome = await run_scenario("api_error", tmp_path)
    [finished] = outcome.sessions[0].finished
    assert (finished.outcome, finished.session_open) == ("error", True)
    assert finished.error is not None
    assert "scripted bad request" in finished.error


async def test_live_codex_resume_of_unknown_thread_fails_and_closes(
    tmp_path: pathlib.Path,
) -> None:
    """Resuming a thread Codex does not have fails the turn with its message; the process
    exits (stdin closed) instead of waiting."""
    outcome = await run_scenario("resume_unknown", tmp_path)
    live = outcome.sessions[0]
    [finished] = live.finished
    assert (finished.outcome, finished.session_open) == ("error", False)
    assert finished.error is not None
    assert "no rollout found" in finished.error
    assert await live.wait_exited() == 0


async def test_live_codex_every_command_asks(tmp_path: pathlib.Path) -> None:
    """Under approvalPolicy untrusted even ``ls`` and ``cat`` ask: nothing runs unasked."""
    outcome = await run_scenario("every_command_asks", tmp_path)
    live = outcome.sessions[0]
    assert [ask.input["command"] for ask in live.asks] == ["ls", "cat README.md"]
    [finished] = live.finished
    assert finished.outcome == "success"


async def test_live_codex_approved_command_runs_outside_the_sandbox(
    tmp_path: pathlib.Path,
) -> None:
    """The permission mode reaches Codex (read-only sandbox), yet an approved command runs
    outside it: the write happens. An approval is a grant of full access (as with Claude)."""
    outcome = await run_scenario("read_only", tmp_path)
    live = outcome.sessions[0]
    [init] = [event for event in live.events if event.kind == "init"]
    assert init.data is not None
    assert init.data["sandbox"] == "readOnly"
    assert len(live.asks) == 1
    assert (outcome.project / "f.txt").read_text() == "hi\n"
