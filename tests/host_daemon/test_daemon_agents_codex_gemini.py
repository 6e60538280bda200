"""Codex and Gemini parsers against streams the real CLIs printed (fixtures/recordings.json).

The fixtures were recorded by ``_support.record_fixtures`` from the pinned CLIs run offline
against scripted models; each test replays one with the exit code the CLI really ended with.
Session ids and timestamps are read from the fixture, so re-recording keeps the tests valid.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from _support.record_fixtures import SCENARIOS

from host_daemon._agents import ADAPTERS
from host_daemon._records import AgentEvent, RunFinished, RunRequest

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
RECORDINGS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "recordings.json").read_text())


def _lines(fixture: str) -> list[str]:
    return (FIXTURES / f"{fixture}.jsonl").read_text().splitlines()


def _recorded_exit(fixture: str) -> int:
    code = RECORDINGS[f"{fixture}.jsonl"]["exit_code"]
    assert isinstance(code, int)
    return code


def _replay(
    fixture: str,
    exit_code: int | None = None,
    *,
    request: RunRequest | None = None,
) -> tuple[list[AgentEvent], RunFinished]:
    """Feed a fixture (and its stderr) to its CLI's parser; finish with the recorded exit code."""
    agent = fixture.partition("_")[0]
    parser = ADAPTERS[agent].new_parser(request)
    events = [event for line in _lines(fixture) for event in parser.feed(line)]
    for line in RECORDINGS[f"{fixture}.jsonl"].get("stderr", []):
        parser.note_stderr(line)
    code = _recorded_exit(fixture) if exit_code is None else exit_code
    return events, parser.finish(code, None, reason="exited")


def _kinds(events: list[AgentEvent]) -> list[str]:
    return [event.kind for event in events]


def _first(fixture: str, key: str) -> str:
    value = json.loads(_lines(fixture)[0])[key]
    assert isinstance(value, str)
    return value


def _resumed_id(fixture: str) -> str:
    """The session id the recorded argv asked to resume."""
    argv: list[str] = RECORDINGS[f"{fixture}.jsonl"]["argv"]
    flag = "resume" if "resume" in argv else "--resume"
    return argv[argv.index(flag) + 1]


def test_every_codex_and_gemini_fixture_is_a_described_capture() -> None:
    """Each Codex/Gemini fixture has a recordings.json entry; each scenario has its fixture.

    Live transcripts (``gemini_live_*``) are not headless captures: test_daemon_live_gemini
    replays each of them."""
    fixtures = {
        path.name
        for pattern in ("codex_*", "gemini_*")
        for path in FIXTURES.glob(pattern)
        if not path.name.startswith("gemini_live_")
    }
    assert fixtures == set(RECORDINGS)
    assert {f"{scenario.name}.jsonl" for scenario in SCENARIOS} <= fixtures
    for name, entry in RECORDINGS.items():
        assert entry["cli"] == name.partition("_")[0]
        assert entry["version"]
        assert entry["argv"][0] == entry["cli"]


# --- codex --------------------------------------------------------------------------------------


def test_codex_success() -> None:
    """A completed Codex turn succeeds with the thread id, the last message and token usage."""
    events, finished = _replay("codex_success")
    assert _kinds(events) == ["init", "other", "other", "text", "usage"]
    assert events[2].data == {"type": "item.completed", "item_type": "reasoning"}
    assert finished.outcome == "success"
    assert finished.exit_code == 0
    assert finished.session_id == _first("codex_success", "thread_id")
    assert finished.final_text == "This project holds a README."
    assert finished.usage is not None
    assert finished.usage["input_tokens"] > 0
    assert finished.usage["output_tokens"] > 0
    assert "cached_input_tokens" in finished.usage
    assert finished.cost_usd is None
    assert finished.num_turns == 1


def test_codex_command_execution_is_a_tool_call_and_result() -> None:
    """Commands become tool_use/tool_result pairs; a failing exit code is an error result."""
    events, finished = _replay("codex_command_execution")
    uses = [event for event in events if event.kind == "tool_use"]
    results = [event for event in events if event.kind == "tool_result"]
    assert [use.tool_input for use in uses] == [
        {"command": "/bin/bash -lc 'cat missing.txt'"},
        {"command": "/bin/bash -lc ls"},
    ]
    assert [r.tool_use_id for r in results] == [u.tool_use_id for u in uses]
    assert [r.is_error for r in results] == [True, False]
    assert [r.data for r in results] == [
        {"exit_code": 1, "status": "failed"},
        {"exit_code": 0, "status": "completed"},
    ]
    assert results[0].text == "cat: missing.txt: No such file or directory\n"
    assert results[1].text == "README.md\n"
    assert finished.outcome == "success"
    assert finished.final_text == "missing.txt does not exist; the project holds README.md."


