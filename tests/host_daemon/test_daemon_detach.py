"""Detachable runs on a real daemon: numbered frames, detach, replay, takeover, cancel, grace.

The agent is the stand-in ``claude`` (``gated`` prompts wait for files in the project, so the
test decides when each part of the output comes); process groups are checked in ``/proc``.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import stat
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import trio
from _support.daemon import (
    RunningDaemon,
    install_stand_in_agent,
    running_daemon,
    wait_detached_runs,
)
from _support.polling import eventually

import host_daemon
from host_daemon import (
    AgentEvent,
    AuthenticationFailed,
    DaemonConfig,
    DaemonUnavailable,
    RequestRejected,
    RunEvent,
    RunFinished,
    RunRequest,
    RunStarted,
    RunStream,
    attach_run,
    cancel_run,
    open_run,
    serve_daemon,
)
from host_daemon._detach import ActiveRun, DetachableRun, Detachments
from host_daemon._plan import RequestError
from host_daemon._proc import read_stat
from host_daemon._spool import Spool

DEADLINE = 30.0  # generous: the machine is shared and loaded


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "root"
    (path / "project").mkdir(parents=True)
    return path


@pytest.fixture
def project(root: pathlib.Path) -> pathlib.Path:
    return root / "project"


@pytest.fixture
def state_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def agent_env(tmp_path: pathlib.Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return {
        "CLAUDE_PATH": install_stand_in_agent(bin_dir),
        "CODEX_PATH": str(tmp_path / "no-codex"),
        "GEMINI_PATH": str(tmp_path / "no-gemini"),
    }


@pytest.fixture
async def daemon(
    root: pathlib.Path, agent_env: dict[str, str], state_dir: pathlib.Path
) -> AsyncIterator[RunningDaemon]:
    async with running_daemon([root], agent_env, state_dir=str(state_dir), kill_grace_s=1.0) as d:
        yield d


def new_run_id() -> str:
    return uuid.uuid4().hex


def request(prompt: str, run_id: str | None) -> RunRequest:
    return RunRequest(agent="claude", prompt=prompt, cwd="project", run_id=run_id)


def alive(pid: int) -> bool:
    stat_ = read_stat(pid)
    return stat_ is not None and stat_.alive


async def wait_gone(*pids: int) -> None:
    await eventually(lambda: not any(alive(pid) for pid in pids), f"pids {pids} gone")


def text(event: RunEvent) -> str | None:
    return event.text if isinstance(event, AgentEvent) and event.kind == "text" else None


def group_pids(events: list[RunEvent]) -> tuple[int, int]:
    """The stand-in's ``pids <leader> <grandchild>`` text."""
    for event in events:
        if (said := text(event)) is not None and said.startswith("pids "):
            leader, child = said.split()[1:]
            return int(leader), int(child)
    raise AssertionError(f"no pids in {events}")


async def read_until(stream: RunStream, wanted: str) -> list[RunEvent]:
    """The stream's events up to and including the text ``wanted``."""
    events: list[RunEvent] = []
    with trio.fail_after(DEADLINE):
        async for event in stream:
            events.append(event)
            if text(event) == wanted:
                return events
    raise AssertionError(f"the run ended before {wanted!r}: {events}")


async def start_detached(
    d: RunningDaemon, prompt: str, wanted: str
) -> tuple[str, list[RunEvent], tuple[int, int]]:
    """Start a detachable run, read up to ``wanted``, drop the stream; the run is detached."""
    run_id = new_run_id()
    async with open_run(d.host, d.port, d.token, request(prompt, run_id)) as stream:
        events = await read_until(stream, wanted)
    await wait_detached(d, 1)
    return run_id, events, group_pids(events)


async def detached_runs(d: RunningDaemon) -> int:
    return (await host_daemon.probe(d.host, d.port, d.token)).detached_runs


async def wait_detached(d: RunningDaemon, count: int) -> None:
    await wait_detached_runs(d.host, d.port, d.token, count, DEADLINE)


async def attach_all(d: RunningDaemon, run_id: str, after_seq: int) -> list[RunEvent]:
    with trio.fail_after(DEADLINE):
        async with attach_run(d.host, d.port, d.token, run_id, after_seq) as stream:
            return [event async for event in stream]


def spool_frames(state_dir: pathlib.Path, run_id: str) -> list[dict[str, object]]:
    path = state_dir / "spool" / f"{run_id}.ndjson"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def seqs(events: list[RunEvent]) -> list[int | None]:
    return [getattr(event, "seq", None) for event in events]


