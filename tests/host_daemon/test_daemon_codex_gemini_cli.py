"""The real Codex and Gemini CLIs, run by the daemon against scripted models on loopback.

The daemon builds each adapter's argv and parses what the pinned CLI prints (``agent_clis``
installs it from npm into the test cache on first use); the CLI really runs commands and edits
files in the root. Each daemon's environment carries a unique marker variable, so "nothing of
the run is left" is checked by scanning ``/proc/*/environ`` for it.
"""

from __future__ import annotations

import json
import pathlib
import time
import uuid
from collections.abc import AsyncIterator

import attrs
import pytest
import trio
from _support.agent_clis import (
    GEMINI_MODEL,
    codex_env,
    codex_executable,
    gemini_env,
    gemini_executable,
)
from _support.daemon import running_daemon
from _support.polling import eventually
from _support.procs import marked_processes
from _support.scripted_codex import (
    Patch,
    ScriptedCodexModel,
    ShellCall,
    open_scripted_codex_model,
)
from _support.scripted_gemini import (
    ScriptedGeminiModel,
    ShellCommand,
    open_scripted_gemini_model,
)
from _support.scripted_model import ApiError, Reply, ToolCall

from host_daemon import AgentEvent, RunEvent, RunFinished, RunRequest, open_run

pytestmark = pytest.mark.agent_cli

_MARKER = "CODING_AGENT_TEST_RUN"
_DEADLINE_S = 60.0
# The cancellation tests' process tree: a plain sleep and one that ignores SIGTERM, both in the
# background of the tool's shell, which waits for them.
_TREE_SCRIPT = """\
sh -c 'trap "" TERM; exec sleep 3001' &
sleep 3002 &
echo started > started.txt
wait
"""


@attrs.frozen
class Daemon:
    host: str
    port: int
    token: str
    root: pathlib.Path
    marker: str
    codex: ScriptedCodexModel
    gemini: ScriptedGeminiModel


@pytest.fixture(scope="session")
def executables() -> tuple[str, str]:
    """The pinned ``codex`` and ``gemini`` (installed on first use; never skipped)."""
    return codex_executable(), gemini_executable()


@pytest.fixture
async def daemon(
    executables: tuple[str, str], tmp_path: pathlib.Path, subreaper: None
) -> AsyncIterator[Daemon]:
    """A daemon on 127.0.0.1:0 with one root, running both CLIs against scripted models."""
    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "home"
    marker = uuid.uuid4().hex
    async with (
        open_scripted_codex_model() as codex,
        open_scripted_gemini_model() as gemini,
    ):
        env = {
            **codex_env(codex.base_url, home),
            **gemini_env(gemini.base_url, home),
            "CODEX_PATH": executables[0],
            "GEMINI_PATH": executables[1],
            _MARKER: marker,
            # As on machines that set it: codex then prints a backtrace after its error line.
            "RUST_BACKTRACE": "1",
        }
        # yolo is the only Gemini mode that offers its shell tool headless.
        async with running_daemon(
            [root], env, kill_grace_s=2.0, extra_permission_modes=(("gemini", "yolo"),)
        ) as served:
            yield Daemon(served.host, served.port, served.token, root, marker, codex, gemini)
        assert codex.unexpected == []
        assert gemini.unexpected == []


def _marked_processes(marker: str) -> list[tuple[int, str]]:
    """Live processes whose environment carries ``marker``: (pid, command name)."""
    return marked_processes(_MARKER, marker)


def _request(daemon: Daemon, agent: str, prompt: str, **fields: object) -> RunRequest:
    model = GEMINI_MODEL if agent == "gemini" else None
    return RunRequest(agent=agent, prompt=prompt, cwd=str(daemon.root), model=model, **fields)  # type: ignore[arg-type]


async def _run(daemon: Daemon, request: RunRequest) -> tuple[list[AgentEvent], RunFinished]:
    events: list[RunEvent] = []
    with trio.fail_after(_DEADLINE_S):
        async with open_run(daemon.host, daemon.port, daemon.token, request) as stream:
            events.extend([event async for event in stream])
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    return [e for e in events if isinstance(e, AgentEvent)], finished