def test_codex_file_change_lists_the_changed_paths() -> None:
    """An apply_patch is a ``file_change`` tool call with its paths, then its result."""
    events, finished = _replay("codex_file_change")
    [use] = [event for event in events if event.kind == "tool_use"]
    [result] = [event for event in events if event.kind == "tool_result"]
    assert use.tool_name == "file_change"
    assert use.tool_input is not None
    assert [(c["kind"], c["path"]) for c in use.tool_input["changes"]] == [
        ("update", "/work/project/README.md"),
        ("add", "/work/project/hello.py"),
    ]
    assert result.tool_use_id == use.tool_use_id
    assert result.text == "update /work/project/README.md\nadd /work/project/hello.py"
    assert result.is_error is False
    assert result.raw == ""
    assert finished.outcome == "success"


def test_codex_read_only_sandbox_reports_no_command() -> None:
    """Under ``--sandbox read-only`` the CLI prints no item for the command it ran (and failed)."""
    events, finished = _replay("codex_read_only")
    assert _kinds(events) == ["init", "other", "text", "usage"]
    assert finished.outcome == "success"
    assert finished.final_text == "The sandbox is read-only."


def test_codex_turn_failed_is_an_error_whatever_the_exit_code() -> None:
    """``turn.failed`` (Codex exits 1) is an error; the event wins over an exit code of 0 too."""
    events, finished = _replay("codex_turn_failed")
    assert finished.exit_code == 1
    for result in (finished, _replay("codex_turn_failed", 0)[1]):
        assert result.outcome == "error"
        assert result.error == (
            "codex turn failed: stream disconnected before completion: scripted failure"
        )
    assert _kinds(events) == ["init", "other", "tool_use", "tool_result", "error", "error"]


def test_codex_api_error_carries_the_api_message() -> None:
    """An HTTP error from the model ends the turn; the error names the API's message."""
    _, finished = _replay("codex_api_error")
    assert finished.outcome == "error"
    assert finished.error is not None
    assert finished.error.startswith("codex turn failed: ")
    assert "scripted bad request" in finished.error


def test_codex_exit_without_turn_end_is_an_error() -> None:
    """Codex exiting before its turn ended is an error carrying the last error message."""
    parser = ADAPTERS["codex"].new_parser()
    lines = _lines("codex_turn_failed")
    assert json.loads(lines[-1])["type"] == "turn.failed"
    for line in lines[:-1]:
        parser.feed(line)
    finished = parser.finish(1, None, reason="exited")
    assert finished.outcome == "error"
    assert finished.error == (
        "codex exited with code 1 before its turn ended: "
        "stream disconnected before completion: scripted failure"
    )


def test_codex_resume_keeps_the_thread() -> None:
    """A real resume prints the resumed thread id, so the resume check passes."""
    thread = _resumed_id("codex_resume")
    request = RunRequest(agent="codex", prompt="go", cwd="/work", resume_session_id=thread)
    events, finished = _replay("codex_resume", request=request)
    assert _kinds(events)[0] == "init"
    assert finished.session_id == thread
    assert finished.outcome == "success"
    assert finished.final_text == "f.txt says hi."


def test_codex_resume_that_starts_another_thread_is_an_error() -> None:
    """A resume whose ``thread.started`` names another thread is an error, even on success."""
    wanted = "019abf2c-0000-7000-8000-000000000000"
    request = RunRequest(agent="codex", prompt="go", cwd="/work", resume_session_id=wanted)
    events, finished = _replay("codex_resume", request=request)
    assert _kinds(events)[:2] == ["init", "error"]
    assert finished.outcome == "error"
    assert finished.error == (
        f"codex started conversation {_first('codex_resume', 'thread_id')} "
        f"instead of resuming {wanted}"
    )


def test_codex_resume_of_an_unknown_thread_says_why() -> None:
    """Resuming a thread that does not exist prints nothing and exits 1; stderr says why."""
    events, finished = _replay("codex_resume_unknown")
    assert events == []
    assert finished.outcome == "error"
    assert finished.error == (
        "codex exited with code 1 before its turn ended: Error: thread/resume: thread/resume "
        "failed: no rollout found for thread id 00000000-0000-4000-8000-000000000000 "
        "(code -32600)"
    )


def test_codex_captured_resume_without_a_turn_end() -> None:
    """Offline resume: warning items are errors, but only a turn event ends the turn."""
    parser = ADAPTERS["codex"].new_parser()
    events = [event for line in _lines("codex_resume_offline") for event in parser.feed(line)]
    timed_out = parser.finish(None, 15, reason="timed_out")
    assert events[0].kind == "init"
    assert timed_out.session_id == _first("codex_resume_offline", "thread_id")
    assert timed_out.outcome == "timed_out"
    assert "error" in _kinds(events)
    exited = parser.finish(1, None, reason="exited")
    assert exited.outcome == "error"
    assert exited.error is not None
    assert exited.error.startswith("codex exited with code 1 before its turn ended: Reconnecting")


# --- gemini -------------------------------------------------------------------------------------


