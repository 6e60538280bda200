"""Live Claude sessions through a real daemon: reuse, steering, interrupt, idle close, the ends.

Every test checks ``/proc`` for the agent's processes (the marker in their environment): a
session that should be gone has no process left, and none outlives the daemon (the fixture).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pathlib
import struct
import termios
from collections.abc import AsyncIterator

import pytest
import trio
from _support.claude_cli import claude_executable
from _support.daemon import install_stand_in_agent, running_daemon
from _support.live_claude import (
    DEADLINE_S,
    LiveDaemon,
    allow_all,
    finished,
    live_daemon,
    run_started,
    run_turn,
)
from _support.polling import eventually
from _support.scripted_model import BashCall, Hold, Reply, ScriptedModel, open_scripted_model

from host_daemon import (
    DaemonBusy,
    DaemonUnavailable,
    InputAccepted,
    PermissionDecision,
    PermissionRequest,
    PermissionResolved,
    RequestRejected,
    RunEvent,
    RunRequest,
    RunStream,
    WorktreeCreate,
    WorktreeDiscard,
    WorktreeInfo,
    close_session,
    create_worktree,
    discard_worktree,
    open_run,
    probe,
)

pytestmark = pytest.mark.claude_cli

_LONG = 'python3 -c "import time; time.sleep(60)"'
_WAIT_FOR_GO = "python3 -c \"import os, time\nwhile not os.path.exists('go'): time.sleep(0.02)\""


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


def _history(model: ScriptedModel) -> str:
    """The last model call's messages, as text."""
    return json.dumps(model.main_requests[-1]["messages"])


def _commands(daemon: LiveDaemon, needle: str) -> list[int]:
    """Pids of the daemon's agent processes whose command line holds ``needle``."""
    found = []
    for pid, _ in daemon.leftovers():
        try:
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle.encode() in cmdline:
            found.append(pid)
    return found


