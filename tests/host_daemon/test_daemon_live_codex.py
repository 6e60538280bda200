"""``CodexLiveDriver`` without the CLI: the recorded real sessions replayed, and edge cases.

Each ``fixtures/live_codex_*.jsonl`` is a real session (``_support.live_codex_scenarios``): the
driver calls made, what ``codex app-server`` printed and what the driver wrote, in order.
Replaying it drives a fresh driver the same way and checks it writes exactly what it wrote then.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from _support.live_codex_scenarios import SCENARIOS

from host_daemon._live_codex import (
    CODEX_LIVE,
    CodexLiveDriver,
    exec_item,
    unwrapped_command,
)
from host_daemon._live_driver import DriverOutput, DriverRefused, PermissionAsk
from host_daemon._records import AgentEvent, RunFinished, RunRequest

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
PROJECT = "/work/project"
LIVE_FIXTURES = sorted(path.name for path in FIXTURES.glob("live_codex_*.jsonl"))


@attrs.define
class Replayed:
    """What one recorded session made a fresh driver produce."""

    driver: CodexLiveDriver
    outputs: list[DriverOutput] = attrs.field(factory=list)

    @property
    def events(self) -> list[AgentEvent]:
        return [event for out in self.outputs for event in out.events]

    @property
    def asks(self) -> list[PermissionAsk]:
        return [ask for out in self.outputs for ask in out.asks]

    @property
    def finished(self) -> list[RunFinished]:
        return [out.turn_finished for out in self.outputs if out.turn_finished is not None]

    @property
    def writes(self) -> list[dict[str, Any]]:
        return [json.loads(line) for out in self.outputs for line in out.writes]


def _request(prompt: str = "go", resume: str | None = None) -> RunRequest:
    return RunRequest(agent="codex", prompt=prompt, cwd=PROJECT, resume_session_id=resume)


def _sessions(name: str) -> list[list[dict[str, Any]]]:
    sessions: list[list[dict[str, Any]]] = [[]]
    for line in (FIXTURES / name).read_text().splitlines():
        step = json.loads(line)
        if "session" in step:
            sessions.append([])
        else:
            sessions[-1].append(step)
    return sessions


def replay(name: str) -> list[Replayed]:
    """Drive a fresh driver per recorded session; every recorded write must come out, in order,
    and before the next line Codex printed (what the driver wrote then, it writes then)."""
    replayed: list[Replayed] = []
    for steps in _sessions(name):
        resume = None
        if replayed:
            resume = replayed[0].driver.session_id
        if name.endswith("resume_unknown.jsonl"):
            resume = "00000000-0000-4000-8000-000000000000"
        session = Replayed(CODEX_LIVE.new_driver(_request(resume=resume)))
        unwritten: list[str] = []
        for step in steps:
            if "codex" in step:
                assert not unwritten, f"{name}: the driver wrote {unwritten} too early"
            out = _step(session.driver, step)
            if out is None:
                assert unwritten, f"{name}: the driver did not write {step['wrote']}"
                assert unwritten.pop(0) == step["wrote"]
                continue
            session.outputs.append(out)
            unwritten.extend(line.decode() for line in out.writes)
        assert not unwritten, f"{name}: the driver wrote more than the session did"
        replayed.append(session)
    return replayed


_CALLS: dict[str, Callable[[CodexLiveDriver, dict[str, Any]], DriverOutput]] = {
    "start": lambda driver, step: driver.start(step["prompt"]),
    "prompt": lambda driver, step: driver.prompt(step["text"]),
    "steer": lambda driver, step: driver.steer(step["text"]),
    "decide": lambda driver, step: driver.decide(
        step["request_id"], step["behavior"], message=step["message"]
    ),
    "interrupt": lambda driver, _step: driver.interrupt(),
    "close": lambda driver, _step: driver.close(),
}


def _step(driver: CodexLiveDriver, step: dict[str, Any]) -> DriverOutput | None:
    """Feed a printed line, or make the recorded call; ``None`` for a recorded write."""
    if "codex" in step:
        return driver.feed(step["codex"], truncated=False)
    if "wrote" in step:
        return None
    return _CALLS[step["do"]](driver, step)


@pytest.mark.parametrize("name", LIVE_FIXTURES)
def test_replay_writes_what_the_real_session_wrote(name: str) -> None:
    """Fed a real session's lines and calls, the driver writes exactly what it wrote then."""
    assert replay(name)


