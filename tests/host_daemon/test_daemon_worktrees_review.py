"""A task's branch under review: one commit per turn, the diff against the base, the commits."""

from __future__ import annotations

import pathlib

import pytest
from _support.git_repos import (
    commit_files,
    exists,
    git,
    make_manager,
    make_repo,
    write_files,
    write_script,
)

from host_daemon._records import (
    FileStat,
    WorktreeCommit,
    WorktreeCommits,
    WorktreeCreate,
    WorktreeDiff,
    WorktreeInfo,
)
from host_daemon._worktrees import WorktreeManager, WorktreeRefused


async def _worktree(
    tmp_path: pathlib.Path, files: dict[str, str | bytes]
) -> tuple[WorktreeManager, WorktreeInfo]:
    repo = make_repo(tmp_path / "repo", files)
    manager = make_manager(tmp_path)
    info = await manager.create(WorktreeCreate(key="t", cwd=str(repo), branch="coding-agent/t"))
    assert isinstance(info, WorktreeInfo)
    return manager, info


async def test_commit_records_the_turns_changes(tmp_path: pathlib.Path) -> None:
    """Edits, new and deleted files become one commit on the branch, with the message given."""
    manager, info = await _worktree(tmp_path, {"a.txt": "a\n", "gone.txt": "g\n"})
    worktree = pathlib.Path(info.path)
    write_files(worktree, {"a.txt": "changed\n", "new/b.txt": "b\n"})
    (worktree / "gone.txt").unlink()
    done = await manager.commit(WorktreeCommit(key="t", message="turn 1: edit\n\nsummary"))
    assert done.commit is not None
    assert sorted(done.files) == ["a.txt", "gone.txt", "new/b.txt"]
    assert git(worktree, "rev-parse", "refs/heads/coding-agent/t").strip() == done.commit
    assert git(worktree, "log", "-1", "--format=%B", done.commit) == "turn 1: edit\n\nsummary\n\n"
    assert git(worktree, "status", "--porcelain") == ""


async def test_commit_uses_the_daemon_identity_without_config(tmp_path: pathlib.Path) -> None:
    """With no user.name/user.email configured, commits are by Coding Agent."""
    manager, info = await _worktree(tmp_path, {"a.txt": "a\n"})
    write_files(pathlib.Path(info.path), {"a.txt": "b\n"})
    done = await manager.commit(WorktreeCommit(key="t", message="turn 1"))
    assert done.commit is not None
    who = git(pathlib.Path(info.path), "log", "-1", "--format=%an <%ae>|%cn <%ce>", done.commit)
    assert (
        who.strip() == "Coding Agent <coding-agent@localhost>|Coding Agent <coding-agent@localhost>"
    )


async def test_commit_uses_the_repository_identity(tmp_path: pathlib.Path) -> None:
    """A repository with user.name and user.email commits as them."""
    manager, info = await _worktree(tmp_path, {"a.txt": "a\n"})
    git(pathlib.Path(info.repo), "config", "user.name", "Repo Owner")
    git(pathlib.Path(info.repo), "config", "user.email", "owner@example.invalid")
    write_files(pathlib.Path(info.path), {"a.txt": "b\n"})
    done = await manager.commit(WorktreeCommit(key="t", message="turn 1"))
    assert done.commit is not None
    who = git(pathlib.Path(info.path), "log", "-1", "--format=%an <%ae>", done.commit)
    assert who.strip() == "Repo Owner <owner@example.invalid>"


async def test_commit_without_changes_makes_no_commit(tmp_path: pathlib.Path) -> None:
    """A turn that changed nothing gives ``commit=None`` and leaves the branch where it was."""
    manager, info = await _worktree(tmp_path, {"a.txt": "a\n"})
    done = await manager.commit(WorktreeCommit(key="t", message="turn 1"))
    assert (done.commit, done.files) == (None, [])
    assert git(pathlib.Path(info.path), "rev-parse", "HEAD").strip() == info.base_commit


async def test_commit_skips_the_repositorys_hooks(tmp_path: pathlib.Path) -> None:
    """Hooks of the user's repository neither block (pre-commit) nor run (post-commit, which
    ``--no-verify`` alone would not skip) on the daemon's commit."""
    manager, info = await _worktree(tmp_path, {"a.txt": "a\n"})
    hooks = pathlib.Path(info.repo, ".git", "hooks")
    write_script(hooks / "pre-commit", "#!/bin/sh\nexit 1\n")
    write_script(hooks / "post-commit", f"#!/bin/sh\ntouch {tmp_path}/hook-ran\n")
    write_files(pathlib.Path(info.path), {"a.txt": "b\n"})
    done = await manager.commit(WorktreeCommit(key="t", message="turn 1"))
    assert done.commit is not None
    assert not exists(tmp_path / "hook-ran")