def _stdin_unread(pid: int) -> int:
    """Bytes written to process ``pid``'s stdin pipe that it has not read yet."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])
    finally:
        os.close(fd)


async def test_second_turn_reuses_the_process_and_conversation(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """The next turn goes to the same process and session; the model sees the earlier turn."""
    model.script(Reply("one"), Reply("two"))
    first = await run_turn(daemon, daemon.request("remember FIRST-PROMPT"))
    second = await run_turn(daemon, daemon.request("and now?"))
    assert run_started(second).reused is True
    assert run_started(second).pid == run_started(first).pid
    assert finished(second).session_id == finished(first).session_id is not None
    assert (finished(second).final_text, finished(second).session_open) == ("two", True)
    assert "FIRST-PROMPT" in _history(model)


async def test_steer_while_a_tool_runs_reaches_the_same_turn(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """A steering line sent while a tool runs is accepted and seen by the model in the turn."""
    model.script(BashCall(_WAIT_FOR_GO), Reply("steered"))
    accepted: list[InputAccepted] = []

    async def steer(stream: RunStream, event: RunEvent) -> None:
        if isinstance(event, PermissionRequest):
            await stream.decide(PermissionDecision(request_id=event.request_id, behavior="allow"))
        elif isinstance(event, PermissionResolved):
            await eventually(lambda: bool(_commands(daemon, "exists('go')")), "the tool running")
            await stream.steer("STEERING: also say hello")
        elif isinstance(event, InputAccepted):
            accepted.append(event)
            pid = stream.started.pid
            await eventually(lambda: _stdin_unread(pid) == 0, "claude read the steering line")
            (daemon.root / "go").write_text("")

    events = await run_turn(daemon, daemon.request("wait for go"), steer)
    assert accepted == [InputAccepted(steered=True)]
    end = finished(events)
    assert (end.outcome, end.final_text, end.session_open) == ("success", "steered", True)
    assert "STEERING: also say hello" in _history(model)
    assert len(model.main_requests) == 2  # merged into the running turn, not a turn of its own


async def test_interrupt_mid_tool_leaves_no_process_and_the_talk_goes_on(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """An interrupt stops a running tool (gone from /proc), ends the turn ``interrupted``; the
    next turn is in the same conversation."""
    model.script(BashCall(_LONG), Reply("after the interrupt"))

    async def interrupt(stream: RunStream, event: RunEvent) -> None:
        if isinstance(event, PermissionRequest):
            await stream.decide(PermissionDecision(request_id=event.request_id, behavior="allow"))
        elif isinstance(event, PermissionResolved):
            await eventually(lambda: bool(_commands(daemon, "time.sleep(60)")), "the tool running")
            await stream.interrupt()

    events = await run_turn(daemon, daemon.request("run FIRST-LONG"), interrupt)
    end = finished(events)
    assert (end.outcome, end.session_open) == ("interrupted", True)
    await eventually(lambda: not _commands(daemon, "time.sleep(60)"), "the tool gone", timeout=10)
    following = await run_turn(daemon, daemon.request("go on"))
    assert run_started(following).reused is True
    assert finished(following).final_text == "after the interrupt"
    assert "FIRST-LONG" in _history(model)


async def test_idle_session_closes_and_the_next_turn_resumes(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """After the idle timeout the process is gone; the next turn resumes the conversation."""
    model.script(Reply("one"), Reply("resumed"))
    first = await run_turn(daemon, daemon.request("remember IDLE-FIRST", idle_timeout_s=0.5))
    pid = run_started(first).pid
    await eventually(lambda: not any(p == pid for p, _ in daemon.leftovers()), "idle close")
    session = finished(first).session_id
    second = await run_turn(daemon, daemon.request("again", resume_session_id=session))
    assert run_started(second).reused is False
    assert run_started(second).pid != pid
    assert (finished(second).session_id, finished(second).final_text) == (session, "resumed")
    assert "IDLE-FIRST" in _history(model)


async def test_client_gone_mid_turn_ends_the_whole_group(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """A client that leaves mid-tool takes the session with it: no process is left."""
    model.script(BashCall(_LONG))
    with trio.fail_after(DEADLINE_S):
        async with open_run(
            daemon.host, daemon.port, daemon.token, daemon.request("run long")
        ) as stream:
            async for event in stream:
                await allow_all(stream, event)
                if isinstance(event, PermissionResolved):
                    await eventually(lambda: bool(_commands(daemon, "time.sleep(60)")), "tool")
                    break
    await eventually(lambda: not daemon.leftovers(), "no process left", timeout=15)
    # The session leaves the registry once its group is reaped, a moment after the processes.
    with trio.fail_after(15):
        while (await probe(daemon.host, daemon.port, daemon.token)).live_sessions:  # noqa: ASYNC110 -- another connection: nothing to wait on
            await trio.sleep(0.05)


async def test_session_close_ends_the_session(daemon: LiveDaemon, model: ScriptedModel) -> None:
    """``session_close`` ends an idle session's process; closing again says none was open."""
    model.script(Reply("one"))
    events = await run_turn(daemon, daemon.request("hello", key="closing"))
    assert finished(events).session_open is True
    closed = await close_session(daemon.host, daemon.port, daemon.token, "closing")
    assert closed.closed is True
    assert daemon.leftovers() == []
    again = await close_session(daemon.host, daemon.port, daemon.token, "closing")
    assert again.closed is False


async def test_max_sessions_closes_the_longest_idle(
    claude: str, model: ScriptedModel, tmp_path: pathlib.Path, subreaper: None
) -> None:
    """With room for two sessions, a third closes the one idle longest."""
    model.script(Reply("a"), Reply("b"), Reply("c"))
    async with live_daemon(claude, model, tmp_path, max_live_sessions=2) as daemon:
        pids = []
        for key in ("a", "b", "c"):
            events = await run_turn(daemon, daemon.request(f"hello {key}", key=key))
            pids.append(run_started(events).pid)
        alive = {pid for pid, _ in daemon.leftovers()}
        assert pids[0] not in alive
        assert {pids[1], pids[2]} <= alive
        info = await probe(daemon.host, daemon.port, daemon.token)
        assert (info.live_sessions, info.max_live_sessions) == (2, 2)
    await eventually(lambda: not daemon.leftovers(), "no process left", timeout=10)


async def test_live_request_for_a_non_live_agent_is_refused(tmp_path: pathlib.Path) -> None:
    """The stand-in agent cannot run live: the probe says so, and a live turn is refused."""
    agent = install_stand_in_agent(tmp_path)
    async with running_daemon([tmp_path], {"CLAUDE_PATH": agent}) as daemon:
        info = await probe(daemon.host, daemon.port, daemon.token)
        claude_info = next(agent for agent in info.agents if agent.name == "claude")
        assert claude_info.live is False
        assert "--permission-prompt-tool" in (claude_info.live_note or "")
        request = RunRequest(
            agent="claude", prompt="hi", cwd=str(tmp_path), live=True, session_key="k"
        )
        with pytest.raises(RequestRejected, match="cannot run live") as refused:
            async with open_run(daemon.host, daemon.port, daemon.token, request):
                pass
        assert refused.value.code == "live_unsupported"