async def test_frames_of_a_detachable_run_are_numbered_from_one(daemon: RunningDaemon) -> None:
    """``RunStarted`` is 1, every later frame the next number, ``RunFinished`` the last."""
    run_id = new_run_id()
    async with open_run(daemon.host, daemon.port, daemon.token, request("hello", run_id)) as s:
        events = [event async for event in s]
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)
    assert events[-1].outcome == "success"
    assert seqs(events) == list(range(1, len(events) + 1))


async def test_run_without_run_id_has_no_numbers(daemon: RunningDaemon) -> None:
    """A run without ``run_id`` is streamed as before: no frame carries a number."""
    async with open_run(daemon.host, daemon.port, daemon.token, request("hello", None)) as s:
        events = [event async for event in s]
    assert set(seqs(events)) == {None}


async def test_dropped_stream_detaches_and_attach_replays_exactly_the_rest(
    daemon: RunningDaemon, project: pathlib.Path, state_dir: pathlib.Path
) -> None:
    """The group lives on while detached; attach after k gets k+1.. once each, then the rest."""
    run_id, first, (leader, child) = await start_detached(daemon, "gated 3 3 2", "step 1.1")
    assert alive(leader)
    assert alive(child)
    (project / "gate1").touch()  # the second part is printed while no stream is attached
    await eventually(
        lambda: any(f.get("text") == "step 2.3" for f in spool_frames(state_dir, run_id)),
        "the detached part in the spool",
    )
    spool = state_dir / "spool" / f"{run_id}.ndjson"
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    k = len(first) - 1  # the client "stored" all but its last frame: that one comes again
    replayed: list[RunEvent] = []
    with trio.fail_after(DEADLINE):
        async with attach_run(daemon.host, daemon.port, daemon.token, run_id, k) as stream:
            assert stream.attached is not None
            assert stream.started.pid == leader
            async for event in stream:
                replayed.append(event)
                if text(event) == "step 2.3":
                    (project / "gate2").touch()  # the last part comes live
    assert seqs(first) == list(range(1, k + 2))
    assert seqs(replayed) == list(range(k + 1, k + 1 + len(replayed)))
    texts = [said for event in replayed if (said := text(event)) is not None]
    expected = [f"step 1.{n}" for n in (1, 2, 3)] + [f"step 2.{n}" for n in (1, 2, 3)]
    assert texts == [*expected, "step 3.1", "step 3.2"]
    assert isinstance(replayed[-1], RunFinished)
    assert replayed[-1].outcome == "success"
    await wait_gone(leader, child)
    await eventually(lambda: not spool.exists(), "the delivered run's spool removed")


async def test_second_attach_takes_over_without_cancelling(
    daemon: RunningDaemon, project: pathlib.Path
) -> None:
    """A second attach closes the first stream; the run goes on and ends on the second."""
    run_id, _, (leader, _) = await start_detached(daemon, "gated 1 1", "step 1.1")
    with trio.fail_after(DEADLINE):
        async with (
            attach_run(daemon.host, daemon.port, daemon.token, run_id, 3) as old,
            attach_run(daemon.host, daemon.port, daemon.token, run_id, 3) as new,
        ):
            with pytest.raises(DaemonUnavailable):
                async for _ in old:
                    pass
            assert alive(leader)
            (project / "gate1").touch()
            events = [event async for event in new]
    assert [said for event in events if (said := text(event))] == ["step 1.1", "step 2.1"]
    assert isinstance(events[-1], RunFinished)
    assert events[-1].outcome == "success"


async def test_detach_longer_than_the_grace_ends_the_group(
    root: pathlib.Path, agent_env: dict[str, str], state_dir: pathlib.Path
) -> None:
    """Nobody attaching within the grace: the group is killed, the spooled end says why."""
    async with running_daemon(
        [root],
        agent_env,
        state_dir=str(state_dir),
        detach_grace_s=1.0,
        finished_spool_s=DEADLINE * 4,
        kill_grace_s=1.0,
    ) as d:
        run_id, _, (leader, child) = await start_detached(d, "gated 1 1", "step 1.1")
        await wait_gone(leader, child)
        events = await attach_all(d, run_id, 0)
    end = events[-1]
    assert isinstance(end, RunFinished)
    assert end.outcome == "killed"
    assert end.error == "detached for longer than the 1 s grace"
    assert seqs(events) == list(range(1, len(events) + 1))


