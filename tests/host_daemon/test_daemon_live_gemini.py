"""The Gemini live (ACP) driver, sans-IO: replayed on real transcripts, and on hand-made lines.

Each ``fixtures/live_gemini_*.jsonl`` is what the real ``gemini --acp`` 0.61.0 exchanged with this
driver (``_support.record_live_fixtures``). Replaying the agent's lines and the calls made on the
driver in the same order must make the driver write exactly what it wrote then.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import attrs
import orjson
import pytest

from host_daemon._live_driver import DriverOutput, DriverRefused, PermissionAsk
from host_daemon._live_gemini import (
    GEMINI_LIVE,
    GeminiLiveDriver,
    acp_flag,
    live_policy_path,
    normalized_tool,
)
from host_daemon._records import AgentEvent, RunFinished, RunRequest
from host_daemon._rules import Policy

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
PROJECT = "/work/project"


@attrs.define
class Replay:
    """What the driver did over one recorded transcript."""

    header: dict[str, Any]
    driver: GeminiLiveDriver
    events: list[AgentEvent] = attrs.field(factory=list)
    asks: list[PermissionAsk] = attrs.field(factory=list)
    finished: list[RunFinished] = attrs.field(factory=list)
    writes: list[dict[str, Any]] = attrs.field(factory=list)
    recorded_writes: list[dict[str, Any]] = attrs.field(factory=list)
    close_stdin: bool = False

    def take(self, output: DriverOutput) -> None:
        self.events += output.events
        self.asks += output.asks
        self.writes += [orjson.loads(line) for line in output.writes]
        assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in output.writes)
        if output.turn_finished is not None:
            self.finished.append(output.turn_finished)
        self.close_stdin |= output.close_stdin


def request(**fields: Any) -> RunRequest:
    return RunRequest(agent="gemini", prompt="p", cwd=PROJECT, live=True, session_key="k", **fields)


def replay(name: str) -> Replay:
    """Feed a recorded transcript to a fresh driver, making the recorded calls in order."""
    entries = [
        json.loads(line)
        for line in (FIXTURES / f"live_gemini_{name}.jsonl").read_text().splitlines()
    ]
    header = entries[0]["recorded"]
    driver = GEMINI_LIVE.new_driver(
        request(resume_session_id=header["request"]["resume_session_id"])
    )
    result = Replay(header=header, driver=driver)
    for entry in entries[1:]:
        if "agent" in entry:
            result.take(driver.feed(json.dumps(entry["agent"]), truncated=False))
        elif "client" in entry:
            result.recorded_writes.append(entry["client"])
        else:
            call = entry.pop("call")
            if call == "decide":
                output = driver.decide(
                    entry["request_id"], entry["behavior"], message=entry["message"]
                )
            elif call in ("start", "prompt"):
                output = getattr(driver, call)(entry.get("prompt", entry.get("text")))
            else:
                output = getattr(driver, call)()
            result.take(output)
    return result


ALL = [path.stem.removeprefix("live_gemini_") for path in FIXTURES.glob("live_gemini_*.jsonl")]


@pytest.mark.parametrize("name", sorted(ALL))
def test_replay_writes_what_the_driver_wrote_to_the_real_cli(name: str) -> None:
    """On each real transcript, the driver writes exactly the recorded lines, in order."""
    result = replay(name)
    assert result.writes == result.recorded_writes


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_agent_line_is_in_the_events(name: str) -> None:
    """Each line the CLI printed is the raw of exactly one event (the transcript is whole)."""
    result = replay(name)
    lines = [
        json.dumps(json.loads(line)["agent"])
        for line in (FIXTURES / f"live_gemini_{name}.jsonl").read_text().splitlines()
        if '"agent"' in line[:10]
    ]
    assert [event.raw for event in result.events if event.raw] == lines


def test_fixtures_cover_the_scenarios() -> None:
    """The recorded scenarios are all there."""
    assert set(ALL) == {
        "allow_remember",
        "deny",
        "interrupt_command",
        "interrupt_ask",
        "edits",
        "api_error",
        "resume",
        "resume_unknown",
    }


def test_allow_then_second_prompt() -> None:
    """A Bash ask, allowed; the turn succeeds with the reply; the second turn in the session."""
    result = replay("allow_remember")
    (ask,) = result.asks
    assert (ask.tool_name, ask.input, ask.agent_tool_name) == (
        "Bash",
        {"command": "echo live > f.txt"},
        "run_shell_command",
    )
    assert ask.description is not None
    assert "current working directory /work/project" in ask.description
    first, second = result.finished
    assert (first.outcome, first.final_text, first.session_open) == ("success", "written", True)
    assert (second.outcome, second.final_text) == ("success", "I remember")
    assert first.session_id == second.session_id == result.driver.session_id
    assert first.usage is not None
    assert first.usage["output_tokens"] > 0
    init = next(event for event in result.events if event.kind == "init")
    assert init.session_id == first.session_id
    assert init.data == {"model": "gemini-2.5-flash", "mode": "default", "resumed": False}
    tool_use = next(event for event in result.events if event.kind == "tool_use")
    assert (tool_use.tool_name, tool_use.tool_input) == (
        "run_shell_command",
        {"command": "echo live > f.txt"},
    )
    tool_result = next(event for event in result.events if event.kind == "tool_result")
    assert (tool_result.tool_use_id, tool_result.is_error) == (tool_use.tool_use_id, False)
    assert result.close_stdin
    assert not result.driver.in_turn


def test_deny_picks_the_reject_option() -> None:
    """A deny answers with the agent's reject_once option; the turn goes on to the reply."""
    result = replay("deny")
    assert result.writes[-1]["result"] == {"outcome": {"outcome": "selected", "optionId": "cancel"}}
    (finished,) = result.finished
    assert (finished.outcome, finished.final_text) == ("success", "understood")


