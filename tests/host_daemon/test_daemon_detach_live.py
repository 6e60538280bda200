"""A detachable live turn with the real Claude Code CLI: a pending permission request survives
the stream's end, is replayed on attach and decided there."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import AsyncIterator

import pytest
import trio
from _support.claude_cli import claude_executable
from _support.daemon import wait_detached_runs
from _support.live_claude import DEADLINE_S, LiveDaemon, live_daemon
from _support.polling import eventually
from _support.scripted_model import BashCall, Reply, ScriptedModel, open_scripted_model

from host_daemon import (
    PermissionDecision,
    PermissionRequest,
    PermissionResolved,
    RunEvent,
    RunFinished,
    RunStarted,
    attach_run,
    open_run,
)
from host_daemon._proc import read_stat

pytestmark = pytest.mark.claude_cli

_WRITE = "python3 -c \"open('f.txt', 'w').write('written')\""


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


async def test_pending_request_survives_a_detach_and_is_decided_after_attach(
    daemon: LiveDaemon, model: ScriptedModel
) -> None:
    """Detached while a Bash request waits: the agent lives on; attached, the request comes
    again (same number), the decision reaches the agent and the turn ends ``success``."""
    model.script(BashCall(_WRITE), Reply("done"))
    run_id = uuid.uuid4().hex
    first: list[RunEvent] = []
    with trio.fail_after(DEADLINE_S):
        async with open_run(
            daemon.host, daemon.port, daemon.token, daemon.request("write f.txt", run_id=run_id)
        ) as stream:
            async for event in stream:
                first.append(event)
                if isinstance(event, PermissionRequest):
                    break
        await wait_detached_runs(daemon.host, daemon.port, daemon.token, 1, DEADLINE_S)
    started, asked = first[0], first[-1]
    assert isinstance(started, RunStarted)
    assert isinstance(asked, PermissionRequest)
    agent = read_stat(started.pid)
    assert agent is not None
    assert agent.alive
    after = asked.seq - 1 if asked.seq is not None else -1
    replayed: list[RunEvent] = []
    with trio.fail_after(DEADLINE_S):
        async with attach_run(daemon.host, daemon.port, daemon.token, run_id, after) as stream:
            assert stream.attached is not None
            assert stream.attached.live
            async for event in stream:
                replayed.append(event)
                if isinstance(event, PermissionRequest):
                    decision = PermissionDecision(
                        request_id=event.request_id, behavior="allow", decider="test"
                    )
                    await stream.decide(decision)
    assert replayed[0] == asked
    assert [e.seq for e in replayed] == list(range(after + 1, after + 1 + len(replayed)))  # type: ignore[union-attr]
    resolved = [e for e in replayed if isinstance(e, PermissionResolved)]
    assert [(r.request_id, r.behavior, r.decided_by) for r in resolved] == [
        (asked.request_id, "allow", "client")
    ]
    end = replayed[-1]
    assert isinstance(end, RunFinished)
    assert (end.outcome, end.session_open, end.final_text) == ("success", True, "done")
    assert (daemon.root / "f.txt").read_text() == "written"