def test_fixtures_cover_every_scenario() -> None:
    """Every scenario is recorded and replayed here (a new one cannot go untested)."""
    assert sorted(f"live_codex_{name}.jsonl" for name in SCENARIOS) == LIVE_FIXTURES


def test_handshake_then_thread_start_with_untrusted_policy() -> None:
    """start writes initialize; its answer brings initialized and thread/start (untrusted)."""
    [session] = replay("live_codex_allow.jsonl")
    methods = [write.get("method") for write in session.writes]
    assert methods[:4] == ["initialize", "initialized", "thread/start", "turn/start"]
    assert session.writes[2]["params"] == {"cwd": PROJECT, "approvalPolicy": "untrusted"}
    assert "jsonrpc" not in session.writes[0]


def test_command_ask_is_bash_with_the_script() -> None:
    """A command approval is a Bash ask with the script (not its bash -lc wrapper)."""
    [session] = replay("live_codex_allow.jsonl")
    [ask] = session.asks
    assert ask == PermissionAsk(
        request_id="0",
        tool_name="Bash",
        input={"command": "echo hi > f.txt"},
        tool_use_id="call_scripted_0003",
        agent_tool_name="item/commandExecution/requestApproval",
    )
    assert {"id": 0, "result": {"decision": "accept"}} in session.writes


def test_allowed_turn_events_and_result() -> None:
    """init with the thread id, the command's tool_use/tool_result, the text, usage, success."""
    [session] = replay("live_codex_allow.jsonl")
    thread = session.driver.session_id
    kinds = [event.kind for event in session.events if event.kind != "other"]
    assert kinds == ["init", "tool_use", "tool_result", "text", "usage"]
    init = session.events[[e.kind for e in session.events].index("init")]
    assert init.session_id == thread
    assert init.data is not None
    assert (init.data["sandbox"], init.data["approvalPolicy"]) == ("workspaceWrite", "untrusted")
    [finished] = session.finished
    assert finished.outcome == "success"
    assert finished.session_open
    assert finished.session_id == thread
    assert finished.final_text == "Created f.txt."
    assert finished.usage is not None
    assert finished.usage["output_tokens"] == 16
    assert not session.driver.in_turn


def test_every_line_is_in_the_transcript_once() -> None:
    """Each line Codex printed is the raw of exactly one event (the transcript is complete)."""
    lines = [step["codex"] for step in _sessions("live_codex_deny.jsonl")[0] if "codex" in step]
    [session] = replay("live_codex_deny.jsonl")
    assert [event.raw for event in session.events if event.raw] == lines


def test_deny_message_is_steered_and_declined_once_the_steer_is_answered() -> None:
    """A deny with a message writes turn/steer with it; the decline (no room for a message)
    goes once Codex answered the steer, so the model's next call carries both."""
    [session] = replay("live_codex_deny.jsonl")
    steer, decline = session.writes[-2:]
    assert steer["method"] == "turn/steer"
    assert "Not in this task: leave f.txt alone." in steer["params"]["input"][0]["text"]
    assert decline == {"id": 0, "result": {"decision": "decline"}}
    [decided] = [out for out in session.outputs if _writes(out) == [steer]]
    [answered] = [out for out in session.outputs if _writes(out) == [decline]]
    assert session.outputs.index(decided) < session.outputs.index(answered)


def test_file_change_ask_is_edit_with_the_first_path_and_changes() -> None:
    """A file change approval is an Edit ask with the path its item/started named."""
    [session] = replay("live_codex_file_change.jsonl")
    [ask] = session.asks
    assert ask.tool_name == "Edit"
    assert ask.input["file_path"] == f"{PROJECT}/hello.py"
    assert ask.input["file_paths"] == [f"{PROJECT}/hello.py"]
    assert ask.input["changes"][0]["diff"] == 'print("hello")\n'
    assert ask.agent_tool_name == "item/fileChange/requestApproval"


def test_steer_names_the_running_turn() -> None:
    """steer writes turn/steer with the turn's id; the turn ends once."""
    [session] = replay("live_codex_steer.jsonl")
    [steer] = [write for write in session.writes if write.get("method") == "turn/steer"]
    turn_start_answer = next(
        json.loads(step["codex"])
        for step in _sessions("live_codex_steer.jsonl")[0]
        if "codex" in step and json.loads(step["codex"]).get("id") == 3
    )
    assert steer["params"]["expectedTurnId"] == turn_start_answer["result"]["turn"]["id"]
    assert [finished.outcome for finished in session.finished] == ["success"]