async def test_zero_grace_cancels_at_detach(
    root: pathlib.Path, agent_env: dict[str, str], state_dir: pathlib.Path
) -> None:
    """``detach_grace_s=0`` keeps today's behaviour: the stream's end ends the run."""
    async with running_daemon(
        [root], agent_env, state_dir=str(state_dir), detach_grace_s=0.0, kill_grace_s=1.0
    ) as d:
        run_id = new_run_id()
        async with open_run(d.host, d.port, d.token, request("gated 1 1", run_id)) as stream:
            events = await read_until(stream, "step 1.1")
        await wait_gone(*group_pids(events))


async def test_cancel_by_id_while_detached_kills_the_group(
    daemon: RunningDaemon, state_dir: pathlib.Path
) -> None:
    """``cancel_run`` ends a detached run's group; its spooled end says ``cancelled``."""
    run_id, _, (leader, child) = await start_detached(daemon, "gated 1 1", "step 1.1")
    cancelled = await cancel_run(daemon.host, daemon.port, daemon.token, run_id)
    assert (cancelled.run_id, cancelled.found) == (run_id, True)
    await wait_gone(leader, child)
    again = await cancel_run(daemon.host, daemon.port, daemon.token, run_id)
    assert again.found  # still spooled: known, and nothing changes
    events = await attach_all(daemon, run_id, 0)
    assert isinstance(events[-1], RunFinished)
    assert events[-1].outcome == "cancelled"
    spool = state_dir / "spool" / f"{run_id}.ndjson"
    await eventually(lambda: not spool.exists(), "the delivered run's spool removed")
    after_delivery = await cancel_run(daemon.host, daemon.port, daemon.token, run_id)
    assert not after_delivery.found
    unknown = await cancel_run(daemon.host, daemon.port, daemon.token, new_run_id())
    assert not unknown.found


async def test_cancel_on_the_stream_ends_the_run(daemon: RunningDaemon) -> None:
    """``RunStream.cancel`` ends the run: ``cancelled``, the group gone."""
    run_id = new_run_id()
    async with open_run(
        daemon.host, daemon.port, daemon.token, request("gated 1 1", run_id)
    ) as stream:
        events = await read_until(stream, "step 1.1")
        await stream.cancel()
        with trio.fail_after(DEADLINE):
            rest = [event async for event in stream]
    assert isinstance(rest[-1], RunFinished)
    assert rest[-1].outcome == "cancelled"
    await wait_gone(*group_pids(events))


async def test_wrong_token_cannot_attach_or_cancel(daemon: RunningDaemon) -> None:
    """Another token gets no answer about the run, and the run is untouched."""
    run_id, _, (leader, _) = await start_detached(daemon, "gated 1 1", "step 1.1")
    wrong = secrets.token_urlsafe(24)
    with pytest.raises(AuthenticationFailed):
        async with attach_run(daemon.host, daemon.port, wrong, run_id, 0):
            pass
    with pytest.raises(AuthenticationFailed):
        await cancel_run(daemon.host, daemon.port, wrong, run_id)
    assert alive(leader)
    assert await detached_runs(daemon) == 1


async def test_other_token_gets_the_answer_of_an_unknown_run(tmp_path: pathlib.Path) -> None:
    """A run bound to one token is, for another, exactly an id the daemon never saw."""
    registry = Detachments(DaemonConfig(token="t", roots=()))
    run_id, stranger = new_run_id(), new_run_id()
    spool = Spool(str(tmp_path), run_id)
    active = ActiveRun(scope=trio.CancelScope())
    registry.runs[run_id] = DetachableRun(
        registry, run_id, "a" * 64, active, live=False, spool=spool
    )
    assert registry.find(run_id, "a" * 64) is registry.runs[run_id]
    with pytest.raises(RequestError) as other_token:
        registry.find(run_id, "b" * 64)
    with pytest.raises(RequestError) as unknown:
        registry.find(stranger, "b" * 64)
    assert other_token.value.code == unknown.value.code == "unknown_run"
    assert other_token.value.message == unknown.value.message.replace(stranger, run_id)
    assert not await registry.cancel(run_id, "b" * 64)
    spool.close()


async def test_attach_to_an_unknown_or_malformed_run_is_refused(daemon: RunningDaemon) -> None:
    """An unknown id is ``unknown_run``; a malformed one ``invalid_request``; a taken one on a
    new run ``run_exists``."""
    unknown = new_run_id()
    with pytest.raises(RequestRejected) as caught:
        await attach_all(daemon, unknown, 0)
    assert (caught.value.code, caught.value.message) == (
        "unknown_run",
        f"no run {unknown} is known to this daemon",
    )
    with pytest.raises(RequestRejected) as malformed:
        await attach_all(daemon, "short", 0)
    assert malformed.value.code == "invalid_request"
    with pytest.raises(RequestRejected) as bad_request:
        async with open_run(daemon.host, daemon.port, daemon.token, request("hello", "x y z!")):
            pass
    assert bad_request.value.code == "invalid_request"
    run_id, _, _ = await start_detached(daemon, "gated 1 1", "step 1.1")
    with pytest.raises(RequestRejected) as taken:
        async with open_run(daemon.host, daemon.port, daemon.token, request("hello", run_id)):
            pass
    assert taken.value.code == "run_exists"