async def test_commit_of_an_unknown_key_refused(tmp_path: pathlib.Path) -> None:
    """A key with no worktree is ``unknown_worktree``."""
    with pytest.raises(WorktreeRefused) as caught:
        await make_manager(tmp_path).commit(WorktreeCommit(key="nope", message="m"))
    assert caught.value.code == "unknown_worktree"


async def test_diff_is_exactly_the_branch_against_its_base(tmp_path: pathlib.Path) -> None:
    """The diff is ``git diff base head`` byte for byte, with per-file counts and statuses."""
    manager, info = await _worktree(tmp_path, {"a.txt": "1\n2\n3\n", "old.txt": "o\n" * 20})
    worktree = pathlib.Path(info.path)
    write_files(worktree, {"a.txt": "1\ntwo\n3\n4\n", "n.txt": "new\n"})
    git(worktree, "mv", "old.txt", "renamed.txt")
    await manager.commit(WorktreeCommit(key="t", message="turn 1"))
    diff = await manager.diff(WorktreeDiff(key="t"))
    expected = git(worktree, "diff", "-M", info.base_commit, "HEAD")
    assert diff.diff == expected
    assert not diff.truncated
    assert diff.base_commit == info.base_commit
    assert diff.head_commit == git(worktree, "rev-parse", "HEAD").strip()
    assert sorted(diff.files, key=lambda f: f.path) == [
        FileStat("a.txt", 2, 1, "modified"),
        FileStat("n.txt", 1, 0, "added"),
        FileStat("renamed.txt", 0, 0, "renamed"),
    ]


async def test_diff_of_a_binary_file_has_no_line_counts(tmp_path: pathlib.Path) -> None:
    """A binary file shows in the figures with None counts and in the diff as binary."""
    manager, info = await _worktree(tmp_path, {"a.txt": "a\n"})
    write_files(pathlib.Path(info.path), {"blob.bin": bytes(range(256)) * 4})
    await manager.commit(WorktreeCommit(key="t", message="turn 1"))
    diff = await manager.diff(WorktreeDiff(key="t"))
    assert diff.files == [FileStat("blob.bin", None, None, "added")]
    assert "Binary files /dev/null and b/blob.bin differ" in diff.diff


async def test_diff_cut_at_max_bytes(tmp_path: pathlib.Path) -> None:
    """A diff larger than ``max_bytes`` is cut there and marked truncated; figures stay whole."""
    manager, info = await _worktree(tmp_path, {"a.txt": "a\n"})
    write_files(pathlib.Path(info.path), {f"f{n}.txt": "line\n" * 50 for n in range(20)})
    await manager.commit(WorktreeCommit(key="t", message="turn 1"))
    whole = await manager.diff(WorktreeDiff(key="t"))
    cut = await manager.diff(WorktreeDiff(key="t", max_bytes=1000))
    assert len(whole.diff) > 1000
    assert cut.truncated
    assert cut.diff == whole.diff[:1000]
    assert len(cut.files) == 20


async def test_diff_shows_committed_work_only(tmp_path: pathlib.Path) -> None:
    """Uncommitted edits in the worktree are not in the diff until a commit takes them."""
    manager, info = await _worktree(tmp_path, {"a.txt": "a\n"})
    write_files(pathlib.Path(info.path), {"a.txt": "edited\n"})
    diff = await manager.diff(WorktreeDiff(key="t"))
    assert (diff.diff, diff.files, diff.truncated) == ("", [], False)


async def test_commits_lists_the_turns_oldest_first(tmp_path: pathlib.Path) -> None:
    """Each turn's commit is listed with subject, body, author, date and files, oldest first."""
    manager, info = await _worktree(tmp_path, {"a.txt": "a\n"})
    worktree = pathlib.Path(info.path)
    write_files(worktree, {"a.txt": "b\n"})
    first = await manager.commit(WorktreeCommit(key="t", message="turn 1: a\n\nbody one"))
    write_files(worktree, {"c.txt": "c\n", "d.txt": "d\n"})
    second = await manager.commit(WorktreeCommit(key="t", message="turn 2: c"))
    listed = (await manager.commits(WorktreeCommits(key="t"))).commits
    assert [c.sha for c in listed] == [first.commit, second.commit]
    assert [(c.subject, c.body) for c in listed] == [("turn 1: a", "body one"), ("turn 2: c", "")]
    assert listed[0].files == ["a.txt"]
    assert sorted(listed[1].files) == ["c.txt", "d.txt"]
    assert listed[0].author == "Coding Agent <coding-agent@localhost>"
    assert listed[0].at.startswith(
        git(worktree, "log", "-1", "--format=%aI", first.commit or "")[:10]
    )


async def test_commits_exclude_the_base_history(tmp_path: pathlib.Path) -> None:
    """Commits of the base (before the branch) are not listed; an untouched branch lists none."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    commit_files(repo, {"b.txt": "b\n"}, "second on main")
    manager = make_manager(tmp_path)
    await manager.create(WorktreeCreate(key="t", cwd=str(repo), branch="coding-agent/t"))
    assert (await manager.commits(WorktreeCommits(key="t"))).commits == []