def test_interrupt_ends_turn_and_asks_to_end_the_process() -> None:
    """turn/interrupt, then at turn/completed (interrupted): outcome interrupted, end_process."""
    [session] = replay("live_codex_interrupt.jsonl")
    assert any(write.get("method") == "turn/interrupt" for write in session.writes)
    [last] = [out for out in session.outputs if out.turn_finished is not None]
    assert last.end_process
    assert last.turn_finished is not None
    assert (last.turn_finished.outcome, last.turn_finished.session_open) == ("interrupted", False)


def test_resume_sends_thread_resume_and_keeps_the_id() -> None:
    """A resumed session sends thread/resume with the thread id and reports the same id."""
    first, second = replay("live_codex_resume.jsonl")
    [resume] = [write for write in second.writes if write.get("method") == "thread/resume"]
    assert resume["params"]["threadId"] == first.driver.session_id
    assert second.driver.session_id == first.driver.session_id
    assert not [event for event in second.events if event.kind == "error"]


def test_resume_of_unknown_thread_fails_the_turn_and_closes_stdin() -> None:
    """Codex's error answer to thread/resume fails the turn with its message; stdin closes."""
    [session] = replay("live_codex_resume_unknown.jsonl")
    [last] = [out for out in session.outputs if out.turn_finished is not None]
    assert last.close_stdin
    assert last.turn_finished is not None
    assert last.turn_finished.outcome == "error"
    assert last.turn_finished.error is not None
    assert "no rollout found" in last.turn_finished.error


def test_failed_turn_is_an_error_with_the_api_message() -> None:
    """turn/completed failed: outcome error naming the model's message; the session stays."""
    [session] = replay("live_codex_api_error.jsonl")
    [finished] = session.finished
    assert finished.outcome == "error"
    assert finished.session_open
    assert finished.error is not None
    assert "scripted bad request" in finished.error


def test_follow_up_is_turn_start_in_the_same_thread() -> None:
    """A second prompt writes only turn/start (no handshake) in the same thread."""
    [session] = replay("live_codex_follow_up.jsonl")
    starts = [write for write in session.writes if write.get("method") == "turn/start"]
    assert [start["params"]["threadId"] for start in starts] == [session.driver.session_id] * 2
    assert [write.get("method") for write in session.writes].count("initialize") == 1
    assert [finished.final_text for finished in session.finished] == [
        "Hello.",
        "You said hello first.",
    ]


# -- edge cases, fed by hand ----------------------------------------------------------------------


def _line(message: dict[str, Any]) -> str:
    return json.dumps(message)


def _started_driver() -> CodexLiveDriver:
    """A driver whose handshake is answered up to the turn/start it sent (id 3)."""
    driver = CODEX_LIVE.new_driver(_request())
    driver.start("go")
    driver.feed(_line({"id": 1, "result": {}}), truncated=False)
    thread = {"thread": {"id": "T1"}, "approvalPolicy": "untrusted", "sandbox": {}}
    driver.feed(_line({"id": 2, "result": thread}), truncated=False)
    return driver


def _writes(out: DriverOutput) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.writes]


def test_steer_before_the_turn_id_is_sent_once_known() -> None:
    """A steer before Codex named the turn waits, then goes as turn/steer with that id."""
    driver = _started_driver()
    assert driver.steer("more").writes == []
    out = driver.feed(_line({"id": 3, "result": {"turn": {"id": "U1"}}}), truncated=False)
    [steer] = _writes(out)
    assert steer["method"] == "turn/steer"
    assert steer["params"]["expectedTurnId"] == "U1"


def test_steer_during_the_handshake_joins_the_turn_input() -> None:
    """A steer before turn/start was sent becomes a second input of that turn."""
    driver = CODEX_LIVE.new_driver(_request())
    driver.start("go")
    driver.steer("and more")
    driver.feed(_line({"id": 1, "result": {}}), truncated=False)
    thread = {"thread": {"id": "T1"}, "approvalPolicy": "untrusted"}
    [turn_start] = _writes(driver.feed(_line({"id": 2, "result": thread}), truncated=False))
    assert [item["text"] for item in turn_start["params"]["input"]] == ["go", "and more"]


def test_interrupt_before_the_turn_id_is_sent_once_known() -> None:
    """An interrupt before Codex named the turn is sent as soon as it does."""
    driver = _started_driver()
    assert driver.interrupt().writes == []
    out = driver.feed(_line({"id": 3, "result": {"turn": {"id": "U1"}}}), truncated=False)
    [interrupt] = _writes(out)
    assert interrupt["method"] == "turn/interrupt"
    assert interrupt["params"] == {"threadId": "T1", "turnId": "U1"}


