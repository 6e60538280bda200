"""Worktree operations over the wire: a real daemon, the client library and real git repositories.

Each operation round-trips through the daemon's dispatch to its ``WorktreeManager``; a run with
``worktree=`` runs the stand-in agent in the worktree, not in the user's checkout; refusals and
failures come back as error frames and the daemon serves on. Git itself (what a merge does, how a
sweep decides) is tested on the manager directly, in test_daemon_worktrees_*.py.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
from collections.abc import AsyncIterator

import orjson
import pytest
import trio
from _support.daemon import RunningDaemon, install_stand_in_agent, running_daemon
from _support.polling import eventually

import host_daemon
from host_daemon import (
    CommitDone,
    CommitsDone,
    DiffDone,
    DiscardDone,
    MergeDone,
    RequestRejected,
    RunFinished,
    RunRequest,
    RunStarted,
    SweepDone,
    WorktreeCommit,
    WorktreeCommits,
    WorktreeCreate,
    WorktreeDiff,
    WorktreeDiscard,
    WorktreeInfo,
    WorktreeMerge,
    WorktreeSkipped,
    WorktreeSweep,
)
from host_daemon._connection import FramedStream, client_handshake
from host_daemon._protocol import DAEMON_TO_CLIENT, ErrorFrame, Message

DEADLINE = 60.0  # generous: git on a loaded machine
KEY = "task-1"
BRANCH = "coding-agent/task-1-fix"
#: Git as the tests run it: no user or system configuration, a fixed identity.
GIT_ISOLATION = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


async def git(repo: pathlib.Path, *args: str) -> str:
    """Run git in ``repo`` as the test's user would; its stdout."""
    result = await trio.run_process(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **GIT_ISOLATION, **GIT_IDENTITY},
        capture_stdout=True,
        capture_stderr=True,
    )
    return result.stdout.decode().strip()


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "root"
    path.mkdir()
    return path.resolve()


@pytest.fixture
async def repo(root: pathlib.Path) -> pathlib.Path:
    """A checkout on ``main`` with one commit: README at the top, ``proj/app.txt`` below."""
    path = root / "repo"
    (path / "proj").mkdir(parents=True)
    (path / "README").write_text("readme\n")
    (path / "proj" / "app.txt").write_text("one\n")
    await git(path, "init", "-q", "-b", "main")
    await git(path, "add", "-A")
    await git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def worktrees_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path.resolve() / "state" / "worktrees"


@pytest.fixture
async def daemon(
    root: pathlib.Path, worktrees_dir: pathlib.Path, tmp_path: pathlib.Path
) -> AsyncIterator[RunningDaemon]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"CLAUDE_PATH": install_stand_in_agent(bin_dir), **GIT_ISOLATION}
    async with running_daemon(
        roots=[root],
        env=env,
        worktrees_dir=str(worktrees_dir),
        handshake_timeout_s=10.0,
    ) as d:
        yield d


def worktree_of(info: WorktreeInfo) -> pathlib.Path:
    return pathlib.Path(info.path)


def create(cwd: pathlib.Path, **fields: object) -> WorktreeCreate:
    return WorktreeCreate(key=KEY, cwd=str(cwd), branch=BRANCH, **fields)  # type: ignore[arg-type]


async def made(d: RunningDaemon, cwd: pathlib.Path) -> WorktreeInfo:
    """A worktree for ``cwd`` under ``KEY``, made through the daemon."""
    info = await host_daemon.create_worktree(d.host, d.port, d.token, create(cwd))
    assert isinstance(info, WorktreeInfo)
    return info


async def committed(d: RunningDaemon, info: WorktreeInfo, name: str = "new.txt") -> CommitDone:
    """Write ``name`` in the worktree's project directory and commit it through the daemon."""
    (worktree_of(info) / info.subdir / name).write_text("new\n")
    request = WorktreeCommit(key=KEY, message="turn 1: add a file\n\nbody")
    return await host_daemon.commit_worktree(d.host, d.port, d.token, request)