def _of_kind(events: list[AgentEvent], kind: str) -> list[AgentEvent]:
    return [event for event in events if event.kind == kind]


async def _cancel_mid_tool(daemon: Daemon, request: RunRequest) -> None:
    """Leave the run once its tool's two sleeps run; then nothing of the run may be left."""

    def sleeps_running() -> bool:
        return [c for _, c in _marked_processes(daemon.marker)].count("sleep") == 2

    (daemon.root / "tree.sh").write_text(_TREE_SCRIPT)
    with trio.fail_after(_DEADLINE_S):
        async with open_run(daemon.host, daemon.port, daemon.token, request) as stream:
            async for event in stream:
                if isinstance(event, AgentEvent) and event.kind == "tool_use":
                    break
            await eventually(sleeps_running, "the tool's two sleeps", timeout=_DEADLINE_S)
    await eventually(
        lambda: not _marked_processes(daemon.marker),
        "the run's processes to end",
        timeout=_DEADLINE_S,
    )


async def test_codex_runs_a_command_and_patches_files(daemon: Daemon) -> None:
    """Codex runs the model's command and patch in the root; the run reports both and succeeds."""
    patch = "*** Begin Patch\n*** Add File: hello.py\n+print('hello')\n*** End Patch\n"
    daemon.codex.script(ShellCall("echo hi > f.txt"), Patch(patch), Reply("Done."))
    events, finished = await _run(daemon, _request(daemon, "codex", "write the files"))
    assert finished.outcome == "success", finished.error
    assert finished.final_text == "Done."
    assert (daemon.root / "f.txt").read_text() == "hi\n"
    assert (daemon.root / "hello.py").read_text() == "print('hello')\n"
    uses = _of_kind(events, "tool_use")
    assert [use.tool_name for use in uses] == ["shell", "file_change"]
    assert [r.is_error for r in _of_kind(events, "tool_result")] == [False, False]
    assert _marked_processes(daemon.marker) == []


async def test_codex_resume_carries_the_earlier_turns(daemon: Daemon) -> None:
    """A follow-up with ``resume_session_id`` keeps the thread and sends the earlier turns."""
    daemon.codex.script(Reply("Noted: PINEAPPLE."), Reply("The word was PINEAPPLE."))
    _, first = await _run(daemon, _request(daemon, "codex", "Remember PINEAPPLE."))
    assert first.outcome == "success", first.error
    assert first.session_id is not None
    follow_up = _request(daemon, "codex", "Which word?", resume_session_id=first.session_id)
    _, second = await _run(daemon, follow_up)
    assert second.outcome == "success", second.error
    assert second.session_id == first.session_id
    sent = json.dumps(daemon.codex.main_requests[-1]["input"])
    assert "Remember PINEAPPLE." in sent
    assert "Noted: PINEAPPLE." in sent


async def test_codex_resume_of_an_unknown_thread_says_why(daemon: Daemon) -> None:
    """Codex explains a bad resume id only on stderr (a backtrace may follow): the error says it."""
    unknown = "00000000-0000-4000-8000-000000000000"
    events, finished = await _run(
        daemon, _request(daemon, "codex", "go on", resume_session_id=unknown)
    )
    assert finished.outcome == "error"
    assert finished.error is not None
    assert finished.error.startswith("codex exited with code 1 before its turn ended: Error: ")
    assert f"no rollout found for thread id {unknown}" in finished.error
    assert _of_kind(events, "stderr")


async def test_codex_turn_failed_is_a_failed_run(daemon: Daemon) -> None:
    """A model error ends the run ``error`` with the API's message."""
    daemon.codex.script(ApiError(400, "invalid_request_error", "scripted outage"))
    _, finished = await _run(daemon, _request(daemon, "codex", "go"))
    assert finished.outcome == "error"
    assert finished.error is not None
    assert "scripted outage" in finished.error


