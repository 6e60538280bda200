"""A detachable run whose spool hits a full disk: the daemon serves on, the run ends with its
stream (it can no longer be replayed), and a re-attach says why (a real tmpfs; needs root)."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import trio
from _support.daemon import (
    RunningDaemon,
    install_stand_in_agent,
    running_daemon,
    wait_detached_runs,
)
from _support.polling import eventually
from _support.small_disk import fill, mounted_tmpfs

import host_daemon
from host_daemon import (
    AgentEvent,
    RequestRejected,
    RunEvent,
    RunFinished,
    RunRequest,
    attach_run,
    open_run,
)
from host_daemon._proc import read_stat

DEADLINE = 30.0  # generous: the machine is shared and loaded
#: Frames printed after the disk is full: more than the page the spool's last write left open.
FILLING = 100
FILLING_TEXTS = [f"step 2.{n}" for n in range(1, FILLING + 1)]


@pytest.fixture
def small_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A 256 KiB tmpfs for the daemon's state directory."""
    with mounted_tmpfs(tmp_path / "state", "256k") as mount:
        yield mount


@pytest.fixture
def project(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "root" / "project"
    path.mkdir(parents=True)
    return path


@pytest.fixture
async def daemon(
    tmp_path: pathlib.Path, project: pathlib.Path, small_disk: pathlib.Path
) -> AsyncIterator[RunningDaemon]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {
        "CLAUDE_PATH": install_stand_in_agent(bin_dir),
        "CODEX_PATH": str(tmp_path / "no-codex"),
        "GEMINI_PATH": str(tmp_path / "no-gemini"),
    }
    async with running_daemon(
        [project.parent], env, state_dir=str(small_disk), kill_grace_s=1.0
    ) as d:
        yield d


def texts(events: list[RunEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, AgentEvent) and e.kind == "text" and e.text]


def alive(pid: int) -> bool:
    stat_ = read_stat(pid)
    return stat_ is not None and stat_.alive


async def test_full_spool_ends_the_run_with_its_stream_and_the_daemon_serves_on(
    daemon: RunningDaemon, project: pathlib.Path, small_disk: pathlib.Path
) -> None:
    """Frames go on reaching the attached client; a re-attach meanwhile is refused naming the
    spool (it could not replay), and takes nothing over."""
    run_id = uuid.uuid4().hex
    request = RunRequest(
        agent="claude", prompt=f"gated 1 {FILLING} 1", cwd="project", run_id=run_id
    )
    events: list[RunEvent] = []
    with trio.fail_after(DEADLINE):
        async with open_run(daemon.host, daemon.port, daemon.token, request) as stream:
            async for event in stream:
                events.append(event)
                if texts(events)[-1:] == ["step 1.1"]:
                    await trio.to_thread.run_sync(fill, small_disk / "filler")
                    (project / "gate1").touch()
                elif texts(events)[-1:] == [f"step 2.{FILLING}"]:
                    with pytest.raises(RequestRejected) as refused:
                        async with attach_run(daemon.host, daemon.port, daemon.token, run_id, 0):
                            pass
                    (project / "gate2").touch()
    assert refused.value.code == "unknown_run"
    assert "No space left on device" in refused.value.message
    assert texts(events)[1:] == ["step 1.1", *FILLING_TEXTS, "step 3.1"]
    assert isinstance(events[-1], RunFinished)
    assert events[-1].outcome == "success"
    assert (await host_daemon.probe(daemon.host, daemon.port, daemon.token)).detached_runs == 0


async def test_full_spool_of_a_detached_run_ends_its_group(
    daemon: RunningDaemon, project: pathlib.Path, small_disk: pathlib.Path
) -> None:
    """Detached when its spool fills, a run cannot be replayed: it is ended, group and all."""
    run_id = uuid.uuid4().hex
    request = RunRequest(agent="claude", prompt=f"gated 1 {FILLING}", cwd="project", run_id=run_id)
    events: list[RunEvent] = []
    with trio.fail_after(DEADLINE):
        async with open_run(daemon.host, daemon.port, daemon.token, request) as stream:
            async for event in stream:
                events.append(event)
                if texts(events)[-1:] == ["step 1.1"]:
                    break
    pids = [int(pid) for pid in texts(events)[0].split()[1:]]
    await eventually(lambda: all(alive(pid) for pid in pids), "the detached group alive")
    await wait_detached_runs(daemon.host, daemon.port, daemon.token, 1, DEADLINE)
    await trio.to_thread.run_sync(fill, small_disk / "filler")
    (project / "gate1").touch()
    await eventually(lambda: not any(alive(pid) for pid in pids), f"pids {pids} gone")
    await wait_detached_runs(daemon.host, daemon.port, daemon.token, 0, DEADLINE)
