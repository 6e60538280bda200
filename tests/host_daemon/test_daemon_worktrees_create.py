"""WorktreeManager.create on real repositories: where the branch starts, what it carries, what
it refuses, and that the user's checkout is never touched."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

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

from host_daemon._records import WorktreeCreate, WorktreeInfo, WorktreeSkipped
from host_daemon._worktrees import WorktreeRefused


def _request(repo: pathlib.Path, key: str = "task1", **fields: object) -> WorktreeCreate:
    return WorktreeCreate(
        key=key,
        cwd=str(repo),
        branch=f"coding-agent/{key}-work",
        **fields,  # type: ignore[arg-type]
    )


async def _create(manager: object, request: WorktreeCreate) -> WorktreeInfo:
    info = await manager.create(request)  # type: ignore[attr-defined]
    assert isinstance(info, WorktreeInfo)
    return info


async def test_create_from_head(tmp_path: pathlib.Path) -> None:
    """The worktree holds HEAD's files on a new branch based at HEAD, from HEAD's branch."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "one\n", "src/b.py": "print()\n"})
    manager = make_manager(tmp_path)
    info = await _create(manager, _request(repo))
    worktree = pathlib.Path(info.path)
    assert worktree.parent == tmp_path / "state" / "worktrees"
    assert (worktree / "a.txt").read_text() == "one\n"
    assert (worktree / "src" / "b.py").read_text() == "print()\n"
    assert (info.repo, info.subdir, info.base_branch) == (str(repo), "", "main")
    assert info.base_commit == info.head_commit == head(repo)
    assert head(repo, "refs/heads/coding-agent/task1-work") == head(repo)
    assert git(worktree, "symbolic-ref", "HEAD").strip() == "refs/heads/coding-agent/task1-work"


async def test_create_from_base_ref(tmp_path: pathlib.Path) -> None:
    """``base_ref`` naming another local branch starts the worktree there, from that branch."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "main\n"})
    git(repo, "checkout", "--quiet", "-b", "feature")
    feature = commit_files(repo, {"a.txt": "feature\n"}, "feature work")
    git(repo, "checkout", "--quiet", "main")
    info = await _create(make_manager(tmp_path), _request(repo, base_ref="feature"))
    assert (info.base_branch, info.base_commit) == ("feature", feature)
    assert read_text(info.path, "a.txt") == "feature\n"


async def test_create_from_a_commit_has_no_base_branch(tmp_path: pathlib.Path) -> None:
    """A ``base_ref`` that is a bare commit gives a worktree without a base branch."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "one\n"})
    first = head(repo)
    commit_files(repo, {"a.txt": "two\n"}, "second")
    info = await _create(make_manager(tmp_path), _request(repo, base_ref=first))
    assert (info.base_branch, info.base_commit) == (None, first)
    assert read_text(info.path, "a.txt") == "one\n"


async def test_create_in_a_subdirectory_records_it(tmp_path: pathlib.Path) -> None:
    """A project below the repository's top records its place, and runs start there."""
    repo = make_repo(tmp_path / "repo", {"pkg/app/main.py": "x = 1\n"})
    manager = make_manager(tmp_path)
    info = await _create(manager, _request(repo / "pkg" / "app"))
    assert (info.repo, info.subdir) == (str(repo), "pkg/app")
    assert manager.run_directory("task1") == os.path.join(info.path, "pkg", "app")


