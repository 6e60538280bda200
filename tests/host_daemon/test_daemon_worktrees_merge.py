"""Merging a task's branch into its base branch: each strategy lands, or nothing changes."""

from __future__ import annotations

import os
import pathlib

import pytest
from _support.git_repos import (
    branches,
    checkout_fingerprint,
    commit_files,
    exists,
    git,
    head,
    make_manager,
    make_repo,
    read_text,
    worktree_entries,
    write_files,
)

from host_daemon._records import (
    MergeStrategy,
    WorktreeCommit,
    WorktreeCreate,
    WorktreeInfo,
    WorktreeMerge,
)
from host_daemon._worktrees import WorktreeManager, WorktreeRefused

STRATEGIES: tuple[MergeStrategy, ...] = ("merge", "squash", "rebase")


async def _task_with_a_turn(
    tmp_path: pathlib.Path, files: dict[str, str | bytes], base_ref: str | None = None
) -> tuple[WorktreeManager, WorktreeInfo, pathlib.Path]:
    """A repository, a worktree ``t`` and one committed turn changing ``files``."""
    repo = tmp_path / "repo"
    if not repo.exists():
        make_repo(repo, {"a.txt": "1\n2\n3\n", "b.txt": "b\n"})
    manager = make_manager(tmp_path)
    request = WorktreeCreate(key="t", cwd=str(repo), branch="coding-agent/t", base_ref=base_ref)
    info = await manager.create(request)
    assert isinstance(info, WorktreeInfo)
    write_files(pathlib.Path(info.path), files)
    done = await manager.commit(WorktreeCommit(key="t", message="turn 1: agent work"))
    assert done.commit is not None
    return manager, info, repo


def _gone(manager: WorktreeManager, info: WorktreeInfo, repo: pathlib.Path) -> None:
    assert not os.path.lexists(info.path)
    assert not os.path.lexists(os.path.join(manager.worktrees_dir, "t.json"))
    assert "coding-agent/t" not in branches(repo)
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_merge_into_the_checked_out_branch(
    tmp_path: pathlib.Path, strategy: MergeStrategy
) -> None:
    """With the base branch checked out, the merge lands and the working tree moves with it."""
    manager, info, repo = await _task_with_a_turn(
        tmp_path, {"a.txt": "1\nTWO\n3\n", "c.txt": "c\n"}
    )
    done = await manager.merge(WorktreeMerge(key="t", strategy=strategy))
    assert (done.base_branch, done.checkout_updated) == ("main", True)
    assert sorted(done.files) == ["a.txt", "c.txt"]
    assert head(repo) == head(repo, "refs/heads/main") == done.commit
    assert (repo / "a.txt").read_text() == "1\nTWO\n3\n"
    assert (repo / "c.txt").read_text() == "c\n"
    assert git(repo, "status", "--porcelain") == ""
    _gone(manager, info, repo)


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_merge_into_a_branch_not_checked_out(
    tmp_path: pathlib.Path, strategy: MergeStrategy
) -> None:
    """With another branch checked out, only the base branch's ref moves; the checkout stays."""
    manager, info, repo = await _task_with_a_turn(tmp_path, {"a.txt": "1\nTWO\n3\n"})
    git(repo, "checkout", "--quiet", "-b", "elsewhere")
    before = checkout_fingerprint(repo)
    done = await manager.merge(WorktreeMerge(key="t", strategy=strategy))
    assert not done.checkout_updated
    assert head(repo, "refs/heads/main") == done.commit
    assert git(repo, "show", "main:a.txt") == "1\nTWO\n3\n"
    assert checkout_fingerprint(repo) == before
    _gone(manager, info, repo)


async def test_merge_strategy_makes_a_merge_commit(tmp_path: pathlib.Path) -> None:
    """``merge`` makes a two-parent commit even when a fast-forward was possible."""
    manager, info, repo = await _task_with_a_turn(tmp_path, {"c.txt": "c\n"})
    tip = head(repo, "refs/heads/coding-agent/t")
    done = await manager.merge(WorktreeMerge(key="t", strategy="merge", message="Land it"))
    parents = git(repo, "log", "-1", "--format=%P", done.commit).split()
    assert parents == [info.base_commit, tip]
    assert git(repo, "log", "-1", "--format=%s", done.commit).strip() == "Land it"


