"""Git as a process: a hanging command is killed at the timeout, a cancelled operation leaves no
git process behind, and a missing git is an error, not a crash."""

from __future__ import annotations

import os
import pathlib
import secrets

import pytest
import trio
from _support.git_repos import git_env, make_manager, make_repo, write_script
from _support.polling import eventually
from _support.procs import marked_processes

from host_daemon._proc import group_members
from host_daemon._records import WorktreeCreate
from host_daemon._worktrees import WorktreeManager, WorktreeRefused

MARK = "CODING_AGENT_TEST_GIT_MARK"


def _hanging_git(tmp_path: pathlib.Path, token: str, **overrides: object) -> WorktreeManager:
    """A manager whose ``git`` is a stand-in that records its pid and hangs, with a child."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "git"
    write_script(fake, f"#!/bin/sh\necho $$ > {tmp_path}/git.pid\nsleep 600 &\nsleep 600\n")
    environ = git_env(tmp_path / "home", PATH=f"{bindir}:{os.environ['PATH']}", **{MARK: token})
    return make_manager(tmp_path, environ=environ, **overrides)


def _group_gone(pgid: int) -> bool:
    return not [stat for stat in group_members(pgid) if stat.alive]


async def test_hanging_git_killed_at_the_timeout(tmp_path: pathlib.Path) -> None:
    """A git command past ``git_timeout_s`` fails with ``git_failed`` saying so, and its whole
    process group is gone by then."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    token = secrets.token_hex(8)
    manager = _hanging_git(tmp_path, token, git_timeout_s=1.0)
    with pytest.raises(WorktreeRefused) as caught:
        await manager.create(WorktreeCreate(key="t", cwd=str(repo), branch="coding-agent/t"))
    assert caught.value.code == "git_failed"
    assert "did not finish within 1 s" in caught.value.message
    pgid = int((tmp_path / "git.pid").read_text())
    assert _group_gone(pgid)
    assert marked_processes(MARK, token) == []


async def test_cancelled_operation_leaves_no_git_process(tmp_path: pathlib.Path) -> None:
    """Cancelling an operation while git runs ends git's whole process group before it returns."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    token = secrets.token_hex(8)
    manager = _hanging_git(tmp_path, token)
    pid_file = tmp_path / "git.pid"
    async with trio.open_nursery() as nursery:
        request = WorktreeCreate(key="t", cwd=str(repo), branch="coding-agent/t")
        nursery.start_soon(manager.create, request)
        await eventually(
            lambda: pid_file.exists() and len(marked_processes(MARK, token)) >= 3,
            "the stand-in git and its two sleeps",
        )
        nursery.cancel_scope.cancel()
    assert _group_gone(int(pid_file.read_text()))
    assert marked_processes(MARK, token) == []


async def test_missing_git_is_an_error(tmp_path: pathlib.Path) -> None:
    """Without git on PATH, an operation fails with ``git_failed`` and ``git_version`` is None."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    manager = make_manager(tmp_path, environ=git_env(tmp_path / "home", PATH=str(empty)))
    assert await manager.git_version() is None
    with pytest.raises(WorktreeRefused) as caught:
        await manager.create(WorktreeCreate(key="t", cwd=str(repo), branch="coding-agent/t"))
    assert caught.value.code == "git_failed"


async def test_git_version_reports_git(tmp_path: pathlib.Path) -> None:
    """``git_version`` is ``git --version``'s text."""
    version = await make_manager(tmp_path).git_version()
    assert version is not None
    assert version.startswith("git version ")