def test_interrupt_mid_command() -> None:
    """session/cancel ends the turn interrupted; the session takes the next prompt."""
    result = replay("interrupt_command")
    assert {
        "jsonrpc": "2.0",
        "method": "session/cancel",
        "params": {"sessionId": result.driver.session_id},
    } in result.writes
    interrupted, after = result.finished
    assert (interrupted.outcome, interrupted.session_open) == ("interrupted", True)
    assert (after.outcome, after.final_text) == ("success", "after the interrupt")


def test_interrupt_while_asking() -> None:
    """An interrupt answers the open request "cancelled" before cancelling the turn."""
    result = replay("interrupt_ask")
    answers = [write for write in result.writes if "result" in write]
    assert answers == [{"jsonrpc": "2.0", "id": 0, "result": {"outcome": {"outcome": "cancelled"}}}]
    assert [finished.outcome for finished in result.finished] == ["interrupted", "success"]
    with pytest.raises(DriverRefused, match="no permission request 'acp-0' is pending"):
        result.driver.decide("acp-0", "allow")


def test_edits_are_write_and_edit() -> None:
    """write_file asks as Write (path and content), replace as Edit (path)."""
    result = replay("edits")
    write, edit = result.asks
    assert (write.tool_name, write.input, write.agent_tool_name) == (
        "Write",
        {"file_path": f"{PROJECT}/new.txt", "content": "fresh\n"},
        "write_file",
    )
    assert (edit.tool_name, edit.input, edit.agent_tool_name) == (
        "Edit",
        {"file_path": f"{PROJECT}/a.txt"},
        "replace",
    )
    assert [finished.outcome for finished in result.finished] == ["success"]


def test_api_error_keeps_the_session() -> None:
    """A JSON-RPC error answering the prompt ends the turn (a 429 quota: ``limited``, the
    usage limit), the session open."""
    result = replay("api_error")
    (finished,) = result.finished
    assert finished.outcome == "limited"
    assert finished.limit is not None
    assert finished.limit.source == "gemini error"
    assert finished.error == "gemini reported an error: quota gone"
    assert finished.session_open


def test_resume_replay_is_not_the_turn() -> None:
    """After session/load the replayed conversation is not the turn's text; the id is kept."""
    result = replay("resume")
    session_id = result.header["request"]["resume_session_id"]
    (finished,) = result.finished
    assert (finished.outcome, finished.session_id) == ("success", session_id)
    assert finished.final_text == "PINEAPPLE it was"
    texts = [event.text for event in result.events if event.kind == "text"]
    assert texts == ["PINEAPPLE it was"]
    replayed = [e for e in result.events if e.data and e.data.get("replayed")]
    assert len(replayed) >= 2
    assert result.writes[1]["method"] == "session/load"


def test_resume_unknown_fails_and_closes() -> None:
    """A session/load error ends the turn as an error naming the session, and closes stdin."""
    result = replay("resume_unknown")
    (finished,) = result.finished
    assert (finished.outcome, finished.session_open) == ("error", False)
    assert finished.error is not None
    assert finished.error.startswith(
        "gemini cannot resume session 00000000-0000-4000-8000-000000000000: Internal error"
    )
    assert "No previous sessions found" in finished.error
    assert result.close_stdin


# -- hand-made lines: what the recordings do not show -------------------------------------------