async def test_uncommitted_changes_stay_out_by_default(tmp_path: pathlib.Path) -> None:
    """Without ``include_uncommitted`` the worktree has the committed files only."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "committed\n"})
    write_files(repo, {"a.txt": "edited\n", "new.txt": "untracked\n"})
    info = await _create(make_manager(tmp_path), _request(repo))
    assert read_text(info.path, "a.txt") == "committed\n"
    assert not exists(info.path, "new.txt")
    assert info.head_commit == info.base_commit


async def test_include_uncommitted_is_the_first_commit(tmp_path: pathlib.Path) -> None:
    """Tracked edits, staged files and untracked non-ignored files come in as one commit."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "committed\n", ".gitignore": "*.log\n"})
    write_files(repo, {"a.txt": "edited\n", "staged.txt": "staged\n", "new/u.txt": "u\n"})
    write_files(repo, {"debug.log": "ignored\n"})
    git(repo, "add", "staged.txt")
    info = await _create(make_manager(tmp_path), _request(repo, include_uncommitted=True))
    worktree = pathlib.Path(info.path)
    assert (worktree / "a.txt").read_text() == "edited\n"
    assert (worktree / "staged.txt").read_text() == "staged\n"
    assert (worktree / "new" / "u.txt").read_text() == "u\n"
    assert not (worktree / "debug.log").exists()
    assert info.head_commit != info.base_commit
    assert git(worktree, "rev-parse", "HEAD~1").strip() == info.base_commit
    assert git(worktree, "status", "--porcelain").strip() == ""


async def test_include_uncommitted_without_changes_adds_no_commit(tmp_path: pathlib.Path) -> None:
    """A clean checkout with ``include_uncommitted`` gives no empty first commit."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "one\n"})
    info = await _create(make_manager(tmp_path), _request(repo, include_uncommitted=True))
    assert info.head_commit == info.base_commit


async def test_create_leaves_the_checkout_untouched(tmp_path: pathlib.Path) -> None:
    """The user's HEAD, status and every file are the same after a create that copies changes."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "one\n", "b.txt": "b\n"})
    write_files(repo, {"a.txt": "edited\n", "new.txt": "untracked\n"})
    git(repo, "add", "a.txt")
    write_files(repo, {"b.txt": "unstaged\n"})
    before = checkout_fingerprint(repo)
    await _create(make_manager(tmp_path), _request(repo, include_uncommitted=True))
    assert checkout_fingerprint(repo) == before


async def test_not_a_repository_refused_when_required(tmp_path: pathlib.Path) -> None:
    """A project outside any repository is ``not_a_repository`` when isolation is required."""
    project = tmp_path / "plain"
    project.mkdir()
    with pytest.raises(WorktreeRefused) as caught:
        await make_manager(tmp_path).create(_request(project))
    assert caught.value.code == "not_a_repository"
    assert str(project) in caught.value.message


async def test_not_a_repository_skipped_when_not_required(tmp_path: pathlib.Path) -> None:
    """With ``required=False`` a project outside any repository is skipped, with the reason."""
    project = tmp_path / "plain"
    project.mkdir()
    answer = await make_manager(tmp_path).create(_request(project, required=False))
    assert isinstance(answer, WorktreeSkipped)
    assert "not inside a git repository" in answer.reason


async def test_submodules_refused_with_the_reason(tmp_path: pathlib.Path) -> None:
    """A repository with a submodule is ``unsupported_repository``, saying why and what to do."""
    inner = make_repo(tmp_path / "inner", {"x.txt": "x\n"})
    repo = make_repo(tmp_path / "repo", {"a.txt": "one\n"})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "--quiet", "add", str(inner), "sub")
    git(repo, "commit", "--quiet", "-m", "add submodule")
    manager = make_manager(tmp_path)
    with pytest.raises(WorktreeRefused) as caught:
        await manager.create(_request(repo))
    assert caught.value.code == "unsupported_repository"
    assert "submodules" in caught.value.message
    assert 'isolation "none"' in caught.value.message
    assert branches(repo) == ["main"]
    assert worktree_entries(manager) == []


async def test_lfs_skipped_when_not_required(tmp_path: pathlib.Path) -> None:
    """A repository storing files with Git LFS is skipped (not required) with the reason."""
    attributes = "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    repo = make_repo(tmp_path / "repo", {"assets/.gitattributes": attributes, "a.txt": "a\n"})
    answer = await make_manager(tmp_path).create(_request(repo, required=False))
    assert isinstance(answer, WorktreeSkipped)
    assert "Git LFS" in answer.reason
    assert "assets/.gitattributes" in answer.reason