def test_refusals_when_idle_or_not_pending() -> None:
    """steer/interrupt with no turn, prompt during a turn, and an unknown decision refuse."""
    driver = _started_driver()
    with pytest.raises(DriverRefused, match="already running"):
        driver.prompt("again")
    with pytest.raises(DriverRefused, match="no pending permission request '7'"):
        driver.decide("7", "allow")
    driver.feed(_line({"id": 3, "result": {"turn": {"id": "U1"}}}), truncated=False)
    completed = {
        "method": "turn/completed",
        "params": {"turn": {"id": "U1", "status": "completed"}},
    }
    driver.feed(_line(completed), truncated=False)
    with pytest.raises(DriverRefused, match="no codex turn is running"):
        driver.steer("late")
    with pytest.raises(DriverRefused, match="no codex turn is running"):
        driver.interrupt()


def test_other_policy_in_the_answer_ends_the_session() -> None:
    """A thread that would not ask for commands is never used: error, end_process."""
    driver = CODEX_LIVE.new_driver(_request())
    driver.start("go")
    driver.feed(_line({"id": 1, "result": {}}), truncated=False)
    thread = {"thread": {"id": "T1"}, "approvalPolicy": "never"}
    out = driver.feed(_line({"id": 2, "result": thread}), truncated=False)
    assert out.end_process
    assert out.writes == []
    assert out.turn_finished is not None
    assert out.turn_finished.outcome == "error"
    assert "expected codex approval policy 'untrusted', got 'never'" in str(out.turn_finished.error)


def test_unsupported_server_request_is_answered_with_an_error() -> None:
    """A request we cannot relay (user input) is answered at once, or the turn would hang."""
    driver = _started_driver()
    ask_user = {"id": 5, "method": "item/tool/requestUserInput", "params": {}}
    out = driver.feed(_line(ask_user), truncated=False)
    [answer] = _writes(out)
    assert answer["id"] == 5
    assert answer["error"]["code"] == -32601
    assert out.asks == []


def test_file_change_of_several_files_names_them_all() -> None:
    """A patch over two files asks once: file_path is the first, file_paths both."""
    driver = _started_driver()
    changes = [
        {"path": "/work/project/src/a.py", "kind": {"type": "add"}, "diff": "x"},
        {"path": "/etc/b.conf", "kind": {"type": "update"}, "diff": "y"},
    ]
    item = {"type": "fileChange", "id": "call_1", "changes": changes, "status": "inProgress"}
    driver.feed(_line({"method": "item/started", "params": {"item": item}}), truncated=False)
    ask = {"id": 3, "method": "item/fileChange/requestApproval", "params": {"itemId": "call_1"}}
    [permission] = driver.feed(_line(ask), truncated=False).asks
    assert permission.input["file_path"] == "/work/project/src/a.py"
    assert permission.input["file_paths"] == ["/work/project/src/a.py", "/etc/b.conf"]


def test_withdrawn_request_cannot_be_decided() -> None:
    """After Codex resolved a request itself (the turn ended), a decision for it refuses."""
    driver = _started_driver()
    ask = {"id": 0, "method": "item/commandExecution/requestApproval", "params": {"command": "ls"}}
    [permission] = driver.feed(_line(ask), truncated=False).asks
    resolved = {"method": "serverRequest/resolved", "params": {"requestId": 0}}
    driver.feed(_line(resolved), truncated=False)
    with pytest.raises(DriverRefused):
        driver.decide(permission.request_id, "allow")


def _asked_driver() -> tuple[CodexLiveDriver, PermissionAsk]:
    """A driver in turn U1 with a command approval (JSON-RPC id 0) pending."""
    driver = _started_driver()
    driver.feed(_line({"id": 3, "result": {"turn": {"id": "U1"}}}), truncated=False)
    ask = {"id": 0, "method": "item/commandExecution/requestApproval", "params": {"command": "ls"}}
    [permission] = driver.feed(_line(ask), truncated=False).asks
    return driver, permission


def test_decline_waits_for_the_answer_to_the_message_steer() -> None:
    """A deny with a message writes only the steer; Codex's answer to it brings the decline."""
    driver, permission = _asked_driver()
    [steer] = _writes(driver.decide(permission.request_id, "deny", message="not now"))
    assert steer["method"] == "turn/steer"
    assert steer["params"]["input"][0]["text"] == "Permission denied for ls: not now"
    answer = driver.feed(_line({"id": steer["id"], "result": {"turnId": "U1"}}), truncated=False)
    assert _writes(answer) == [{"id": 0, "result": {"decision": "decline"}}]


