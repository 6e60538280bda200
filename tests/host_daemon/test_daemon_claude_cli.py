"""The real Claude Code CLI, run by the daemon against a scripted model on loopback.

Every path is real: the daemon's TCP server and handshake, the process group, the CLI's own
tool execution and file edits, cancellation while a tool runs, and a resumed conversation.
Each run's environment carries a unique marker variable, so "nothing of the run is left" is
checked by scanning ``/proc/*/environ`` for it (which also finds the tool processes that Claude
Code starts in sessions of their own).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import time
import uuid
from collections.abc import AsyncIterator

import attrs
import pytest
import trio
from _support.claude_cli import claude_env, claude_executable
from _support.daemon import running_daemon
from _support.polling import eventually
from _support.procs import marked_processes
from _support.scripted_model import (
    ApiError,
    BashCall,
    Hold,
    Reply,
    ScriptedModel,
    ToolCall,
    open_scripted_model,
)

from host_daemon import AgentEvent, RunEvent, RunFinished, RunRequest, RunStarted, open_run
from host_daemon._proc import read_stat

pytestmark = pytest.mark.claude_cli

_MARKER = "CODING_AGENT_TEST_RUN"
_DEADLINE_S = 60.0
# The cancellation test's process tree: a plain sleep and one that ignores SIGTERM, both in the
# background of the tool's shell, which waits for them; and a third that escapes: a new session
# (out of every process group Claude knows), orphaned at once (out of Claude's process tree:
# its parent is the subreaper, the daemon), ignoring SIGTERM. Claude's own cleanup on SIGTERM
# cannot see it: only the daemon's nets (the run marker in its environment) end it.
_TREE_SCRIPT = """\
sh -c 'trap "" TERM; exec sleep 3001' &
sleep 3002 &
(setsid sh -c 'trap "" TERM; echo $$ > escaped.pid.tmp; mv escaped.pid.tmp escaped.pid; \
exec sleep 3003' </dev/null >/dev/null 2>&1 &)
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


@pytest.fixture(scope="session")
def claude() -> str:
    """The pinned Claude Code binary (installed on first use; never skipped)."""
    return claude_executable()


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with open_scripted_model() as scripted:
        yield scripted
        assert scripted.unexpected == []


@pytest.fixture
async def daemon(
    claude: str, model: ScriptedModel, tmp_path: pathlib.Path, subreaper: None
) -> AsyncIterator[Daemon]:
    """A daemon on 127.0.0.1:0 with one root, running Claude with the scripted model."""
    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    # The user's own allow rule for the cancellation test's script, as a developer would set it.
    settings = {"permissions": {"allow": ["Bash(sh tree.sh)"]}}
    (home / ".claude" / "settings.json").write_text(json.dumps(settings))
    marker = uuid.uuid4().hex
    env = dict(claude_env(model.base_url, home), CLAUDE_PATH=claude, **{_MARKER: marker})
    # A 429 ends the run at once (by default Claude retries it for minutes).
    env["CLAUDE_CODE_MAX_RETRIES"] = "0"
    async with running_daemon([root], env, kill_grace_s=2.0) as served:
        yield Daemon(served.host, served.port, served.token, root, marker)


def _marked_processes(marker: str) -> list[tuple[int, str]]:
    """Live processes whose environment carries ``marker``: (pid, command name)."""
    return marked_processes(_MARKER, marker)


async def _run(daemon: Daemon, request: RunRequest) -> list[RunEvent]:
    events: list[RunEvent] = []
    with trio.fail_after(_DEADLINE_S):
        async with open_run(daemon.host, daemon.port, daemon.token, request) as stream:
            events.extend([event async for event in stream])
    return events


def _finished(events: list[RunEvent]) -> RunFinished:
    assert isinstance(events[-1], RunFinished)
    return events[-1]