async def raw_operation(d: RunningDaemon, frame: dict[str, object]) -> list[Message]:
    """Send one raw frame after the handshake; every frame the daemon answers, to the end."""
    stream = await trio.open_tcp_stream(d.host, d.port)
    conn = FramedStream(stream, DAEMON_TO_CLIENT, max_frame_bytes=1 << 24)
    async with stream:
        await client_handshake(conn, d.token)
        await stream.send_all(orjson.dumps(frame) + b"\n")
        frames: list[Message] = []
        while (message := await conn.receive()) is not None:
            frames.append(message)
    return frames


async def test_create_answers_the_worktrees_info(
    daemon: RunningDaemon, repo: pathlib.Path, worktrees_dir: pathlib.Path
) -> None:
    """``create_worktree`` returns where the worktree is and what it branched from."""
    head = await git(repo, "rev-parse", "HEAD")
    info = await made(daemon, repo / "proj")
    assert (info.key, info.repo, info.subdir, info.branch) == (KEY, str(repo), "proj", BRANCH)
    assert (info.base_branch, info.base_commit, info.head_commit) == ("main", head, head)
    assert worktree_of(info).parent == worktrees_dir
    assert (worktree_of(info) / "proj" / "app.txt").read_text() == "one\n"


async def test_optional_create_outside_a_repository_is_skipped(
    daemon: RunningDaemon, root: pathlib.Path
) -> None:
    """A create that is not required, for a project outside git, answers ``WorktreeSkipped``."""
    (root / "plain").mkdir()
    answer = await host_daemon.create_worktree(
        daemon.host, daemon.port, daemon.token, create(root / "plain", required=False)
    )
    assert isinstance(answer, WorktreeSkipped)
    assert "git" in answer.reason


async def test_commit_answers_the_new_commit(daemon: RunningDaemon, repo: pathlib.Path) -> None:
    """``commit_worktree`` returns the new commit, which is the branch's tip, and its files."""
    done = await committed(daemon, await made(daemon, repo / "proj"))
    assert done.commit is not None
    assert done.commit == await git(repo, "rev-parse", BRANCH)
    assert done.files == ["proj/new.txt"]


async def test_diff_answers_the_branchs_changes(daemon: RunningDaemon, repo: pathlib.Path) -> None:
    """``diff_worktree`` returns the unified diff and per-file figures of the branch."""
    info = await made(daemon, repo / "proj")
    done = await committed(daemon, info)
    diff = await host_daemon.diff_worktree(
        daemon.host, daemon.port, daemon.token, WorktreeDiff(key=KEY)
    )
    assert isinstance(diff, DiffDone)
    assert (diff.base_commit, diff.head_commit) == (info.base_commit, done.commit)
    assert [(f.path, f.added, f.removed, f.status) for f in diff.files] == [
        ("proj/new.txt", 1, 0, "added")
    ]
    assert "+new" in diff.diff
    assert not diff.truncated


async def test_commits_answers_the_branchs_commits(
    daemon: RunningDaemon, repo: pathlib.Path
) -> None:
    """``worktree_commits`` returns the branch's commits since its base, with their files."""
    info = await made(daemon, repo / "proj")
    done = await committed(daemon, info)
    answer = await host_daemon.worktree_commits(
        daemon.host, daemon.port, daemon.token, WorktreeCommits(key=KEY)
    )
    assert isinstance(answer, CommitsDone)
    assert [(c.sha, c.subject, c.files) for c in answer.commits] == [
        (done.commit, "turn 1: add a file", ["proj/new.txt"])
    ]