async def test_codex_usage_limit_ends_the_run_limited_with_its_reset(daemon: Daemon) -> None:
    """A 429 ``usage_limit_reached`` ends the run ``limited`` at the minute Codex names."""
    resets_at = int(time.time()) + 120
    error = {"type": "usage_limit_reached", "message": "limit", "resets_at": resets_at}
    daemon.codex.script(ApiError(429, body={"error": error}))
    _, finished = await _run(daemon, _request(daemon, "codex", "go"))
    assert finished.outcome == "limited"
    assert finished.limit is not None
    assert finished.limit.resets_at is not None
    # Codex prints the time to the minute; the hold waits out that minute.
    assert resets_at - 60 <= finished.limit.resets_at <= resets_at + 60


async def test_gemini_quota_error_ends_the_run_limited(daemon: Daemon) -> None:
    """A 429 RESOURCE_EXHAUSTED (a daily quota) ends the run ``limited``, with no reset time."""
    error = {
        "code": 429,
        "message": "You exceeded your current quota.",
        "status": "RESOURCE_EXHAUSTED",
    }
    daemon.gemini.script(ApiError(429, body={"error": error}))
    _, finished = await _run(daemon, _request(daemon, "gemini", "go"))
    assert finished.outcome == "limited"
    assert finished.limit is not None
    assert finished.limit.resets_at is None


async def test_codex_run_cancelled_mid_command_leaves_no_process(daemon: Daemon) -> None:
    """Leaving the run while Codex runs a process tree ends every process of the run.

    Codex's sandbox runs the command in a session of its own that dies with Codex: a group kill
    alone passes this test (checked by mutation), unlike Gemini's below.
    """
    daemon.codex.script(ShellCall("sh tree.sh"), Reply("never reached"))
    await _cancel_mid_tool(daemon, _request(daemon, "codex", "run the tree"))
    assert daemon.codex.pending_steps == 1


async def test_gemini_writes_a_file_in_auto_edit(daemon: Daemon) -> None:
    """Gemini in its default mode writes the file the model asks for; the run succeeds."""
    write = ToolCall("write_file", {"file_path": "hello.py", "content": "print('hello')\n"})
    daemon.gemini.script(write, Reply("Wrote hello.py."))
    events, finished = await _run(daemon, _request(daemon, "gemini", "write hello.py"))
    assert finished.outcome == "success", finished.error
    assert finished.final_text == "Wrote hello.py."
    assert (daemon.root / "hello.py").read_text() == "print('hello')\n"
    [use] = _of_kind(events, "tool_use")
    assert use.tool_name == "write_file"
    assert _marked_processes(daemon.marker) == []


async def test_gemini_resume_carries_the_earlier_turns(daemon: Daemon) -> None:
    """A follow-up with ``resume_session_id`` keeps the session and sends the earlier turns."""
    daemon.gemini.script(Reply("Noted: PINEAPPLE."), Reply("The word was PINEAPPLE."))
    _, first = await _run(daemon, _request(daemon, "gemini", "Remember PINEAPPLE."))
    assert first.outcome == "success", first.error
    assert first.session_id is not None
    follow_up = _request(daemon, "gemini", "Which word?", resume_session_id=first.session_id)
    _, second = await _run(daemon, follow_up)
    assert second.outcome == "success", second.error
    assert second.session_id == first.session_id
    sent = json.dumps(daemon.gemini.main_requests[-1]["contents"])
    assert "Remember PINEAPPLE." in sent
    assert "Noted: PINEAPPLE." in sent


async def test_gemini_run_cancelled_mid_command_leaves_no_process(daemon: Daemon) -> None:
    """Leaving a yolo run while Gemini's shell runs a process tree ends every process of it.

    Gemini's shell runs the command in a session of its own that outlives a group kill: this
    needs the daemon's escape nets (it fails with a group-only kill, checked by mutation).
    """
    daemon.gemini.script(ShellCommand("sh tree.sh"), Reply("never reached"))
    request = _request(daemon, "gemini", "run the tree", permission_mode="yolo")
    await _cancel_mid_tool(daemon, request)
    assert daemon.gemini.pending_steps == 1
