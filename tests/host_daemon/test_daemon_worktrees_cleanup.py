"""Discard and sweep: nothing left behind, work with commits never thrown away silently, and
nothing outside the worktrees directory ever deleted."""

from __future__ import annotations

import os
import pathlib
import stat
import time

import pytest
import trio
from _support.git_repos import (
    branches,
    exists,
    git,
    head,
    make_manager,
    make_repo,
    write_bytes,
    write_files,
)

from host_daemon._git import WorktreeMeta, dump_meta
from host_daemon._records import (
    WorktreeCommit,
    WorktreeCreate,
    WorktreeDiscard,
    WorktreeInfo,
    WorktreeSweep,
)
from host_daemon._worktrees import WorktreeManager, WorktreeRefused


async def _create(manager: WorktreeManager, repo: pathlib.Path, key: str) -> WorktreeInfo:
    request = WorktreeCreate(key=key, cwd=str(repo), branch=f"coding-agent/{key}")
    info = await manager.create(request)
    assert isinstance(info, WorktreeInfo)
    return info


def _registered(repo: pathlib.Path) -> int:
    """How many worktrees git knows of besides the checkout itself."""
    return git(repo, "worktree", "list", "--porcelain").count("worktree ") - 1


def _victim(tmp_path: pathlib.Path) -> pathlib.Path:
    """A directory outside the worktrees dir that must survive every removal."""
    victim = tmp_path / "victim"
    write_files(victim, {"precious.txt": "keep me\n", "sub/deep.txt": "me too\n"})
    return victim


def _intact(victim: pathlib.Path) -> bool:
    return (victim / "precious.txt").read_text() == "keep me\n" and (
        victim / "sub" / "deep.txt"
    ).exists()


async def test_discard_leaves_nothing(tmp_path: pathlib.Path) -> None:
    """Discard removes worktree, directory, metadata, git's record and the branch."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager = make_manager(tmp_path)
    info = await _create(manager, repo, "t")
    write_files(pathlib.Path(info.path), {"a.txt": "work\n"})
    await manager.commit(WorktreeCommit(key="t", message="turn 1"))
    done = await manager.discard(WorktreeDiscard(key="t"))
    assert (done.removed_worktree, done.deleted_branch) == (True, True)
    assert os.listdir(manager.worktrees_dir) == []
    assert branches(repo) == ["main"]
    assert _registered(repo) == 0
    with pytest.raises(WorktreeRefused) as caught:
        manager.run_directory("t")
    assert caught.value.code == "unknown_worktree"


async def test_discard_can_keep_the_branch(tmp_path: pathlib.Path) -> None:
    """``delete_branch=False`` removes the worktree but keeps its branch and commits."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager = make_manager(tmp_path)
    info = await _create(manager, repo, "t")
    write_files(pathlib.Path(info.path), {"a.txt": "work\n"})
    done_commit = await manager.commit(WorktreeCommit(key="t", message="turn 1"))
    done = await manager.discard(WorktreeDiscard(key="t", delete_branch=False))
    assert (done.removed_worktree, done.deleted_branch) == (True, False)
    assert head(repo, "refs/heads/coding-agent/t") == done_commit.commit
    assert os.listdir(manager.worktrees_dir) == []


async def test_discard_of_an_unknown_key_refused(tmp_path: pathlib.Path) -> None:
    """Discarding a key with no worktree is ``unknown_worktree``."""
    with pytest.raises(WorktreeRefused) as caught:
        await make_manager(tmp_path).discard(WorktreeDiscard(key="nope"))
    assert caught.value.code == "unknown_worktree"


async def test_sweep_removes_orphans_and_keeps_the_rest(tmp_path: pathlib.Path) -> None:
    """Worktrees not in ``keep`` are removed with their empty branches; kept ones stay."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager = make_manager(tmp_path)
    kept = await _create(manager, repo, "alive")
    await _create(manager, repo, "orphan")
    done = await manager.sweep(WorktreeSweep(keep=["alive"]))
    assert (done.removed, done.kept_branches) == (["orphan"], [])
    assert sorted(os.listdir(manager.worktrees_dir)) == ["alive", "alive.json"]
    assert branches(repo) == ["coding-agent/alive", "main"]
    assert _registered(repo) == 1
    assert manager.run_directory("alive") == kept.path


async def test_sweep_keeps_a_branch_with_commits(tmp_path: pathlib.Path) -> None:
    """An orphan whose branch holds commits loses its worktree but keeps its branch (reported)."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager = make_manager(tmp_path)
    info = await _create(manager, repo, "orphan")
    write_files(pathlib.Path(info.path), {"a.txt": "work\n"})
    turn = await manager.commit(WorktreeCommit(key="orphan", message="turn 1"))
    done = await manager.sweep(WorktreeSweep(keep=[]))
    assert (done.removed, done.kept_branches) == (["orphan"], ["coding-agent/orphan"])
    assert head(repo, "refs/heads/coding-agent/orphan") == turn.commit
    assert os.listdir(manager.worktrees_dir) == []
    assert _registered(repo) == 0