def test_refused_message_steer_still_declines() -> None:
    """Codex refusing the steer is reported, and the approval is still declined."""
    driver, permission = _asked_driver()
    [steer] = _writes(driver.decide(permission.request_id, "deny", message="not now"))
    refusal = {"id": steer["id"], "error": {"code": -32600, "message": "no active turn"}}
    out = driver.feed(_line(refusal), truncated=False)
    assert _writes(out) == [{"id": 0, "result": {"decision": "decline"}}]
    assert [event.text for event in out.events if event.kind == "error"] == [
        "codex refused turn/steer: no active turn"
    ]


def test_withdrawn_request_drops_its_waiting_decline() -> None:
    """An approval Codex withdrew while its message's steer was unanswered is not declined."""
    driver, permission = _asked_driver()
    [steer] = _writes(driver.decide(permission.request_id, "deny", message="not now"))
    resolved = {"method": "serverRequest/resolved", "params": {"requestId": 0}}
    driver.feed(_line(resolved), truncated=False)
    answer = driver.feed(_line({"id": steer["id"], "result": {"turnId": "U1"}}), truncated=False)
    assert answer.writes == []


def test_deny_without_message_and_allow_answer_at_once() -> None:
    """Only a deny's message needs a steer first: allow, and deny without one, answer at once."""
    driver, permission = _asked_driver()
    assert _writes(driver.decide(permission.request_id, "deny")) == [
        {"id": 0, "result": {"decision": "decline"}}
    ]
    ask = {"id": 1, "method": "item/commandExecution/requestApproval", "params": {"command": "ls"}}
    [second] = driver.feed(_line(ask), truncated=False).asks
    assert _writes(driver.decide(second.request_id, "allow")) == [
        {"id": 1, "result": {"decision": "accept"}}
    ]


def test_process_exit_mid_turn_is_an_error_naming_stderr() -> None:
    """The app-server dying mid-turn ends the turn as an error with its stderr's last word."""
    driver = _started_driver()
    driver.note_stderr("Error: something broke")
    finished = driver.finish(1, None, reason="exited")
    assert finished.outcome == "error"
    assert finished.error is not None
    assert "exited with code 1" in finished.error
    assert "something broke" in finished.error
    assert not finished.session_open
    assert not driver.in_turn


def test_live_argv_sets_the_sandbox_and_refuses_other_modes() -> None:
    """The argv is app-server with the sandbox mode; a Claude mode is refused."""
    argv = CODEX_LIVE.live_argv("codex", _request(), "read-only")
    assert argv == ["codex", "app-server", '--config=sandbox_mode="read-only"']
    with pytest.raises(ValueError, match="expected a codex sandbox mode"):
        CODEX_LIVE.live_argv("codex", _request(), "acceptEdits")


def test_new_driver_refuses_an_option_like_resume_id() -> None:
    """A resume id that is no plain name is refused with where it came from."""
    with pytest.raises(ValueError, match=r"@ \$\.resume_session_id"):
        CODEX_LIVE.new_driver(_request(resume="--last"))


@pytest.mark.parametrize(
    ("command", "script"),
    [
        ("/bin/bash -lc 'echo hi > f.txt'", "echo hi > f.txt"),
        ("/bin/bash -lc ls", "ls"),
        ("bash -c 'pytest -q'", "pytest -q"),
        ("/usr/bin/python3 -c 'print(1)'", "/usr/bin/python3 -c 'print(1)'"),
        ("/bin/bash -lc 'unterminated", "/bin/bash -lc 'unterminated"),
    ],
)
def test_unwrapped_command(command: str, script: str) -> None:
    """Codex's shell wrapper is taken off; anything else stays as it is."""
    assert unwrapped_command(command) == script


def test_exec_item_converts_to_exec_json_shape() -> None:
    """camelCase items and statuses become codex exec's snake_case; a change kind its type."""
    item = {
        "type": "fileChange",
        "status": "inProgress",
        "changes": [{"path": "a", "kind": {"type": "add"}, "diff": ""}],
    }
    assert exec_item(item) == {
        "type": "file_change",
        "status": "in_progress",
        "changes": [{"path": "a", "kind": "add", "diff": ""}],
    }