async def test_probe_says_the_real_claude_runs_live(daemon: LiveDaemon) -> None:
    """The pinned Claude Code CLI passes the probe's live check."""
    # A cold node on a loaded host may take seconds to answer: the probe waits for it.
    info = await probe(daemon.host, daemon.port, daemon.token, timeout=40.0, cli_wait_s=30.0)
    claude_info = next(agent for agent in info.agents if agent.name == "claude")
    assert (claude_info.live, claude_info.live_note) == (True, "stream-json control on stdin")


async def test_interrupt_with_a_request_pending_resolves_it_closed(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """Interrupting while a permission request waits ends the turn; the request is ``closed``."""
    model.script(BashCall(_LONG), Reply("next"))

    async def interrupt(stream: RunStream, event: RunEvent) -> None:
        if isinstance(event, PermissionRequest):
            await stream.interrupt()

    events = await run_turn(daemon, daemon.request("ask then stop"), interrupt)
    resolved = [e for e in events if isinstance(e, PermissionResolved)]
    assert [(r.behavior, r.decided_by) for r in resolved] == [("deny", "closed")]
    assert (finished(events).outcome, finished(events).session_open) == ("interrupted", True)
    following = await run_turn(daemon, daemon.request("go on"))
    assert finished(following).final_text == "next"
    assert not _commands(daemon, "time.sleep(60)")


async def test_graceful_shutdown_kills_a_live_turn_after_the_grace(
    claude: str, model: ScriptedModel, tmp_path: pathlib.Path, subreaper: None
) -> None:
    """On shutdown a turn in flight gets the grace, then ends ``killed``; no process is left."""
    model.script(BashCall(_LONG))
    async with live_daemon(claude, model, tmp_path, grace_s=0.5) as daemon:
        with trio.fail_after(DEADLINE_S):
            async with open_run(
                daemon.host, daemon.port, daemon.token, daemon.request("run long")
            ) as stream:
                async for event in stream:
                    await allow_all(stream, event)
                    if isinstance(event, PermissionResolved):
                        await eventually(lambda: bool(_commands(daemon, "time.sleep(60)")), "tool")
                        daemon.shutdown.set()
        assert stream.finished is not None
        assert (stream.finished.outcome, stream.finished.session_open) == ("killed", False)
    await eventually(lambda: not daemon.leftovers(), "no process left", timeout=15)


@pytest.fixture
def worktrees(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path.resolve() / "state" / "worktrees"


async def test_worktree_discard_closes_the_keys_session_first(
    claude: str,
    model: ScriptedModel,
    tmp_path: pathlib.Path,
    worktrees: pathlib.Path,
    subreaper: None,
) -> None:
    """Discarding a task's worktree ends the live session of the same key before git runs."""
    model.script(Reply("in the worktree"))
    async with live_daemon(claude, model, tmp_path, worktrees_dir=str(worktrees)) as daemon:
        repo = daemon.root / "repo"
        repo.mkdir()
        (repo / "README").write_text("readme\n")
        git_env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "T",
            "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "T",
            "GIT_COMMITTER_EMAIL": "t@example.invalid",
        }
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "i"]):
            await trio.run_process(["git", *args], cwd=repo, env=git_env)
        key = "wt-task"
        create = WorktreeCreate(key=key, cwd=str(repo), branch="coding-agent/wt-task")
        info = await create_worktree(daemon.host, daemon.port, daemon.token, create)
        assert isinstance(info, WorktreeInfo)
        request = daemon.request("hello", key=key, worktree=key, cwd=str(repo))
        events = await run_turn(daemon, request)
        assert run_started(events).cwd == info.path
        pid = run_started(events).pid
        await discard_worktree(daemon.host, daemon.port, daemon.token, WorktreeDiscard(key=key))
        assert not any(p == pid for p, _ in daemon.leftovers())
        assert (await probe(daemon.host, daemon.port, daemon.token)).live_sessions == 0
    await eventually(lambda: not daemon.leftovers(), "no process left", timeout=10)