def test_gemini_success() -> None:
    """A Gemini run succeeds with its session id, the shell call and the streamed reply joined."""
    events, finished = _replay("gemini_success")
    assert _kinds(events) == ["init", "other", "tool_use", "tool_result", "text", "text", "usage"]
    assert finished.outcome == "success"
    assert finished.session_id == _first("gemini_success", "session_id")
    assert finished.final_text == "There are two files: README.md and hello.py."
    use, result = events[2], events[3]
    assert use.tool_name == "run_shell_command"
    assert use.tool_input == {"command": "ls", "description": "List the files."}
    assert result.tool_use_id == use.tool_use_id
    assert result.text == "README.md\nhello.py"
    assert result.is_error is False
    assert finished.usage is not None
    assert finished.usage["tool_calls"] == 1
    assert finished.usage["input_tokens"] > 0


def test_gemini_auto_edit_tool_results() -> None:
    """In auto_edit a write succeeds with no output; the shell is not offered, an error result."""
    events, finished = _replay("gemini_auto_edit")
    uses = [event for event in events if event.kind == "tool_use"]
    results = [event for event in events if event.kind == "tool_result"]
    assert [use.tool_name for use in uses] == ["write_file", "run_shell_command"]
    assert [r.tool_use_id for r in results] == [u.tool_use_id for u in uses]
    assert [(r.is_error, r.text) for r in results] == [
        (False, ""),
        (
            True,
            'Tool "run_shell_command" not found. '
            'Did you mean one of: "update_topic", "grep_search", "replace"?',
        ),
    ]
    assert finished.outcome == "success"


def test_gemini_error_result_decides_whatever_the_exit_code() -> None:
    """An HTTP 429 ends with an error result (exit 173, the status modulo 256) naming the quota.

    The result decides, whatever the exit code: a usage limit (``limited``), with its message.
    """
    _, finished = _replay("gemini_error")
    assert finished.exit_code == 173
    for result in (finished, _replay("gemini_error", 0)[1]):
        assert result.outcome == "limited"
        assert result.error is not None
        assert result.error.startswith(
            "gemini reported an error: [API Error: You exceeded your current quota"
        )


def test_gemini_turn_limit() -> None:
    """The turn limit is an error result (exit 53) naming the setting to raise."""
    events, finished = _replay("gemini_turn_limit")
    assert finished.exit_code == 53
    assert finished.outcome == "error"
    assert finished.error == (
        "gemini reported an error: Reached max session turns for this session. "
        "Increase the number of turns by specifying maxSessionTurns in settings.json."
    )
    assert _kinds(events)[-2:] == ["usage", "error"]


def test_gemini_untrusted_workspace_exit_55() -> None:
    """Without ``--skip-trust`` Gemini prints nothing and exits 55: the error names the cause."""
    events, finished = _replay("gemini_untrusted")
    assert "--skip-trust" not in RECORDINGS["gemini_untrusted.jsonl"]["argv"]
    assert events == []
    assert finished.outcome == "error"
    assert finished.error is not None
    assert finished.error.startswith(
        "gemini exited with code 55 (an untrusted workspace (the folder is not trusted)): "
        "Gemini CLI is not running in a trusted directory. To proceed, either use `--skip-trust`"
    )
    assert "\x1b" not in finished.error


def test_gemini_resume_keeps_the_session() -> None:
    """A real ``--resume`` prints the resumed session id, so the resume check passes."""
    session = _resumed_id("gemini_resume")
    request = RunRequest(agent="gemini", prompt="go", cwd="/work", resume_session_id=session)
    _, finished = _replay("gemini_resume", request=request)
    assert finished.session_id == session
    assert finished.outcome == "success"
    assert finished.final_text == "It says hi."


def test_gemini_resume_that_starts_another_session_is_an_error() -> None:
    """A resume whose ``init`` names another session is an error, even on success."""
    wanted = "6b0f2c1e-0000-4000-8000-000000000000"
    request = RunRequest(agent="gemini", prompt="go", cwd="/work", resume_session_id=wanted)
    events, finished = _replay("gemini_resume", request=request)
    assert _kinds(events)[:2] == ["init", "error"]
    assert finished.outcome == "error"
    assert finished.error is not None
    assert finished.error.endswith(f"instead of resuming {wanted}")


def test_gemini_resume_of_an_unknown_session_says_why() -> None:
    """Resuming a session that does not exist prints nothing and exits 42; stderr says why."""
    events, finished = _replay("gemini_resume_unknown")
    assert events == []
    assert finished.outcome == "error"
    assert finished.error == (
        "gemini exited with code 42 (an input error): "
        "Error resuming session: No previous sessions found for this project."
    )


@pytest.mark.parametrize("exit_code", [144, 0])
def test_gemini_captured_api_error(exit_code: int) -> None:
    """An HTTP 400 (a bad key) ends with an error result: an error whatever the exit code."""
    events, finished = _replay("gemini_api_error_captured", exit_code)
    assert _kinds(events) == ["init", "other", "usage", "error"]
    assert finished.outcome == "error"
    assert finished.error is not None
    assert "API key not valid" in finished.error
    assert finished.session_id == _first("gemini_api_error_captured", "session_id")