async def test_daemon_restart_answers_unknown_run_with_the_reason(
    root: pathlib.Path, agent_env: dict[str, str], state_dir: pathlib.Path
) -> None:
    """After a restart the old daemon's runs are gone, and attaching says so."""
    async with running_daemon([root], agent_env, state_dir=str(state_dir)) as first:
        run_id, _, pids = await start_detached(first, "gated 1 1", "step 1.1")
    await wait_gone(*pids)
    async with running_daemon([root], agent_env, state_dir=str(state_dir)) as second:
        with pytest.raises(RequestRejected) as caught:
            await attach_all(second, run_id, 0)
        cancelled = await cancel_run(second.host, second.port, second.token, run_id)
    assert caught.value.code == "unknown_run"
    assert caught.value.message.startswith(f"run {run_id}: the host daemon restarted at ")
    assert caught.value.message.endswith("; the run was ended")
    assert not cancelled.found
    assert not (state_dir / "spool" / f"{run_id}.ndjson").exists()


def _config(
    root: pathlib.Path, env: dict[str, str], state_dir: pathlib.Path, **fields: float
) -> DaemonConfig:
    return DaemonConfig(
        token=secrets.token_urlsafe(24),
        roots=(str(root),),
        listen=(("127.0.0.1", 0),),
        environ={**os.environ, **env},
        state_dir=str(state_dir),
        **fields,  # type: ignore[arg-type]
    )


async def _shut_down_with_a_detached_run(
    config: DaemonConfig, project: pathlib.Path, *, open_gate: bool
) -> tuple[str, tuple[int, int]]:
    """Serve ``config``, detach a ``gated 1 1`` run, shut down gracefully (opening the gate
    after the shutdown began if asked); returns once ``serve_daemon`` returned."""
    shutdown = trio.Event()
    stopped = trio.Event()

    async def serve(task_status: trio.TaskStatus[list[tuple[str, int]]]) -> None:
        try:
            await serve_daemon(config, shutdown=shutdown, task_status=task_status)
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        host, port = (await nursery.start(serve))[0]
        d = RunningDaemon(host, port, config.token, config, shutdown)
        run_id, _, pids = await start_detached(d, "gated 1 1", "step 1.1")
        shutdown.set()
        if open_gate:
            (project / "gate1").touch()
        with trio.fail_after(DEADLINE):
            await stopped.wait()
    return run_id, pids


async def test_graceful_shutdown_lets_a_detached_run_finish_within_the_grace(
    root: pathlib.Path, project: pathlib.Path, agent_env: dict[str, str], state_dir: pathlib.Path
) -> None:
    """A detached run counts as in flight: shutting down waits for it, and it ends by itself."""
    config = _config(root, agent_env, state_dir, grace_s=DEADLINE * 2, kill_grace_s=1.0)
    run_id, pids = await _shut_down_with_a_detached_run(config, project, open_gate=True)
    assert not any(alive(pid) for pid in pids)
    end = spool_frames(state_dir, run_id)[-1]
    assert (end["type"], end["outcome"]) == ("run_finished", "success")


async def test_graceful_shutdown_kills_a_detached_run_after_the_grace(
    root: pathlib.Path, project: pathlib.Path, agent_env: dict[str, str], state_dir: pathlib.Path
) -> None:
    """At the end of the daemon's grace a detached run is killed with its group, as any run."""
    config = _config(root, agent_env, state_dir, grace_s=0.5, kill_grace_s=1.0)
    run_id, pids = await _shut_down_with_a_detached_run(config, project, open_gate=False)
    await wait_gone(*pids)
    end = spool_frames(state_dir, run_id)[-1]
    assert (end["type"], end["outcome"]) == ("run_finished", "killed")


async def test_probe_reports_the_grace_and_the_detached_runs(daemon: RunningDaemon) -> None:
    """``ProbeInfo`` says the detach grace and how many runs are detached now."""
    info = await host_daemon.probe(daemon.host, daemon.port, daemon.token)
    assert (info.detach_grace_s, info.detached_runs) == (900.0, 0)
    await start_detached(daemon, "gated 1 1", "step 1.1")
    assert await detached_runs(daemon) == 1
