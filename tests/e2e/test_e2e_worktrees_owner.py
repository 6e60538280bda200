"""End to end, issue 9: a root daemon and a repository owned by another user (as in a container
whose daemon is root on the host): git runs as the owner; nothing is left owned by root."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import attrs
import pytest
from _support.git_repos import git, git_env
from _support.scripted_model import Reply, ScriptedModel
from _support.sdk_tasks import ok
from _support.worktree_e2e import (
    World,
    create,
    make_world,
    run_to_waiting,
    serving,
    write,
)

pytestmark = [
    pytest.mark.claude_cli,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the repository to nobody"),
]
NOBODY = 65534


def root_git(repo: pathlib.Path, *args: str) -> str:
    """git as root in nobody's repository (git refuses that unless told it is safe)."""
    trust = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory"}
    env = git_env(repo.parent.parent / "git-home", **trust, GIT_CONFIG_VALUE_0="*")
    return git(repo, *args, env=env)


def linked_worktrees(repo: pathlib.Path) -> list[str]:
    """The repository's linked worktrees (``git worktree list`` but the checkout)."""
    listing = root_git(repo, "worktree", "list", "--porcelain").splitlines()
    return [line.removeprefix("worktree ") for line in listing[1:] if line[:9] == "worktree "]


@pytest.fixture
def base() -> Iterator[pathlib.Path]:
    """A directory everyone can traverse (pytest's tmp_path is root's own, mode 0700)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="coding-agent-owner-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def world(base: pathlib.Path, model: ScriptedModel) -> World:
    """The checkout, owned by nobody; the daemon is root, its worktrees where nobody can reach.

    ``up`` makes its state dir 0700, so the default ``<state>/worktrees`` is out of the owner's
    reach: these worktrees go in the root, which everyone may traverse.
    """
    made = attrs.evolve(make_world(base, model), worktrees_dir=base / "root" / ".worktrees")
    made.root.chmod(0o755)
    for directory, names, files in os.walk(made.repo):
        for name in [directory, *(os.path.join(directory, n) for n in names + files)]:
            os.lchown(name, NOBODY, NOBODY)
    return made


def owners(top: pathlib.Path) -> set[int]:
    """The uids owning anything under ``top`` (``.git`` included)."""
    found = {top.lstat().st_uid}
    for directory, names, files in os.walk(top):
        found |= {pathlib.Path(directory, n).lstat().st_uid for n in names + files}
    return found


async def test_a_merge_leaves_the_checkout_owned_by_its_owner(
    world: World, model: ScriptedModel
) -> None:
    """Claude (root) writes a new directory; after the merge every file of the repo is nobody's."""
    model.script(write("newdir/file.txt", "new\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Owned", "Write newdir/file.txt")
        await run_to_waiting(session.client, task_id)
        await ok(session.client, "merge_task", id=task_id)
    assert (world.repo / "newdir" / "file.txt").read_text() == "new\n"
    assert owners(world.repo) == {NOBODY}
    assert linked_worktrees(world.repo) == []
    assert not world.worktree(task_id).exists()


async def test_discard_removes_what_a_root_agent_wrote_in_a_users_worktree(
    world: World, model: ScriptedModel
) -> None:
    """discard_task in a nobody-owned repo removes Claude's root-owned files and the branch."""
    model.script(write("newdir/file.txt", "new\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Owned", "Write newdir/file.txt")
        await run_to_waiting(session.client, task_id)
        branch = (await ok(session.client, "report", id=task_id))["branch"]
        await ok(session.client, "discard_task", id=task_id)
    assert not world.worktree(task_id).exists()
    assert linked_worktrees(world.repo) == []
    assert root_git(world.repo, "branch", "--list", branch) == ""
    assert owners(world.repo) == {NOBODY}


async def test_an_owner_who_cannot_reach_the_worktrees_runs_without_one(
    world: World, model: ScriptedModel
) -> None:
    """Worktrees in the 0700 state dir: automatic isolation runs in place and says why."""
    model.script(write("plain.txt", "in place\n"), Reply("Done."))
    in_state = attrs.evolve(world, worktrees_dir=None)
    async with serving(in_state) as session:
        created = await ok(
            session.client, "create_task", title="Owned", instructions="w", project_dir="repo"
        )
        await run_to_waiting(session.client, created["task_id"])
    assert created["isolation"] == "none"
    assert "cannot reach the worktrees directory" in created["isolation_note"]
    assert (world.repo / "plain.txt").read_text() == "in place\n"