def line(message: dict[str, Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", **message})


def started(**fields: Any) -> tuple[GeminiLiveDriver, list[dict[str, Any]]]:
    """A driver whose session exists and whose first prompt went out; and its writes."""
    driver = GeminiLiveDriver(request(**fields))
    writes = [orjson.loads(w) for w in driver.start("hi").writes]
    caps = {"agentCapabilities": {"loadSession": True}}
    writes += [
        orjson.loads(w)
        for w in driver.feed(line({"id": 1, "result": caps}), truncated=False).writes
    ]
    result = {"sessionId": "s1", "models": {"currentModelId": "m"}}
    writes += [
        orjson.loads(w)
        for w in driver.feed(line({"id": 2, "result": result}), truncated=False).writes
    ]
    return driver, writes


def test_relative_cwd_refused() -> None:
    """The driver needs the run's real directory: a relative cwd is refused at once."""
    with pytest.raises(ValueError, match="expected the run's real directory"):
        GeminiLiveDriver(RunRequest(agent="gemini", prompt="p", cwd="project"))


def test_steer_refused() -> None:
    """Gemini is not steerable: steer raises DriverRefused with a message for the client."""
    driver, _ = started()
    assert driver.steerable is False
    with pytest.raises(DriverRefused, match="cannot take input during a turn"):
        driver.steer("more")


def test_prompt_during_a_turn_refused() -> None:
    """A prompt while a turn runs is refused (the session queues nothing)."""
    driver, writes = started()
    assert writes[-1]["method"] == "session/prompt"
    assert driver.in_turn
    with pytest.raises(DriverRefused, match="in a turn"):
        driver.prompt("again")


def test_no_load_capability_starts_new_with_an_error_event() -> None:
    """An agent that cannot load sessions: a new session, and an error event saying so."""
    driver = GeminiLiveDriver(request(resume_session_id="old"))
    driver.start("hi")
    output = driver.feed(line({"id": 1, "result": {"agentCapabilities": {}}}), truncated=False)
    assert [orjson.loads(w)["method"] for w in output.writes] == ["session/new"]
    assert [(e.kind, e.text) for e in output.events] == [
        ("error", "gemini cannot load sessions: a new conversation replaces old")
    ]


def test_initialize_error_ends_the_session() -> None:
    """An initialize error ends the turn as an error and closes stdin."""
    driver = GeminiLiveDriver(request())
    driver.start("hi")
    error = {"code": -32000, "message": "Authentication required"}
    output = driver.feed(line({"id": 1, "error": error}), truncated=False)
    assert output.turn_finished is not None
    assert output.turn_finished.error == "gemini refused to initialize: Authentication required"
    assert output.close_stdin
    assert not driver.in_turn


def test_other_agent_requests_get_method_not_found() -> None:
    """A request the client never offered (fs, terminal) is answered with an error."""
    driver, _ = started()
    output = driver.feed(
        line({"id": 7, "method": "fs/read_text_file", "params": {}}), truncated=False
    )
    (answer,) = [orjson.loads(w) for w in output.writes]
    assert answer["id"] == 7
    assert answer["error"]["code"] == -32601


def test_ask_arriving_while_interrupting_is_cancelled() -> None:
    """A permission request after session/cancel went out is answered "cancelled" at once."""
    driver, _ = started()
    driver.interrupt()
    ask = {
        "id": 3,
        "method": "session/request_permission",
        "params": {"toolCall": {"kind": "execute", "title": "ls"}, "options": []},
    }
    output = driver.feed(line(ask), truncated=False)
    assert output.asks == []
    assert [orjson.loads(w)["result"] for w in output.writes] == [
        {"outcome": {"outcome": "cancelled"}}
    ]


def test_interrupt_before_the_session_exists() -> None:
    """An interrupt while starting: no prompt is sent, the turn ends interrupted at session/new."""
    driver = GeminiLiveDriver(request())
    driver.start("hi")
    assert driver.interrupt().writes == []
    driver.feed(line({"id": 1, "result": {}}), truncated=False)
    output = driver.feed(line({"id": 2, "result": {"sessionId": "s"}}), truncated=False)
    assert output.writes == []
    assert output.turn_finished is not None
    assert output.turn_finished.outcome == "interrupted"


def test_finish_mid_turn_is_an_error_with_stderr() -> None:
    """The process exiting during a turn: an error naming the exit code and stderr."""
    driver, _ = started()
    driver.note_stderr("fatal: something broke\n")
    finished = driver.finish(1, None, reason="exited")
    assert (finished.outcome, finished.session_open) == ("error", False)
    assert finished.error == "gemini exited with code 1 during a turn: fatal: something broke"


@pytest.mark.parametrize(("reason", "outcome"), [("timed_out", "timed_out"), ("killed", "killed")])
def test_finish_with_a_daemon_reason(reason: Any, outcome: str) -> None:
    """The daemon's reason decides the outcome of a turn it ended."""
    driver, _ = started()
    assert driver.finish(None, 9, reason=reason).outcome == outcome


def test_truncated_and_garbage_lines_are_other_events() -> None:
    """A cut line or a non-JSON line becomes an ``other`` event; the turn goes on."""
    driver, _ = started()
    cut = driver.feed('{"jsonrpc": "2.0", "id": 3, "res', truncated=True)
    assert [(e.kind, e.truncated) for e in cut.events] == [("other", True)]
    assert [e.kind for e in driver.feed("not json", truncated=False).events] == ["other"]
    assert driver.in_turn


def test_unknown_stop_reason_is_an_error() -> None:
    """A stop reason other than end_turn/cancelled ends the turn as an error saying it."""
    driver, writes = started()
    output = driver.feed(
        line({"id": writes[-1]["id"], "result": {"stopReason": "max_turn_requests"}}),
        truncated=False,
    )
    assert output.turn_finished is not None
    assert output.turn_finished.outcome == "error"
    assert output.turn_finished.error == "gemini stopped: the turn limit was reached"


@pytest.mark.parametrize(
    ("tool_call", "expected"),
    [
        (
            {
                "toolCallId": "run_shell_command__run_shell_command_1_0",
                "kind": "execute",
                "title": "ls -la",
            },
            ("Bash", {"command": "ls -la"}, "run_shell_command"),
        ),
        (
            {
                "toolCallId": "read_file__read_file_1_0",
                "kind": "read",
                "title": "a",
                "locations": [{"path": "/p/a"}],
            },
            ("Read", {"file_path": "/p/a"}, "read_file"),
        ),
        (
            {"toolCallId": "web_fetch__web_fetch_1_0", "kind": "fetch", "title": "get it"},
            ("web_fetch", {"title": "get it"}, "web_fetch"),
        ),
        (
            {"toolCallId": "srv__tool__srv__tool_1_0", "kind": "other", "title": "t"},
            ("srv__tool", {"title": "t"}, "srv__tool"),
        ),
        ({"toolCallId": "odd", "kind": "execute", "title": "x"}, ("Bash", {"command": "x"}, None)),
    ],
)
def test_normalized_tool(tool_call: dict[str, Any], expected: tuple[Any, ...]) -> None:
    """Tool calls are normalized from Gemini's name (the toolCallId prefix) and kind."""
    assert normalized_tool(tool_call) == expected


def test_acp_flag_and_argv() -> None:
    """--acp is found in --help (--experimental-acp as a fallback); the argv binds values."""
    assert acp_flag("  --acp   Starts the agent in ACP mode\n --experimental-acp x") == "--acp"
    assert acp_flag("  --experimental-acp  Starts the agent") == "--experimental-acp"
    assert acp_flag("  --acpx") is None
    argv = GEMINI_LIVE.live_argv("gemini", request(model="gemini-2.5-flash"), "default")
    policy = live_policy_path()
    assert argv == [
        "gemini",
        "--acp",
        "--approval-mode=default",
        "--skip-trust",
        f"--policy={policy}",
        "--model=gemini-2.5-flash",
    ]
    assert 'toolName = "run_shell_command"' in pathlib.Path(policy).read_text()
    yolo = GEMINI_LIVE.live_argv("gemini", request(), "yolo")
    assert yolo == ["gemini", "--acp", "--approval-mode=yolo", "--skip-trust"]
    with pytest.raises(ValueError, match=r"@ \$\.model"):
        GEMINI_LIVE.live_argv("gemini", request(model="--yolo"), "default")


def test_policy_rules_apply_to_gemini_asks() -> None:
    """Claude-syntax rules decide Gemini's normalized asks (run_shell_command as Bash, edits)."""
    policy = Policy.from_texts(["Edit(*.txt)"], ["Bash(echo:*)"])
    (shell,) = replay("allow_remember").asks
    verdict = policy.decide(
        shell.tool_name, shell.input, PROJECT, task_allow=None, task_deny=(), granted=()
    )
    assert verdict is not None
    assert (verdict.behavior, verdict.rule) == ("deny", "Bash(echo:*)")
    write, edit = replay("edits").asks
    for ask in (write, edit):
        allowed = policy.decide(
            ask.tool_name, ask.input, PROJECT, task_allow=None, task_deny=(), granted=()
        )
        assert allowed is not None
        assert (allowed.behavior, allowed.rule) == ("allow", "Edit(*.txt)")