async def test_claude_edits_a_file_in_the_root(daemon: Daemon, model: ScriptedModel) -> None:
    """A run whose model writes then edits a file leaves that file with the edited content."""
    target = daemon.root / "hello.py"
    model.script(
        ToolCall("Write", {"file_path": str(target), "content": "print('hello')\n"}),
        ToolCall(
            "Edit",
            {"file_path": str(target), "old_string": "hello", "new_string": "hello, world"},
        ),
        Reply("Wrote hello.py."),
    )
    request = RunRequest(agent="claude", prompt="write hello.py", cwd=str(daemon.root))
    events = await _run(daemon, request)
    finished = _finished(events)
    assert finished.outcome == "success", finished.error
    assert finished.exit_code == 0
    assert finished.final_text == "Wrote hello.py."
    assert target.read_text() == "print('hello, world')\n"
    results = [e for e in events if isinstance(e, AgentEvent) and e.kind == "tool_result"]
    assert [r.is_error for r in results] == [False, False]
    assert _marked_processes(daemon.marker) == []


def _escaped_from(leader: int, pid: int) -> bool:
    """Whether ``pid`` lives outside ``leader``'s session and process tree."""
    stat = read_stat(pid)
    assert stat is not None, f"process {pid} is gone already"
    ancestors = set()
    parent = stat.ppid
    while parent > 1 and (parent_stat := read_stat(parent)) is not None:
        ancestors.add(parent)
        parent = parent_stat.ppid
    return stat.sid == pid and stat.pgid == pid and leader not in ancestors


def _gone(pid: int) -> bool:
    stat = read_stat(pid)
    return stat is None or not stat.alive


def _kill_if_alive(pid: int) -> None:
    if not _gone(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_claude_run_cancelled_mid_tool_leaves_no_process(
    daemon: Daemon, model: ScriptedModel
) -> None:
    """Leaving a run mid-tool ends its whole tree, a tool process that escaped Claude included."""
    (daemon.root / "tree.sh").write_text(_TREE_SCRIPT)
    model.script(BashCall("sh tree.sh"), Reply("never reached"))
    request = RunRequest(agent="claude", prompt="run the tree", cwd=str(daemon.root))
    pid_file = daemon.root / "escaped.pid"

    def sleeps_running() -> bool:
        return [c for _, c in _marked_processes(daemon.marker)].count("sleep") == 3

    with trio.fail_after(_DEADLINE_S):
        async with open_run(daemon.host, daemon.port, daemon.token, request) as stream:
            async for event in stream:
                if isinstance(event, RunStarted):
                    leader = event.pid
                if isinstance(event, AgentEvent) and event.kind == "tool_use":
                    break
            await eventually(sleeps_running, "the tool's three sleeps", timeout=_DEADLINE_S)
            await eventually(pid_file.exists, "the escaped process's pid file", timeout=_DEADLINE_S)
            escaped = int(pid_file.read_text())
            assert _escaped_from(leader, escaped)
    try:
        await eventually(
            lambda: not _marked_processes(daemon.marker),
            "the run's processes to end",
            timeout=_DEADLINE_S,
        )
        await eventually(
            lambda: _gone(escaped), f"the escaped process {escaped} to end", timeout=_DEADLINE_S
        )
    finally:
        _kill_if_alive(escaped)  # a failed test must not leave it behind
    assert model.pending_steps == 1


async def test_claude_resumed_conversation_carries_the_earlier_turns(
    daemon: Daemon, model: ScriptedModel
) -> None:
    """A follow-up run with ``resume_session_id`` sends the model the first run's turns."""
    model.script(Reply("Noted: the word is PINEAPPLE."), Reply("The word was PINEAPPLE."))
    first = _finished(
        await _run(
            daemon,
            RunRequest(agent="claude", prompt="Remember PINEAPPLE.", cwd=str(daemon.root)),
        )
    )
    assert first.outcome == "success", first.error
    assert first.session_id is not None
    second_events = await _run(
        daemon,
        RunRequest(
            agent="claude",
            prompt="Which word?",
            cwd=str(daemon.root),
            resume_session_id=first.session_id,
        ),
    )
    second = _finished(second_events)
    assert second.outcome == "success", second.error
    assert second.final_text == "The word was PINEAPPLE."
    sent = json.dumps(model.main_requests[-1]["messages"])
    assert "Remember PINEAPPLE." in sent
    assert "Noted: the word is PINEAPPLE." in sent
    assert "Which word?" in sent
    [init] = [e for e in second_events if isinstance(e, AgentEvent) and e.kind == "init"]
    assert init.session_id is not None


async def test_claude_default_mode_denies_instead_of_asking(
    daemon: Daemon, model: ScriptedModel
) -> None:
    """In the default mode a command that would need approval is denied and the run goes on."""
    model.script(BashCall("sh -c 'echo denied > nope.txt'"), Reply("It was denied."))
    request = RunRequest(agent="claude", prompt="try it", cwd=str(daemon.root))
    events = await _run(daemon, request)
    finished = _finished(events)
    assert finished.outcome == "success", finished.error
    assert not (daemon.root / "nope.txt").exists()
    [result] = [e for e in events if isinstance(e, AgentEvent) and e.kind == "tool_result"]
    assert result.is_error is True
    [usage] = [e for e in events if isinstance(e, AgentEvent) and e.kind == "usage"]
    assert usage.data is not None
    assert [d["tool_name"] for d in usage.data["permission_denials"]] == ["Bash"]


async def test_claude_usage_limit_ends_the_run_limited(
    daemon: Daemon, model: ScriptedModel
) -> None:
    """A 429 ``rate_limit_error`` (unified status ``rejected``) ends the run ``limited``, in its
    session; a 529 overloaded is an ordinary error."""
    reset = str(int(time.time()) + 5)
    headers = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": reset,
    }
    model.script(
        ApiError(429, "rate_limit_error", "This request would exceed your rate limit.", headers),
        ApiError(529, "overloaded_error", "Overloaded"),
    )
    request = RunRequest(agent="claude", prompt="hello", cwd=str(daemon.root))
    limited = _finished(await _run(daemon, request))
    assert limited.outcome == "limited"
    assert limited.limit is not None
    assert limited.limit.source == "claude api_error 429"
    assert limited.session_id is not None
    overloaded = _finished(await _run(daemon, request))
    assert overloaded.outcome == "error"
    assert overloaded.limit is None


