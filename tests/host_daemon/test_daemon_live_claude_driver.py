"""The Claude live driver, sans-IO, on transcripts recorded from the real CLI (fixtures/)."""

from __future__ import annotations

import json
import pathlib

import orjson
import pytest

from host_daemon import RunFinished, RunRequest
from host_daemon._live_claude import CLAUDE_LIVE, ClaudeLiveDriver
from host_daemon._live_driver import DriverOutput, DriverRefused, PermissionAsk

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _request(**fields: object) -> RunRequest:
    return RunRequest(agent="claude", prompt="p", cwd="/work/project", live=True, **fields)  # type: ignore[arg-type]


def _lines(name: str) -> list[str]:
    return (FIXTURES / f"{name}.jsonl").read_text().splitlines()


def _feed_until_end(
    driver: ClaudeLiveDriver, lines: list[str], answers: list[bytes] | None = None
) -> tuple[list[DriverOutput], int]:
    """Feed lines until a turn ends, allowing each ask at once (the answers go to ``answers``);
    the outputs and how many lines were used."""
    outputs = []
    for used, line in enumerate(lines, 1):
        out = driver.feed(line, truncated=False)
        outputs.append(out)
        for ask in out.asks:
            if answers is not None:
                answers += driver.decide(ask.request_id, "allow").writes
        if out.turn_finished is not None:
            return outputs, used
    return outputs, len(lines)


def _finished(outputs: list[DriverOutput]) -> RunFinished:
    ends = [out.turn_finished for out in outputs if out.turn_finished is not None]
    assert len(ends) == 1
    return ends[0]


def _asks(outputs: list[DriverOutput]) -> list[PermissionAsk]:
    return [ask for out in outputs for ask in out.asks]


def test_argv_has_no_prompt_and_binds_every_value() -> None:
    """The live argv takes prompts on stdin and binds each option's value to it."""
    argv = CLAUDE_LIVE.live_argv("claude", _request(resume_session_id="abc", model="m"), "default")
    assert argv == [
        "claude",
        "-p",
        "--input-format=stream-json",
        "--output-format=stream-json",
        "--verbose",
        "--permission-prompt-tool=stdio",
        "--replay-user-messages",
        "--permission-mode=default",
        "--resume=abc",
        "--model=m",
    ]


def test_allow_turn_then_a_second_turn() -> None:
    """A can_use_tool request becomes an ask; allowing it echoes the input; two turns end."""
    driver = ClaudeLiveDriver(_request())
    start = driver.start("first prompt")
    assert [orjson.loads(w) for w in start.writes] == [
        {"type": "user", "message": {"role": "user", "content": "first prompt"}}
    ]
    lines = _lines("claude_live_allow")
    answers: list[bytes] = []
    outputs, used = _feed_until_end(driver, lines, answers)
    [ask] = _asks(outputs)
    assert (ask.tool_name, ask.input["command"]) == ("Bash", "python3 -c 'pass'")
    assert ask.suggestions  # Claude's own rule proposals come along
    answer = orjson.loads(answers[0])
    assert answer["response"] == {
        "subtype": "success",
        "request_id": ask.request_id,
        "response": {"behavior": "allow", "updatedInput": ask.input},
    }
    first = _finished(outputs)
    assert (first.outcome, first.final_text, first.session_open) == ("success", "done", True)
    assert driver.in_turn is False
    driver.prompt("second prompt")
    outputs, _ = _feed_until_end(driver, lines[used:])
    second = _finished(outputs)
    assert (second.final_text, second.session_id) == ("second", first.session_id)


def test_deny_sends_the_message() -> None:
    """A deny carries the client's message; a second decision for it is refused."""
    driver = ClaudeLiveDriver(_request())
    driver.start("run it")
    lines = _lines("claude_live_deny")
    cut = next(i for i, line in enumerate(lines) if '"control_request"' in line) + 1
    [ask] = _asks([driver.feed(line, truncated=False) for line in lines[:cut]])
    answer = orjson.loads(driver.decide(ask.request_id, "deny", message="no").writes[0])
    assert answer["response"]["response"] == {"behavior": "deny", "message": "no"}
    with pytest.raises(DriverRefused, match=r"no permission request .* is pending"):
        driver.decide(ask.request_id, "allow")
    outputs, _ = _feed_until_end(driver, lines[cut:])
    assert _finished(outputs).outcome == "success"


