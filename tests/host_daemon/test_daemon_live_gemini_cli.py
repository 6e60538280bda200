"""The Gemini live driver on the real ``gemini --acp`` (pinned), against a scripted model, offline.

No daemon: ``_support.live_harness`` spawns the CLI in its own process group and pipes its lines
through the driver. What these runs printed is what the fixtures of ``test_daemon_live_gemini``
hold (``_support.record_live_fixtures`` records them the same way).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from _support.agent_clis import GEMINI_MODEL, gemini_env, gemini_executable
from _support.live_harness import LiveProcess, open_live_process
from _support.polling import eventually
from _support.scripted_gemini import ScriptedGeminiModel, ShellCommand, open_scripted_gemini_model
from _support.scripted_model import ApiError, Reply, ToolCall

from host_daemon._live_gemini import GEMINI_LIVE
from host_daemon._records import RunRequest


@attrs.frozen
class Setup:
    model: ScriptedGeminiModel
    project: pathlib.Path
    env: dict[str, str]

    def request(self, **fields: Any) -> RunRequest:
        return RunRequest(
            agent="gemini",
            prompt="unused",
            cwd=str(self.project),
            model=GEMINI_MODEL,
            live=True,
            session_key="k",
            **fields,
        )


@pytest.fixture
async def setup(tmp_path: pathlib.Path) -> AsyncIterator[Setup]:
    project = tmp_path / "project"
    project.mkdir()
    async with open_scripted_gemini_model() as model:
        env = gemini_env(model.base_url, tmp_path / "home")
        env["GEMINI_CLI_NO_RELAUNCH"] = "1"  # one node process instead of two: faster
        yield Setup(model=model, project=project, env=env)


def live(setup: Setup, mode: str = "default", **fields: Any) -> Any:
    """The real CLI with a fresh driver, as the daemon would start it."""
    request = setup.request(**fields)
    argv = GEMINI_LIVE.live_argv(gemini_executable(), request, mode)
    return open_live_process(
        argv, GEMINI_LIVE.new_driver(request), cwd=str(setup.project), env=setup.env
    )


def running(marker: str) -> list[int]:
    """Processes whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes()
                state = pathlib.Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if marker.encode() in cmdline and state[0] != "Z":
                found.append(int(entry))
    return found


def history(model: ScriptedGeminiModel) -> str:
    """The conversation the model was sent last, as text."""
    return json.dumps(model.main_requests[-1]["contents"])


async def test_shell_command_asked_allowed_and_remembered(setup: Setup) -> None:
    """A shell command is asked as Bash, runs once allowed, and a second prompt sees the first."""
    setup.model.script(ShellCommand("echo live > f.txt"), Reply("written"), Reply("I remember"))
    async with live(setup) as agent:
        await agent.start("write the file")
        ask = await agent.next_ask()
        assert (ask.tool_name, ask.input, ask.agent_tool_name) == (
            "Bash",
            {"command": "echo live > f.txt"},
            "run_shell_command",
        )
        assert not (setup.project / "f.txt").exists()
        await agent.decide(ask.request_id, "allow")
        first = await agent.turn_finished()
        assert (first.outcome, first.final_text, first.session_open) == ("success", "written", True)
        assert (setup.project / "f.txt").read_text() == "live\n"
        assert first.usage is not None
        assert first.usage["input_tokens"] > 0
        kinds = [event.kind for event in agent.events]
        assert kinds.index("init") < kinds.index("tool_use") < kinds.index("tool_result")

        await agent.prompt("what did you write?")
        second = await agent.turn_finished()
        assert (second.outcome, second.final_text) == ("success", "I remember")
        assert second.session_id == first.session_id
        assert "echo live > f.txt" in history(setup.model)
        assert "write the file" in history(setup.model)
        await agent.close()
        assert await agent.wait_exit() == 0