async def test_squash_makes_one_single_parent_commit(tmp_path: pathlib.Path) -> None:
    """``squash`` lands the branch's turns as one commit on top of the base."""
    manager, info, repo = await _task_with_a_turn(tmp_path, {"c.txt": "c\n"})
    write_files(pathlib.Path(info.path), {"d.txt": "d\n"})
    await manager.commit(WorktreeCommit(key="t", message="turn 2: more"))
    done = await manager.merge(WorktreeMerge(key="t", strategy="squash"))
    assert git(repo, "log", "-1", "--format=%P", done.commit).split() == [info.base_commit]
    message = git(repo, "log", "-1", "--format=%B", done.commit)
    assert "turn 1: agent work" in message
    assert "turn 2: more" in message


async def test_rebase_replays_each_turn_on_a_moved_base(tmp_path: pathlib.Path) -> None:
    """``rebase`` replays every turn onto the base's new tip, keeping their authors."""
    manager, info, repo = await _task_with_a_turn(tmp_path, {"c.txt": "c\n"})
    write_files(pathlib.Path(info.path), {"d.txt": "d\n"})
    await manager.commit(WorktreeCommit(key="t", message="turn 2: more"))
    moved = commit_files(repo, {"b.txt": "user\n"}, "user's own work")
    git(repo, "config", "user.name", "Repo Owner")
    git(repo, "config", "user.email", "owner@example.invalid")
    done = await manager.merge(WorktreeMerge(key="t", strategy="rebase"))
    log = git(repo, "log", "--format=%s|%an|%cn|%P", f"{moved}..{done.commit}").splitlines()
    assert [line.split("|")[0] for line in log] == ["turn 2: more", "turn 1: agent work"]
    assert {tuple(line.split("|")[1:3]) for line in log} == {("Coding Agent", "Repo Owner")}
    assert log[-1].split("|")[3] == moved
    assert (repo / "b.txt").read_text() == "user\n"
    assert (repo / "d.txt").read_text() == "d\n"
    assert [e for e in worktree_entries(manager) if e.startswith(".")] == []


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_conflict_refused_and_checkout_unchanged(
    tmp_path: pathlib.Path, strategy: MergeStrategy
) -> None:
    """A conflicting merge is ``merge_conflict`` naming the files; checkout and task stay as
    they were, byte for byte."""
    manager, info, repo = await _task_with_a_turn(tmp_path, {"a.txt": "1\nAGENT\n3\n"})
    commit_files(repo, {"a.txt": "1\nUSER\n3\n"}, "user edits the same line")
    write_files(repo, {"b.txt": "uncommitted elsewhere\n"})
    before = checkout_fingerprint(repo)
    main_before = head(repo, "refs/heads/main")
    with pytest.raises(WorktreeRefused) as caught:
        await manager.merge(WorktreeMerge(key="t", strategy=strategy))
    assert caught.value.code == "merge_conflict"
    assert "a.txt" in caught.value.message
    assert checkout_fingerprint(repo) == before
    assert head(repo, "refs/heads/main") == main_before
    assert exists(info.path)
    assert "coding-agent/t" in branches(repo)
    assert [e for e in worktree_entries(manager) if e.startswith(".")] == []


async def test_dirty_checkout_in_touched_files_refused(tmp_path: pathlib.Path) -> None:
    """Local changes to a file the merge changes are ``dirty_checkout`` naming it; nothing moves."""
    manager, _info, repo = await _task_with_a_turn(tmp_path, {"a.txt": "1\nTWO\n3\n"})
    write_files(repo, {"a.txt": "1\n2\n3\nlocal\n"})
    before = checkout_fingerprint(repo)
    with pytest.raises(WorktreeRefused) as caught:
        await manager.merge(WorktreeMerge(key="t"))
    assert caught.value.code == "dirty_checkout"
    assert "a.txt" in caught.value.message
    assert checkout_fingerprint(repo) == before