async def test_claude_run_timed_out_while_the_model_thinks(
    daemon: Daemon, model: ScriptedModel
) -> None:
    """A run whose model call outlasts ``timeout_s`` ends ``timed_out`` with nothing left."""
    hold = Hold(Reply("too late"))
    model.script(hold)
    request = RunRequest(agent="claude", prompt="think", cwd=str(daemon.root), timeout_s=3.0)
    try:
        events = await _run(daemon, request)
    finally:
        hold.release()
    assert hold.reached.is_set()
    finished = _finished(events)
    assert finished.outcome == "timed_out"
    assert finished.error == "the run timed out"
    [init] = [e for e in events if isinstance(e, AgentEvent) and e.kind == "init"]
    assert finished.session_id == init.session_id
    await eventually(
        lambda: not _marked_processes(daemon.marker),
        "the run's processes to end",
        timeout=_DEADLINE_S,
    )


async def test_claude_reads_every_bound_option_and_an_option_like_prompt_as_text(
    daemon: Daemon, model: ScriptedModel
) -> None:
    """The real CLI parses the ``--option=VALUE`` words, and a prompt of options stays a prompt."""
    prompt = "--permission-mode=bypassPermissions --model=evil -- --help"
    model.script(Reply("Read it as text."))
    events = await _run(
        daemon,
        RunRequest(
            agent="claude",
            prompt=prompt,
            cwd=str(daemon.root),
            model="scripted-model-1",
            max_turns=3,
            max_budget_usd=5.0,
        ),
    )
    assert _finished(events).outcome == "success", _finished(events).error
    [init] = [e for e in events if isinstance(e, AgentEvent) and e.kind == "init"]
    assert init.data is not None
    assert init.data["model"] == "scripted-model-1"
    assert init.data["permissionMode"] == "acceptEdits"
    assert model.main_requests[-1]["model"] == "scripted-model-1"
    assert prompt in json.dumps(model.main_requests[-1]["messages"])