def test_interrupt_ends_the_turn_interrupted_and_the_session_goes_on() -> None:
    """After an interrupt request the error result ends the turn ``interrupted``, session open."""
    driver = ClaudeLiveDriver(_request())
    driver.start("sleep long")
    lines = _lines("claude_live_interrupt")
    cut = next(i for i, line in enumerate(lines) if '"control_response"' in line)
    for line in lines[:cut]:
        driver.feed(line, truncated=False)
    request = orjson.loads(driver.interrupt().writes[0])
    assert request["request"] == {"subtype": "interrupt"}
    outputs, used = _feed_until_end(driver, lines[cut:])
    end = _finished(outputs)
    assert (end.outcome, end.session_open) == ("interrupted", True)
    driver.prompt("go on")
    outputs, _ = _feed_until_end(driver, lines[cut + used :])
    assert _finished(outputs).final_text == "next turn"


def test_steer_taken_by_the_running_turn_ends_it_at_its_result() -> None:
    """A steering line merged into the running turn (echoed before the result): one end."""
    driver = ClaudeLiveDriver(_request())
    driver.start("steer me")
    lines = _lines("claude_live_steer_merged")
    ends = []
    for line in lines:
        if '"control_request"' in line:
            driver.feed(line, truncated=False)
            driver.steer("STEER: while the tool runs")
            continue
        out = driver.feed(line, truncated=False)
        if out.turn_finished is not None:
            ends.append(out.turn_finished)
    assert [end.final_text for end in ends] == ["steered"]


def test_steer_queued_after_the_answer_waits_for_the_extra_result() -> None:
    """A steering line Claude takes after the turn's result runs as one more step: the turn
    ends at the second result, not the first."""
    driver = ClaudeLiveDriver(_request())
    driver.start("steer me late")
    lines = _lines("claude_live_steer_queued")
    ends = []
    for index, line in enumerate(lines):
        out = driver.feed(line, truncated=False)
        if index == 5:  # the tool's result: the model is writing its final answer
            driver.steer("STEER: late")
        if out.turn_finished is not None:
            ends.append((index, out.turn_finished))
    assert [(index, end.final_text) for index, end in ends] == [(len(lines) - 1, "after steer")]
    assert json.loads(lines[7])["type"] == "result"  # the first result did not end the turn


def test_steer_and_prompt_refused_in_the_wrong_state() -> None:
    """Steering an idle session and prompting a busy one are refused with the reason."""
    driver = ClaudeLiveDriver(_request())
    with pytest.raises(DriverRefused, match="no turn is running"):
        driver.steer("x")
    driver.start("p")
    with pytest.raises(DriverRefused, match="a turn is running"):
        driver.prompt("x")


def test_other_control_requests_are_answered_with_an_error() -> None:
    """A control request the daemon does not handle gets an error response, not silence."""
    driver = ClaudeLiveDriver(_request())
    driver.start("p")
    line = '{"type":"control_request","request_id":"h1","request":{"subtype":"hook_callback"}}'
    out = driver.feed(line, truncated=False)
    response = orjson.loads(out.writes[0])["response"]
    assert (response["subtype"], response["request_id"]) == ("error", "h1")
    assert out.asks == []


def test_process_end_mid_turn_is_the_turn_end() -> None:
    """The agent dying mid-turn finishes the turn with the parser's outcome, session closed."""
    driver = ClaudeLiveDriver(_request())
    driver.start("p")
    end = driver.finish(None, 9, reason="exited")
    assert (end.outcome, end.session_open) == ("killed", False)
    assert driver.in_turn is False


def test_allow_with_edited_input_sends_the_edit() -> None:
    """An allow with ``updated_input`` sends that input instead of the agent's own."""
    driver = ClaudeLiveDriver(_request())
    driver.start("run it")
    lines = _lines("claude_live_deny")
    cut = next(i for i, line in enumerate(lines) if '"control_request"' in line) + 1
    [ask] = _asks([driver.feed(line, truncated=False) for line in lines[:cut]])
    edited = {"command": "python3 -c 'print(1)'"}
    out = driver.decide(ask.request_id, "allow", updated_input=edited)
    assert orjson.loads(out.writes[0])["response"]["response"] == {
        "behavior": "allow",
        "updatedInput": edited,
    }
