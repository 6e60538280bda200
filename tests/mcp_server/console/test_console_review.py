"""``merge`` and ``discard`` through the task CLI, on a real git project (issue 9's worktrees)."""

from __future__ import annotations

import json
import pathlib

from _support.console_cli import World, console_world, git


async def written(world: World, name: str) -> str:
    """A worktree task whose run wrote ``name`` (committed on its branch); its id."""
    created = await world.cli("new", "--title", f"Write {name}", f"write {name}", "--wait")
    assert created.code == 0, created
    return created.out.split()[0]


async def test_merge_through_the_cli(tmp_path: pathlib.Path) -> None:
    """``merge ID --strategy squash`` lands the task's file on main and says where, in plain."""
    async with console_world(tmp_path, git_repo=True) as world:
        task_id = await written(world, "hello.txt")
        merged = await world.cli("merge", task_id, "--strategy", "squash", "--message", "Hi")
        head = (await git(world.root, "rev-parse", "main")).strip()
        subject = (await git(world.root, "log", "-1", "--format=%s", "main")).strip()
    assert (merged.code, merged.err) == (0, "")
    assert merged.out == (
        f"{task_id} merged: status completed\ninto main at {head[:12]} (1 file)\n"
    )
    assert subject == "Hi"
    assert (world.root / "hello.txt").read_text() == "written by the stand-in\n"


async def test_discard_through_the_cli(tmp_path: pathlib.Path) -> None:
    """``discard ID --json`` removes the task's worktree and branch; main is untouched."""
    async with console_world(tmp_path, git_repo=True) as world:
        task_id = await written(world, "scrap.txt")
        branch = json.loads((await world.cli("show", task_id, "--json")).out)["branch"]
        assert branch in await git(world.root, "branch", "--list", "coding-agent/*")
        discarded = await world.cli("discard", task_id, "--json")
        branches = await git(world.root, "branch", "--list", "coding-agent/*")
    assert discarded.code == 0, discarded
    answer = json.loads(discarded.out)
    assert (answer["status"], answer["review"], answer["discard"]) == (
        "cancelled",
        "discarded",
        {"removed_worktree": True, "deleted_branch": True},
    )
    assert branches == ""
    assert not (world.root / "scrap.txt").exists()