async def test_sweep_removes_metadata_left_by_a_crash(tmp_path: pathlib.Path) -> None:
    """Metadata without a worktree (a crash before ``git worktree add``) is removed."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager = make_manager(tmp_path)
    os.makedirs(manager.worktrees_dir)
    meta = WorktreeMeta(
        key="crashed",
        repo=str(repo),
        path=os.path.join(manager.worktrees_dir, "crashed"),
        subdir="",
        branch="coding-agent/crashed",
        base_branch="main",
        base_commit=head(repo),
        created_at=time.time(),
    )
    write_bytes(os.path.join(manager.worktrees_dir, "crashed.json"), dump_meta(meta))
    done = await manager.sweep(WorktreeSweep(keep=[]))
    assert done.removed == ["crashed"]
    assert os.listdir(manager.worktrees_dir) == []


async def test_sweep_removes_a_worktree_without_metadata(tmp_path: pathlib.Path) -> None:
    """A worktree directory without metadata is removed and pruned from its repository."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager = make_manager(tmp_path)
    await _create(manager, repo, "half")
    os.unlink(os.path.join(manager.worktrees_dir, "half.json"))
    done = await manager.sweep(WorktreeSweep(keep=[]))
    assert done.removed == ["half"]
    assert os.listdir(manager.worktrees_dir) == []
    assert _registered(repo) == 0


async def test_sweep_without_a_worktrees_dir_is_empty(tmp_path: pathlib.Path) -> None:
    """A daemon that never made a worktree sweeps nothing, without error."""
    done = await make_manager(tmp_path).sweep(WorktreeSweep(keep=[]))
    assert (done.removed, done.kept_branches) == ([], [])


async def test_metadata_pointing_elsewhere_deletes_nothing_there(tmp_path: pathlib.Path) -> None:
    """Metadata whose path names a directory outside the worktrees dir is refused, and the
    sweep removes only the metadata file itself."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    victim = _victim(tmp_path)
    manager = make_manager(tmp_path)
    os.makedirs(manager.worktrees_dir)
    meta = WorktreeMeta(
        key="evil",
        repo=str(repo),
        path=str(victim),
        subdir="",
        branch="coding-agent/evil",
        base_branch="main",
        base_commit=head(repo),
        created_at=time.time(),
    )
    write_bytes(os.path.join(manager.worktrees_dir, "evil.json"), dump_meta(meta))
    with pytest.raises(WorktreeRefused) as caught:
        await manager.discard(WorktreeDiscard(key="evil"))
    assert caught.value.code == "unknown_worktree"
    await manager.sweep(WorktreeSweep(keep=[]))
    assert _intact(victim)
    assert os.listdir(manager.worktrees_dir) == []


async def test_planted_symlink_removed_not_followed(tmp_path: pathlib.Path) -> None:
    """A symlink planted where a worktree was is removed itself; its target is untouched."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    victim = _victim(tmp_path)
    manager = make_manager(tmp_path)
    info = await _create(manager, repo, "t")
    git(repo, "worktree", "remove", "--force", info.path)
    os.symlink(victim, info.path)
    done = await manager.discard(WorktreeDiscard(key="t"))
    assert done.removed_worktree
    assert _intact(victim)
    assert os.listdir(manager.worktrees_dir) == []


async def test_symlink_inside_a_worktree_not_followed(tmp_path: pathlib.Path) -> None:
    """A symlink the agent left inside its worktree is removed, not what it points to."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    victim = _victim(tmp_path)
    manager = make_manager(tmp_path)
    info = await _create(manager, repo, "t")
    os.symlink(victim, os.path.join(info.path, "link"))
    os.chmod(
        info.path, stat.S_IRUSR | stat.S_IXUSR
    )  # a read-only directory does not stop the removal either
    await manager.sweep(WorktreeSweep(keep=[]))
    assert _intact(victim)
    assert os.listdir(manager.worktrees_dir) == []


async def test_sweep_spares_a_worktree_in_use(tmp_path: pathlib.Path) -> None:
    """A worktree with an operation in flight (its key locked) is neither swept nor waited on."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager = make_manager(tmp_path)
    info = await _create(manager, repo, "busy")
    async with manager._locked(manager._key_locks, "busy"):
        with trio.fail_after(30):
            done = await manager.sweep(WorktreeSweep(keep=[]))
    assert done.removed == []
    assert exists(info.path)