@pytest.mark.parametrize("command", ["ls", "echo hello", "git status"])
async def test_commands_gemini_would_run_unasked_are_asked(setup: Setup, command: str) -> None:
    """Gemini's own policy runs ls/echo/git status unasked; the live policy file makes them ask."""
    setup.model.script(ShellCommand(command), Reply("seen"))
    async with live(setup) as agent:
        await agent.start("look around")
        ask = await agent.next_ask()
        assert ask.input == {"command": command}
        await agent.decide(ask.request_id, "deny")
        assert (await agent.turn_finished()).final_text == "seen"


async def test_denied_shell_command_does_not_run(setup: Setup) -> None:
    """A denied command does not run; the model is told it was canceled and the turn goes on."""
    setup.model.script(ShellCommand("echo no > f.txt"), Reply("understood"))
    async with live(setup) as agent:
        await agent.start("write the file")
        ask = await agent.next_ask()
        await agent.decide(ask.request_id, "deny", message="not now")
        finished = await agent.turn_finished()
        assert (finished.outcome, finished.final_text) == ("success", "understood")
        assert not (setup.project / "f.txt").exists()
        assert "was canceled by the user" in history(setup.model)


async def test_interrupt_mid_command_leaves_no_process(setup: Setup) -> None:
    """session/cancel during a running command ends the turn interrupted, the command gone."""
    marker = f"sleep {3000 + secrets.randbelow(999)}.{secrets.randbelow(999)}"
    setup.model.script(ShellCommand(marker), Reply("after the interrupt"))
    async with live(setup) as agent:
        await agent.start("wait a long time")
        ask = await agent.next_ask()
        await agent.decide(ask.request_id, "allow")
        await eventually(lambda: bool(running(marker)), f"{marker} to run")
        await agent.interrupt()
        finished = await agent.turn_finished()
        assert (finished.outcome, finished.session_open) == ("interrupted", True)
        await eventually(lambda: not running(marker), f"{marker} to be gone", timeout=15)
        assert agent.process.returncode is None

        await agent.prompt("go on")
        after = await agent.turn_finished()
        assert (after.outcome, after.final_text) == ("success", "after the interrupt")
        assert marker in history(setup.model)


async def test_interrupt_while_asking_answers_the_request(setup: Setup) -> None:
    """An interrupt with a permission request open cancels it and ends the turn interrupted."""
    setup.model.script(ShellCommand("echo no > f.txt"), Reply("next turn"))
    async with live(setup) as agent:
        await agent.start("write the file")
        ask = await agent.next_ask()
        await agent.interrupt()
        finished = await agent.turn_finished()
        assert finished.outcome == "interrupted"
        assert not (setup.project / "f.txt").exists()
        answers = [entry["client"] for entry in agent.transcript if "client" in entry]
        assert {"outcome": {"outcome": "cancelled"}} in [a.get("result") for a in answers]
        with pytest.raises(Exception, match="no permission request"):
            await agent.decide(ask.request_id, "allow")
        await agent.prompt("again")
        assert (await agent.turn_finished()).final_text == "next turn"


async def test_edit_tools_are_asked_as_write_and_edit(setup: Setup) -> None:
    """write_file asks as Write, replace as Edit, each with the absolute file_path."""
    (setup.project / "a.txt").write_text("one\n")
    new, old = setup.project / "new.txt", setup.project / "a.txt"
    setup.model.script(
        ToolCall("write_file", {"file_path": str(new), "content": "fresh\n"}),
        ToolCall(
            "replace",
            {"file_path": str(old), "old_string": "one", "new_string": "two", "instruction": "x"},
        ),
        Reply("edited"),
    )
    async with live(setup) as agent:
        await agent.start("edit")
        write = await agent.next_ask()
        assert (write.tool_name, write.input, write.agent_tool_name) == (
            "Write",
            {"file_path": str(new), "content": "fresh\n"},
            "write_file",
        )
        await agent.decide(write.request_id, "allow")
        edit = await agent.next_ask()
        assert (edit.tool_name, edit.input, edit.agent_tool_name) == (
            "Edit",
            {"file_path": str(old)},
            "replace",
        )
        await agent.decide(edit.request_id, "allow")
        assert (await agent.turn_finished()).outcome == "success"
    assert new.read_text() == "fresh\n"
    assert old.read_text() == "two\n"