async def test_merge_lands_the_branch_in_the_checkout(
    daemon: RunningDaemon, repo: pathlib.Path
) -> None:
    """``merge_worktree`` answers the base's new tip, and the checkout has the change."""
    info = await made(daemon, repo / "proj")
    await committed(daemon, info)
    done = await host_daemon.merge_worktree(
        daemon.host, daemon.port, daemon.token, WorktreeMerge(key=KEY, strategy="squash")
    )
    assert isinstance(done, MergeDone)
    assert (done.strategy, done.base_branch, done.files) == ("squash", "main", ["proj/new.txt"])
    assert done.commit == await git(repo, "rev-parse", "main")
    assert done.checkout_updated
    assert (repo / "proj" / "new.txt").read_text() == "new\n"


async def test_discard_removes_worktree_and_branch(
    daemon: RunningDaemon, repo: pathlib.Path
) -> None:
    """``discard_worktree`` answers what it removed, and neither directory nor branch is left."""
    info = await made(daemon, repo / "proj")
    done = await host_daemon.discard_worktree(
        daemon.host, daemon.port, daemon.token, WorktreeDiscard(key=KEY)
    )
    assert done == DiscardDone(removed_worktree=True, deleted_branch=True)
    assert not worktree_of(info).exists()
    assert await git(repo, "branch", "--list", BRANCH) == ""


async def test_sweep_removes_worktrees_not_kept(daemon: RunningDaemon, repo: pathlib.Path) -> None:
    """``sweep_worktrees`` answers the keys it removed; a kept key's worktree stays."""
    info = await made(daemon, repo / "proj")
    kept = await host_daemon.sweep_worktrees(
        daemon.host, daemon.port, daemon.token, WorktreeSweep(keep=[KEY])
    )
    assert kept == SweepDone(removed=[], kept_branches=[])
    assert worktree_of(info).is_dir()
    swept = await host_daemon.sweep_worktrees(
        daemon.host, daemon.port, daemon.token, WorktreeSweep(keep=[])
    )
    assert swept == SweepDone(removed=[KEY], kept_branches=[])
    assert not worktree_of(info).exists()


async def run_to_end(d: RunningDaemon, request: RunRequest) -> tuple[RunStarted, RunFinished]:
    async with host_daemon.open_run(d.host, d.port, d.token, request) as stream:
        events = [event async for event in stream]
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)
    return events[0], events[-1]


async def test_run_in_a_worktree_runs_the_agent_there(
    daemon: RunningDaemon, repo: pathlib.Path
) -> None:
    """A run with ``worktree=`` starts in the worktree's project dir; the checkout is untouched."""
    info = await made(daemon, repo / "proj")
    request = RunRequest(
        agent="claude", prompt="write note.txt", cwd=str(repo / "proj"), worktree=KEY
    )
    started, finished = await run_to_end(daemon, request)
    assert started.cwd == os.path.join(info.path, "proj")
    assert finished.outcome == "success"
    assert (worktree_of(info) / "proj" / "note.txt").read_text() == "written by the stand-in\n"
    assert not (repo / "proj" / "note.txt").exists()
    assert await git(repo, "status", "--porcelain") == ""


async def test_run_without_a_worktree_runs_in_the_checkout(
    daemon: RunningDaemon, repo: pathlib.Path
) -> None:
    """Without ``worktree`` the run is where it always was: in ``cwd``, even if one exists."""
    await made(daemon, repo / "proj")
    request = RunRequest(agent="claude", prompt="write note.txt", cwd=str(repo / "proj"))
    started, _ = await run_to_end(daemon, request)
    assert started.cwd == str(repo / "proj")
    assert (repo / "proj" / "note.txt").is_file()


async def test_run_with_an_unknown_worktree_is_refused(
    daemon: RunningDaemon, repo: pathlib.Path
) -> None:
    """A run naming a worktree the daemon does not have gets ``unknown_worktree``, at the field."""
    request = RunRequest(agent="claude", prompt="hello", cwd=str(repo), worktree="no-such-task")
    with pytest.raises(RequestRejected) as caught:
        await run_to_end(daemon, request)
    assert caught.value.code == "unknown_worktree"
    assert caught.value.message.endswith("@ $.worktree")