async def test_repository_outside_the_roots_refused(tmp_path: pathlib.Path) -> None:
    """A project inside a root whose repository's top level is outside every root is refused."""
    repo = make_repo(tmp_path / "repo", {"project/a.txt": "a\n"})
    manager = make_manager(tmp_path, roots=(str(repo / "project"),))
    with pytest.raises(WorktreeRefused) as caught:
        await manager.create(_request(repo / "project"))
    assert caught.value.code == "path_outside_root"
    assert str(repo) in caught.value.message


async def test_project_outside_the_roots_refused(tmp_path: pathlib.Path) -> None:
    """A project directory outside every root is ``path_outside_root`` before git runs."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    (tmp_path / "root").mkdir()
    manager = make_manager(tmp_path, roots=(str(tmp_path / "root"),))
    with pytest.raises(WorktreeRefused) as caught:
        await manager.create(_request(repo))
    assert caught.value.code == "path_outside_root"


async def test_existing_key_refused(tmp_path: pathlib.Path) -> None:
    """A second create with the same key is ``worktree_exists``; the first is intact."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager = make_manager(tmp_path)
    info = await _create(manager, _request(repo))
    other = WorktreeCreate(key="task1", cwd=str(repo), branch="coding-agent/other")
    with pytest.raises(WorktreeRefused) as caught:
        await manager.create(other)
    assert caught.value.code == "worktree_exists"
    assert branches(repo) == ["coding-agent/task1-work", "main"]
    assert exists(info.path, "a.txt")


async def test_existing_branch_refused(tmp_path: pathlib.Path) -> None:
    """A branch name that exists already is ``worktree_exists``, and nothing is left behind."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    git(repo, "branch", "coding-agent/task1-work")
    manager = make_manager(tmp_path)
    with pytest.raises(WorktreeRefused) as caught:
        await manager.create(_request(repo))
    assert caught.value.code == "worktree_exists"
    assert "coding-agent/task1-work" in caught.value.message
    assert worktree_entries(manager) == []


@pytest.mark.parametrize(
    "branch", ["main", "coding-agent/", "coding-agent/a..b", "coding-agent/x.lock", "-x"]
)
async def test_bad_branch_name_refused(tmp_path: pathlib.Path, branch: str) -> None:
    """A branch outside ``coding-agent/`` or against git's rules is ``invalid_request``."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    request = WorktreeCreate(key="task1", cwd=str(repo), branch=branch)
    with pytest.raises(WorktreeRefused) as caught:
        await make_manager(tmp_path).create(request)
    assert caught.value.code == "invalid_request"
    assert branches(repo) == ["main"]


@pytest.mark.parametrize("key", ["a/b", "../up", "", ".hidden"])
async def test_bad_key_refused(tmp_path: pathlib.Path, key: str) -> None:
    """A key that is no plain name (a slash, a dot start, empty) is ``invalid_request``."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    request = WorktreeCreate(key=key, cwd=str(repo), branch="coding-agent/x")
    with pytest.raises(WorktreeRefused) as caught:
        await make_manager(tmp_path).create(request)
    assert caught.value.code == "invalid_request"


async def test_metadata_written_beside_the_worktree(tmp_path: pathlib.Path) -> None:
    """``<key>.json`` records the worktree (what a sweep after a crash works from)."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager = make_manager(tmp_path)
    info = await _create(manager, _request(repo))
    meta = json.loads(read_text(manager.worktrees_dir, "task1.json"))
    assert meta["branch"] == info.branch
    assert meta["base_commit"] == info.base_commit
    assert meta["path"] == info.path


async def test_disk_budget_refused_with_the_figures(tmp_path: pathlib.Path) -> None:
    """A base tree larger than the budget is ``disk_budget``, naming the sizes; nothing made."""
    repo = make_repo(tmp_path / "repo", {"big.bin": os.urandom(200_000)})
    manager = make_manager(tmp_path, max_bytes=100_000)
    with pytest.raises(WorktreeRefused) as caught:
        await manager.create(_request(repo))
    assert caught.value.code == "disk_budget"
    assert "100000 bytes" in caught.value.message
    assert "200000" in caught.value.message
    assert branches(repo) == ["main"]