async def test_untracked_file_in_the_way_refused(tmp_path: pathlib.Path) -> None:
    """An untracked file where the merge adds one is ``dirty_checkout``; it is kept."""
    manager, _info, repo = await _task_with_a_turn(tmp_path, {"c.txt": "agent\n"})
    write_files(repo, {"c.txt": "mine\n"})
    with pytest.raises(WorktreeRefused) as caught:
        await manager.merge(WorktreeMerge(key="t"))
    assert caught.value.code == "dirty_checkout"
    assert (repo / "c.txt").read_text() == "mine\n"


async def test_dirty_checkout_in_other_files_merged_and_kept(tmp_path: pathlib.Path) -> None:
    """Local changes to files the merge does not touch are allowed and preserved."""
    manager, _info, repo = await _task_with_a_turn(tmp_path, {"a.txt": "1\nTWO\n3\n"})
    write_files(repo, {"b.txt": "local edit\n", "scratch.txt": "untracked\n"})
    done = await manager.merge(WorktreeMerge(key="t"))
    assert done.checkout_updated
    assert (repo / "a.txt").read_text() == "1\nTWO\n3\n"
    assert (repo / "b.txt").read_text() == "local edit\n"
    assert (repo / "scratch.txt").read_text() == "untracked\n"
    assert sorted(git(repo, "status", "--porcelain").splitlines()) == [
        " M b.txt",
        "?? scratch.txt",
    ]


async def test_base_moved_during_the_merge_refused(tmp_path: pathlib.Path) -> None:
    """A base branch that moves between the merge's computation and its landing is
    ``base_moved`` (compare-and-swap), and keeps the other writer's commit."""
    manager, _info, repo = await _task_with_a_turn(tmp_path, {"c.txt": "c\n"})
    git(repo, "checkout", "--quiet", "-b", "elsewhere")
    racer = commit_files(repo, {"z.txt": "z\n"}, "racing commit")
    original_run = manager._git.run

    async def run_then_race(args: list[str], **kwargs: object) -> object:
        if args[:1] == ["worktree"] and args[1:2] == ["list"]:  # just before landing
            git(repo, "update-ref", "refs/heads/main", racer)
        return await original_run(args, **kwargs)  # type: ignore[arg-type]

    manager._git.run = run_then_race  # type: ignore[method-assign,assignment]
    with pytest.raises(WorktreeRefused) as caught:
        await manager.merge(WorktreeMerge(key="t"))
    assert caught.value.code == "base_moved"
    assert head(repo, "refs/heads/main") == racer


async def test_detached_base_refused(tmp_path: pathlib.Path) -> None:
    """A worktree made from a bare commit has no branch to merge into: ``no_base_branch``."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager, _info, _repo = await _task_with_a_turn(tmp_path, {"c.txt": "c\n"}, head(repo))
    with pytest.raises(WorktreeRefused) as caught:
        await manager.merge(WorktreeMerge(key="t"))
    assert caught.value.code == "no_base_branch"


async def test_deleted_base_branch_refused(tmp_path: pathlib.Path) -> None:
    """A base branch deleted since the task began is ``no_base_branch``; the task stays."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    git(repo, "branch", "feature")
    manager, info, _repo = await _task_with_a_turn(tmp_path, {"c.txt": "c\n"}, "feature")
    git(repo, "branch", "-D", "feature")
    with pytest.raises(WorktreeRefused) as caught:
        await manager.merge(WorktreeMerge(key="t"))
    assert caught.value.code == "no_base_branch"
    assert exists(info.path)


async def test_uncommitted_work_in_the_worktree_is_merged(tmp_path: pathlib.Path) -> None:
    """Files a cut-short turn left uncommitted in the worktree are committed and merged, not
    thrown away with the worktree."""
    manager, info, repo = await _task_with_a_turn(tmp_path, {"c.txt": "c\n"})
    write_files(pathlib.Path(info.path), {"cut.txt": "never committed\n"})
    done = await manager.merge(WorktreeMerge(key="t"))
    assert "cut.txt" in done.files
    assert read_text(repo, "cut.txt") == "never committed\n"
    assert read_text(repo, "c.txt") == "c\n"