async def test_run_in_a_worktree_still_needs_its_cwd_inside_a_root(
    daemon: RunningDaemon, repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """The project dir of a worktree run is checked as ever: outside the roots it is refused."""
    await made(daemon, repo / "proj")
    (tmp_path / "elsewhere").mkdir()
    request = RunRequest(
        agent="claude", prompt="hello", cwd=str(tmp_path / "elsewhere"), worktree=KEY
    )
    with pytest.raises(RequestRejected) as caught:
        await run_to_end(daemon, request)
    assert caught.value.code == "path_outside_root"
    assert caught.value.message.endswith("@ $.cwd")


async def test_run_in_a_worktree_refuses_a_symlink_out_of_the_worktrees_dir(
    daemon: RunningDaemon, repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """The worktree's run dir is opened like a cwd: a symlink swapped in out of it is refused."""
    info = await made(daemon, repo / "proj")
    outside = tmp_path / "outside"
    outside.mkdir()
    project = worktree_of(info) / "proj"
    for child in project.iterdir():
        child.unlink()
    project.rmdir()
    project.symlink_to(outside)
    request = RunRequest(
        agent="claude", prompt="write note.txt", cwd=str(repo / "proj"), worktree=KEY
    )
    with pytest.raises(RequestRejected) as caught:
        await run_to_end(daemon, request)
    assert caught.value.code == "path_outside_root"
    assert caught.value.message.endswith("@ $.worktree")
    assert not (outside / "note.txt").exists()


async def test_refused_operation_keeps_the_managers_code_and_daemon_serves(
    daemon: RunningDaemon,
) -> None:
    """A manager's refusal reaches the client with its code and message; the daemon goes on."""
    with pytest.raises(RequestRejected) as caught:
        await host_daemon.commit_worktree(
            daemon.host, daemon.port, daemon.token, WorktreeCommit(key="nobody", message="m")
        )
    assert caught.value.code == "unknown_worktree"
    assert "nobody" in caught.value.message
    swept = await host_daemon.sweep_worktrees(
        daemon.host, daemon.port, daemon.token, WorktreeSweep(keep=[])
    )
    assert swept == SweepDone(removed=[], kept_branches=[])


async def test_unexpected_failure_is_git_failed_and_daemon_serves(
    daemon: RunningDaemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception that is no refusal becomes a ``git_failed`` frame naming it, not a crash."""
    from host_daemon._worktrees import WorktreeManager  # noqa: PLC0415

    async def broken(self: WorktreeManager, request: WorktreeDiff) -> DiffDone:
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr(WorktreeManager, "diff", broken)
    caplog.set_level(logging.INFO, logger="host_daemon")
    with pytest.raises(RequestRejected) as caught:
        await host_daemon.diff_worktree(
            daemon.host, daemon.port, daemon.token, WorktreeDiff(key=KEY)
        )
    assert caught.value.code == "git_failed"
    assert caught.value.message == (
        "worktree_diff failed in the daemon: RuntimeError: the disk caught fire"
    )
    assert "worktree operation failed" in caplog.text
    assert isinstance(
        await host_daemon.probe(daemon.host, daemon.port, daemon.token), host_daemon.ProbeInfo
    )


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            {"type": "worktree_merge", "key": KEY, "strategy": "octopus"},
            "expected one of 'merge', 'squash', 'rebase' @ $.strategy",
        ),
        ({"type": "worktree_diff", "key": KEY, "max_bytes": "8"}, "expected int, got str"),
        ({"type": "worktree_sweep", "keep": [KEY, None]}, "expected str, got null @ $.keep[1]"),
        ({"type": "worktree_commits", "key": KEY, "all": True}, "extra fields found (all) @ $"),
        ({"type": "worktree_discard", "key": "a\0b"}, "with NUL at index 1 @ $.key"),
        ({"type": "worktree_sweep", "keep": ["\0"]}, "with NUL at index 0 @ $.keep[0]"),
    ],
)
async def test_malformed_operation_gets_invalid_request_and_daemon_serves(
    daemon: RunningDaemon, frame: dict[str, object], expected: str
) -> None:
    """A malformed worktree frame gets one ``invalid_request`` saying what and where, then EOF."""
    frames = await raw_operation(daemon, frame)
    assert len(frames) == 1, frames
    error = frames[0]
    assert isinstance(error, ErrorFrame)
    assert error.code == "invalid_request"
    assert expected in error.message
    assert isinstance(
        await host_daemon.probe(daemon.host, daemon.port, daemon.token), host_daemon.ProbeInfo
    )


async def test_operation_finishes_when_its_client_leaves(
    daemon: RunningDaemon,
    repo: pathlib.Path,
    worktrees_dir: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client that sends a create and hangs up at once still gets its worktree made."""
    caplog.set_level(logging.INFO, logger="host_daemon")
    stream = await trio.open_tcp_stream(daemon.host, daemon.port)
    conn = FramedStream(stream, DAEMON_TO_CLIENT, max_frame_bytes=1 << 20)
    async with stream:
        await client_handshake(conn, daemon.token)
        await conn.send(create(repo / "proj"))
    await eventually(lambda: "worktree operation done" in caplog.text, "the create's end")
    assert (worktrees_dir / KEY / "proj" / "app.txt").is_file()
    listed = await git(repo, "worktree", "list", "--porcelain")
    assert f"branch refs/heads/{BRANCH}" in listed.splitlines()


async def test_worktree_operations_take_no_run_slot(
    root: pathlib.Path, repo: pathlib.Path, worktrees_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """With every run slot taken, worktree operations are still served (they are no runs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"CLAUDE_PATH": install_stand_in_agent(bin_dir), **GIT_ISOLATION}
    async with running_daemon(
        roots=[root], env=env, worktrees_dir=str(worktrees_dir), max_runs=1
    ) as d:
        hang = RunRequest(agent="claude", prompt="hang", cwd=str(root))
        async with host_daemon.open_run(d.host, d.port, d.token, hang):
            with pytest.raises(host_daemon.DaemonBusy):
                await run_to_end(d, hang)
            info = await made(d, repo / "proj")
            assert worktree_of(info).is_dir()


async def test_probe_reports_git(daemon: RunningDaemon) -> None:
    """The probe says which git the daemon runs (``git --version``)."""
    info = await host_daemon.probe(daemon.host, daemon.port, daemon.token)
    assert info.git is not None
    assert info.git.startswith("git version ")


async def test_probe_reports_no_git_when_git_is_missing(
    root: pathlib.Path, worktrees_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """The probe's ``git`` follows the daemon's PATH: None there, the version once git is on it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    git_dir = os.path.dirname(shutil.which("git") or "/usr/bin/git")
    found: list[str | None] = []
    for path in (str(empty), git_dir):
        env = {"PATH": path, **GIT_ISOLATION}
        async with running_daemon(roots=[root], env=env, worktrees_dir=str(worktrees_dir)) as d:
            found.append((await host_daemon.probe(d.host, d.port, d.token)).git)
    assert found[0] is None
    assert found[1] is not None
    assert found[1].startswith("git version ")


@pytest.mark.parametrize(("required", "expected"), [(False, "skipped"), (True, "disk_budget")])
async def test_daemon_without_a_worktrees_dir_makes_none(
    root: pathlib.Path, repo: pathlib.Path, required: bool, expected: str
) -> None:
    """No state dir and no worktrees dir: an optional create is skipped, a required one refused."""
    async with running_daemon(roots=[root], env=GIT_ISOLATION) as d:
        assert d.config.worktrees_dir is None
        request = create(repo, required=required)
        try:
            answer = await host_daemon.create_worktree(d.host, d.port, d.token, request)
        except RequestRejected as exc:
            outcome = exc.code
        else:
            assert isinstance(answer, WorktreeSkipped)
            assert "no worktrees directory" in answer.reason
            outcome = "skipped"
    assert outcome == expected