async def test_auto_edit_mode_still_asks_for_the_shell(setup: Setup) -> None:
    """In auto_edit (the adapter's default mode) edits run unasked, the shell is asked."""
    target = setup.project / "b.txt"
    setup.model.script(
        ToolCall("write_file", {"file_path": str(target), "content": "b\n"}),
        ShellCommand("echo s > s.txt"),
        Reply("both"),
    )
    async with live(setup, mode="auto_edit") as agent:
        await agent.start("edit and run")
        ask = await agent.next_ask()
        assert ask.tool_name == "Bash"
        assert target.read_text() == "b\n"
        await agent.decide(ask.request_id, "allow")
        assert (await agent.turn_finished()).outcome == "success"
    assert (setup.project / "s.txt").read_text() == "s\n"


async def test_api_error_ends_the_turn_but_not_the_session(setup: Setup) -> None:
    """A model error ends the turn with the API's message (a 429 quota: ``limited``); the
    session stays open and the next prompt works."""
    setup.model.script(ApiError(429, "RESOURCE_EXHAUSTED", "quota gone"), Reply("recovered"))
    async with live(setup) as agent:
        await agent.start("hello")
        finished = await agent.turn_finished()
        assert finished.outcome == "limited"
        assert finished.limit is not None
        assert finished.error is not None
        assert "quota gone" in finished.error
        assert finished.session_open
        await agent.prompt("again")
        assert (await agent.turn_finished()).final_text == "recovered"


async def test_resume_of_an_unknown_session_fails_clearly(setup: Setup) -> None:
    """session/load of a session Gemini does not have: an error naming it; the process ends."""
    unknown = "00000000-0000-4000-8000-000000000000"
    async with live(setup, resume_session_id=unknown) as agent:
        await agent.start("hello")
        finished = await agent.turn_finished()
        assert (finished.outcome, finished.session_open) == ("error", False)
        assert finished.error is not None
        assert f"gemini cannot resume session {unknown}" in finished.error
        assert await agent.wait_exit() == 0
    assert setup.model.main_requests == []


async def wait_for_next_minute(started: datetime.datetime) -> None:
    """Gemini 0.61.0 names a session's file by the minute it started, and a session/load in
    that same minute writes a new file over it (the conversation is lost): wait it out."""
    await eventually(lambda: _minute() > started, "the next minute", timeout=90)


def _minute() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(second=0, microsecond=0)


async def test_resume_in_a_new_process_keeps_the_conversation(setup: Setup) -> None:
    """A new process resuming the session id (session/load) continues the conversation."""
    setup.model.script(Reply("noted"))
    async with live(setup) as first:
        await first.start("remember the word PINEAPPLE")
        done = await first.turn_finished()
        assert done.outcome == "success"
        await first.close()
        assert await first.wait_exit() == 0
    session_id = done.session_id
    assert session_id is not None
    # The session's file was named before now: a later minute than now is a later one than its.
    await wait_for_next_minute(_minute())
    setup.model.script(Reply("PINEAPPLE it was"))
    async with live(setup, resume_session_id=session_id) as second:
        await second.start("which word?")
        finished = await second.turn_finished()
        assert (finished.outcome, finished.session_id) == ("success", session_id), finished.error
        assert finished.final_text == "PINEAPPLE it was"
        init = next(event for event in second.events if event.kind == "init")
        assert init.data is not None
        assert init.data["resumed"] is True
    assert "remember the word PINEAPPLE" in history(setup.model)


async def test_leaving_the_block_kills_the_group(setup: Setup) -> None:
    """The harness ends the CLI's whole process group, even mid-command."""
    marker = f"sleep {4000 + secrets.randbelow(999)}.{secrets.randbelow(999)}"
    setup.model.script(ShellCommand(marker))
    agent: LiveProcess
    async with live(setup) as agent:
        await agent.start("wait")
        await agent.decide((await agent.next_ask()).request_id, "allow")
        await eventually(lambda: bool(running(marker)), f"{marker} to run")
    await eventually(lambda: not running(marker), f"{marker} to be gone", timeout=15)