async def test_turn_timeout_ends_the_session(daemon: LiveDaemon, model: ScriptedModel) -> None:
    """A turn past its ``timeout_s`` ends ``timed_out`` and takes the whole session with it."""
    model.script(BashCall(_LONG))
    events = await run_turn(daemon, daemon.request("run long", timeout_s=3), allow_all)
    assert (finished(events).outcome, finished(events).session_open) == ("timed_out", False)
    await eventually(lambda: not daemon.leftovers(), "no process left", timeout=15)
    assert (await probe(daemon.host, daemon.port, daemon.token)).live_sessions == 0


async def test_output_limit_ends_the_session(
    claude: str, model: ScriptedModel, tmp_path: pathlib.Path, subreaper: None
) -> None:
    """A session whose output passes the daemon's limit is ended (no turn could end after it)."""
    model.script(Reply("never seen"))
    async with live_daemon(claude, model, tmp_path, max_output_bytes=2000) as daemon:
        events = await run_turn(daemon, daemon.request("hello"))
        end = finished(events)
        assert (end.outcome, end.session_open, end.output_truncated) == ("killed", False, True)
        await eventually(lambda: not daemon.leftovers(), "no process left", timeout=15)


async def test_second_turn_for_a_key_in_a_turn_is_busy(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """While a key's turn runs, another turn for that key is refused ``busy``; the first ends."""
    hold = Hold(Reply("first done"))
    model.script(hold)
    with trio.fail_after(DEADLINE_S):
        async with open_run(
            daemon.host, daemon.port, daemon.token, daemon.request("first")
        ) as stream:
            await hold.reached.wait()
            with pytest.raises(DaemonBusy, match="in a turn") as refused:
                async with open_run(
                    daemon.host, daemon.port, daemon.token, daemon.request("second")
                ):
                    pass
            assert refused.value.code == "busy"
            hold.release()
            events = [event async for event in stream]
    assert finished(events).final_text == "first done"


async def test_graceful_shutdown_closes_idle_sessions_politely(
    claude: str,
    model: ScriptedModel,
    tmp_path: pathlib.Path,
    subreaper: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A graceful shutdown closes idle live sessions politely: stdin closed, the agent exits by
    itself (not killed), nothing left."""
    caplog.set_level(logging.INFO, logger="host_daemon")
    model.script(Reply("idle now"))
    async with live_daemon(claude, model, tmp_path) as daemon:
        events = await run_turn(daemon, daemon.request("hello"))
        assert finished(events).session_open is True
        daemon.shutdown.set()

        def ends() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.getMessage() == "live session ended"]

        await eventually(lambda: bool(ends()), "the session's end logged", timeout=15)
        assert not daemon.leftovers()
    assert [r.fields["reason"] for r in ends()] == ["exited"]  # type: ignore[attr-defined]


async def test_no_live_daemon_refuses_live_turns(
    claude: str, model: ScriptedModel, tmp_path: pathlib.Path, subreaper: None
) -> None:
    """``--no-live``: the probe says why, and a live turn is refused ``live_unsupported``."""
    async with live_daemon(claude, model, tmp_path, live=False) as daemon:
        info = await probe(daemon.host, daemon.port, daemon.token)
        claude_info = next(agent for agent in info.agents if agent.name == "claude")
        assert (claude_info.live, claude_info.live_note) == (False, "disabled by --no-live")
        with pytest.raises(RequestRejected, match="disabled by --no-live") as refused:
            async with open_run(daemon.host, daemon.port, daemon.token, daemon.request("hi")):
                pass
        assert refused.value.code == "live_unsupported"
    assert daemon.leftovers() == []


async def test_sends_on_a_finished_stream_are_refused(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """Once the turn finished, ``steer``/``interrupt`` on its stream raise ``connection_lost``."""
    model.script(Reply("done"))
    with trio.fail_after(DEADLINE_S):
        async with open_run(daemon.host, daemon.port, daemon.token, daemon.request("hi")) as stream:
            events = [event async for event in stream]
            assert finished(events).outcome == "success"
            with pytest.raises(DaemonUnavailable, match="the run has finished") as lost:
                await stream.steer("too late")
            assert lost.value.code == "connection_lost"
            with pytest.raises(DaemonUnavailable, match="the run has finished"):
                await stream.interrupt()