async def test_disk_budget_counts_existing_worktrees(tmp_path: pathlib.Path) -> None:
    """The worktrees already made count against the budget: the second create is refused."""
    repo = make_repo(tmp_path / "repo", {"big.bin": os.urandom(300_000)})
    manager = make_manager(tmp_path, max_bytes=500_000)
    await _create(manager, _request(repo, key="one"))
    with pytest.raises(WorktreeRefused) as caught:
        await manager.create(_request(repo, key="two"))
    assert caught.value.code == "disk_budget"


async def test_zero_budget_skips_an_optional_worktree(tmp_path: pathlib.Path) -> None:
    """With worktrees disabled, a create that allows it is skipped (the task runs in place)."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    answer = await make_manager(tmp_path, max_bytes=0).create(_request(repo, required=False))
    assert isinstance(answer, WorktreeSkipped)
    assert "disabled" in answer.reason


async def test_zero_budget_disables_worktrees(tmp_path: pathlib.Path) -> None:
    """A budget of 0 refuses every create with ``disk_budget``."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    with pytest.raises(WorktreeRefused) as caught:
        await make_manager(tmp_path, max_bytes=0).create(_request(repo))
    assert caught.value.code == "disk_budget"
    assert "disabled" in caught.value.message


def _owned_by_nobody(base: pathlib.Path) -> pathlib.Path:
    """A repository under ``base`` whose every file belongs to uid/gid 65534."""
    repo = make_repo(base / "repo", {"a.txt": "a\n"})
    for current, dirs, files in os.walk(base):
        for name in (*dirs, *files, ""):
            os.chown(os.path.join(current, name), NOBODY, NOBODY, follow_symlinks=False)
    return repo


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="running git as another user needs root")
async def test_owner_who_cannot_reach_the_worktrees_dir_refused() -> None:
    """A root daemon whose worktrees dir lies under a directory the repository's owner cannot
    pass through refuses with ``path_not_accessible`` naming it, and leaves nothing behind."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="wt-owner-"))
    try:
        os.chmod(base, 0o755)  # noqa: S103 -- the repository's owner (nobody) must reach it
        repo = _owned_by_nobody(base)
        state = base / "state"
        state.mkdir(mode=0o700)
        manager = make_manager(base, worktrees_dir=str(state / "worktrees"))
        with pytest.raises(WorktreeRefused) as caught:
            await manager.create(_request(repo))
        assert caught.value.code == "path_not_accessible"
        assert f"{state} (mode 700)" in caught.value.message
        assert worktree_entries(manager) == []
        listed = git(repo, "-c", "safe.directory=*", "branch", "--format=%(refname:short)")
        assert listed.split() == ["main"]
    finally:
        shutil.rmtree(base)


@pytest.mark.skipif(os.geteuid() != 0, reason="running git as another user needs root")
async def test_root_daemon_runs_git_as_the_repository_owner() -> None:
    """A root daemon makes the worktree and its commits as the repository's owner."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="wt-owner-"))
    try:
        os.chmod(base, 0o755)  # noqa: S103 -- the repository's owner (nobody) must reach it
        nobody = NOBODY
        repo = _owned_by_nobody(base)
        manager = make_manager(base)
        info = await _create(manager, _request(repo))
        assert os.stat(info.path).st_uid == nobody
        assert os.stat(pathlib.Path(info.path, "a.txt")).st_uid == nobody
        assert os.stat(repo / ".git" / "worktrees" / "task1").st_uid == nobody
    finally:
        shutil.rmtree(base)


async def test_worktrees_dir_inside_the_repository_refused(tmp_path: pathlib.Path) -> None:
    """A worktrees directory inside the project's repository is refused: its worktrees would
    appear in the user's checkout (and in an ``include_uncommitted`` snapshot)."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    manager = make_manager(tmp_path, worktrees_dir=str(repo / ".state" / "worktrees"))
    before = checkout_fingerprint(repo)
    with pytest.raises(WorktreeRefused) as caught:
        await manager.create(_request(repo))
    assert caught.value.code == "invalid_request"
    assert "--worktrees-dir" in caught.value.message
    assert checkout_fingerprint(repo) == before
