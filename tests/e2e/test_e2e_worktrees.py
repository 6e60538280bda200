"""End to end, issue 9: a git worktree per task, reviewed and merged or discarded over MCP.

A real ``coding-agent up`` (daemon and server), the official MCP SDK client, the real Claude Code
CLI against a scripted model on loopback that makes Claude call its own Read/Edit/Write tools
(``_support/worktree_e2e.py``), and real git repositories made by the tests. Merging is in
``test_e2e_worktrees_merge.py``.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import attrs
import pytest
import trio
from _support.checkouts import Snapshot, add_lfs_attributes, add_submodule
from _support.git_repos import git
from _support.scripted_model import Hold, Reply, ScriptedModel
from _support.sdk_tasks import events, ok, read_diff, read_json, refused, said, wait_done
from _support.worktree_e2e import (
    BASE_FILES,
    DEADLINE_S,
    World,
    branch_of,
    create,
    edit,
    eventually,
    make_world,
    read,
    run_to_waiting,
    same_path,
    serving,
    worktree_paths,
    write,
)
from mcp.shared.exceptions import MCPError

pytestmark = pytest.mark.claude_cli


@pytest.fixture
def world(tmp_path: pathlib.Path, model: ScriptedModel) -> World:
    """The user's checkout (``root/repo`` on main) and ``up``'s environment."""
    return make_world(tmp_path, model)


# -- isolation -------------------------------------------------------------------------------


async def test_claude_runs_in_the_tasks_worktree_not_the_checkout(
    world: World, model: ScriptedModel
) -> None:
    """Claude's cwd (run_started, /proc, its own prompt) is the task's worktree; it writes there."""
    gate = Hold(then=write("made.txt", "made by the agent\n"))
    model.script(gate, Reply("Wrote made.txt."))
    async with serving(world) as session:
        task_id = await create(session.client, "Make a file", "Write made.txt")
        with trio.fail_after(DEADLINE_S):
            await gate.reached.wait()
        started = [e for e in await events(session.client, task_id) if e["kind"] == "run_started"]
        assert len(started) == 1, started
        worktree = world.worktree(task_id)
        assert same_path(started[0]["data"]["cwd"], worktree)
        assert same_path(os.readlink(f"/proc/{started[0]['data']['pid']}/cwd"), worktree)
        assert f"Primary working directory: {started[0]['data']['cwd']}" in json.dumps(
            model.main_requests[0]
        )
        gate.release()
        await run_to_waiting(session.client, task_id)
    assert (worktree / "made.txt").read_text() == "made by the agent\n"
    assert not (world.repo / "made.txt").exists()
    assert branch_of(world, task_id) == f"coding-agent/{task_id[:8]}-make-a-file"
    assert worktree_paths(world.repo) == [str(world.repo), str(worktree)]
    assert git(world.repo, "status", "--porcelain") == ""


async def test_a_project_in_a_subdirectory_runs_in_that_subdirectory_of_its_worktree(
    world: World, model: ScriptedModel
) -> None:
    """project_dir repo/pkg: Claude works in <worktree>/pkg; its file is pkg/… on the branch."""
    model.script(write("inner.txt", "inside pkg\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Sub", "Write inner.txt", project_dir="repo/pkg")
        await run_to_waiting(session.client, task_id)
        started = [e for e in await events(session.client, task_id) if e["kind"] == "run_started"]
    assert same_path(started[0]["data"]["cwd"], world.worktree(task_id) / "pkg")
    branch = branch_of(world, task_id)
    assert git(world.repo, "diff", "--name-only", "main", branch) == "pkg/inner.txt\n"
    assert not (world.repo / "pkg" / "inner.txt").exists()


@pytest.mark.parametrize("live", [False, True], ids=["per-turn", "live"])
async def test_the_checkout_is_out_of_reach_of_the_agent(
    world: World, model: ScriptedModel, live: bool
) -> None:
    """Reading or writing the checkout by absolute path: Claude asks, is denied (per turn at
    once; live, each ask reaches the client as a pending approval, which denies it); nothing
    changes."""
    before = Snapshot.of(world.repo)
    model.script(
        read(str(world.repo / "keep.txt")),
        write(str(world.repo / "planted.txt"), "escaped the worktree\n"),
        Reply("Tried."),
    )
    async with serving(world) as session:
        task_id = await create(session.client, "Escape", "Touch the checkout", live=live)
        for name in ("keep.txt", "planted.txt") if live else ():
            task = await wait_done(session.client, task_id, timeout=DEADLINE_S)
            assert task["status"] == "input_required", task
            (pending,) = task["pending_approvals"]
            assert pending["input"]["file_path"] == str(world.repo / name)
            await ok(
                session.client,
                "approve",
                id=task_id,
                request_id=pending["request_id"],
                decision="deny",
                message="no permission outside the worktree",
            )
        await run_to_waiting(session.client, task_id)
        logged = await events(session.client, task_id)
    results = [e["data"] for e in logged if e["data"].get("kind") == "tool_result"]
    assert [r["is_error"] for r in results] == [True, True], results
    assert all("permission" in r["text"] for r in results), results
    assert Snapshot.of(world.repo).files == before.files


async def test_two_tasks_edit_the_same_file_without_seeing_each_other(
    world: World, model: ScriptedModel
) -> None:
    """Two tasks at once rewrite one file, each on its own branch; neither reads the other's."""
    gate = Hold(then=read("shared.txt"))
    model.script_for("[task-a]", gate, write("shared.txt", "A was here\n"), Reply("A done."))
    model.script_for(
        "[task-b]", read("shared.txt"), write("shared.txt", "B was here\n"), Reply("B done.")
    )
    async with serving(world) as session:
        client = session.client
        task_a = await create(client, "Task A", "[task-a] rewrite shared.txt")
        with trio.fail_after(DEADLINE_S):
            await gate.reached.wait()
        task_b = await create(client, "Task B", "[task-b] rewrite shared.txt")
        await run_to_waiting(client, task_b)
        assert (world.worktree(task_b) / "shared.txt").read_text() == "B was here\n"
        assert (world.worktree(task_a) / "shared.txt").read_text() == BASE_FILES["shared.txt"]
        gate.release()
        await run_to_waiting(client, task_a)
    assert (world.worktree(task_a) / "shared.txt").read_text() == "A was here\n"
    assert (world.worktree(task_b) / "shared.txt").read_text() == "B was here\n"
    a_calls = [json.dumps(body) for body in model.main_requests if "[task-a]" in json.dumps(body)]
    a_read = a_calls[-1]  # A's last call, after it read the file (B had written it by then)
    assert "line 2" in a_read
    assert "B was here" not in a_read
    for task_id, text in ((task_a, "A was here\n"), (task_b, "B was here\n")):
        branch = branch_of(world, task_id)
        assert git(world.repo, "diff", "--name-only", "main", branch) == "shared.txt\n"
        assert git(world.repo, "show", f"{branch}:shared.txt") == text
    assert (world.repo / "shared.txt").read_text() == BASE_FILES["shared.txt"]
    assert git(world.repo, "status", "--porcelain") == ""
    assert model.unexpected == []


# -- review ----------------------------------------------------------------------------------


async def test_diff_resource_shows_exactly_the_agents_changes(
    world: World, model: ScriptedModel
) -> None:
    """task://{id}/diff is the branch's diff against its base: the agent's edits, not the user's."""
    (world.repo / "keep.txt").write_text("the user's own edit\n")
    (world.repo / "scratch.txt").write_text("the user's untracked notes\n")
    before = Snapshot.of(world.repo)
    model.script(
        read("shared.txt"),
        edit("shared.txt", "line 2", "line two"),
        write("added.txt", "added by the agent\n"),
        Reply("Edited shared.txt, added added.txt."),
    )
    async with serving(world) as session:
        task_id = await create(session.client, "Edit and add", "Edit shared.txt, add added.txt")
        await run_to_waiting(session.client, task_id)
        diff = await read_diff(session.client, task_id)
        stat = await read_json(session.client, f"task://{task_id}/diffstat")
        reported = (await ok(session.client, "report", id=task_id))["diffstat"]
    branch = branch_of(world, task_id)
    assert diff == git(world.repo, "diff", f"main...{branch}")
    assert "+line two" in diff
    assert "-line 2" in diff
    assert "+added by the agent" in diff
    assert "keep.txt" not in diff
    assert "scratch.txt" not in diff
    files = {entry["path"]: (entry["added"], entry["removed"]) for entry in stat["files"]}
    assert files == {"shared.txt": (1, 1), "added.txt": (1, 0)}
    assert reported["files"] == stat["files"]
    # The checkout is as the user left it; only the task's branch was added.
    assert attrs.evolve(Snapshot.of(world.repo), branches="") == attrs.evolve(before, branches="")


async def test_a_large_diff_reads_whole_across_pages(world: World, model: ScriptedModel) -> None:
    """A 3000-line file: task://{id}/diff comes in several pages that join into git's diff."""
    big = "".join(f"line {n} of a large file written by the agent\n" for n in range(3000))
    model.script(write("big.txt", big), Reply("Wrote big.txt."))
    async with serving(world) as session:
        task_id = await create(session.client, "Big", "Write big.txt")
        await run_to_waiting(session.client, task_id)
        first = await read_json(session.client, f"task://{task_id}/diff")
        diff = await read_diff(session.client, task_id)
    assert first["next"] is not None
    assert len(first["diff"]) < len(diff)
    assert diff == git(world.repo, "diff", f"main...{branch_of(world, task_id)}")


async def test_follow_up_after_review_adds_a_second_commit(
    world: World, model: ScriptedModel
) -> None:
    """Each turn is one commit on the branch: task://{id}/commits lists both, oldest first."""
    model.script(
        write("one.txt", "first turn\n"),
        Reply("Wrote one.txt."),
        write("two.txt", "second turn\n"),
        Reply("Wrote two.txt."),
    )
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Two turns", "Write one.txt")
        turn_one = await run_to_waiting(client, task_id)
        first = await read_json(client, f"task://{task_id}/commits")
        assert len(first["commits"]) == 1, first
        await ok(client, "update_task", id=task_id, instructions="Now write two.txt")
        turn_two = await run_to_waiting(client, task_id)
        # Claude resumes a session only from the cwd it began in: the same worktree.
        assert turn_two["session_id"] == turn_one["session_id"] is not None
        commits = (await read_json(client, f"task://{task_id}/commits"))["commits"]
        logged = await events(client, task_id)
    branch = branch_of(world, task_id)
    shas = git(world.repo, "rev-list", "--reverse", f"main..{branch}").split()
    assert [c["sha"] for c in commits] == shas
    assert commits[0]["sha"] == first["commits"][0]["sha"]
    assert [c["subject"] for c in commits] == ["turn 1: Write one.txt", "turn 2: Now write two.txt"]
    assert [c["files"] for c in commits] == [["one.txt"], ["two.txt"]]
    assert all(f"Coding-Agent-Task: {task_id}" in c["body"] for c in commits)
    assert "Wrote two.txt." in commits[1]["body"]
    assert [e["summary"] for e in logged if e["kind"] == "commit"] == [
        f"commit {sha[:7]}: 1 file" for sha in shas
    ]


async def test_a_worktree_task_goes_on_after_a_restart(world: World, model: ScriptedModel) -> None:
    """After up restarts, a follow-up resumes in the same worktree and commits turn 2 there."""
    model.script(
        write("one.txt", "first turn\n"),
        Reply("Wrote one.txt."),
        write("two.txt", "second turn\n"),
        Reply("Wrote two.txt."),
    )
    async with serving(world) as session:
        task_id = await create(session.client, "Restarted", "Write one.txt")
        first = await run_to_waiting(session.client, task_id)
    async with serving(world) as session:
        await ok(session.client, "update_task", id=task_id, instructions="Now write two.txt")
        second = await run_to_waiting(session.client, task_id)
        commits = (await read_json(session.client, f"task://{task_id}/commits"))["commits"]
        started = [e for e in await events(session.client, task_id) if e["kind"] == "run_started"]
    assert second["session_id"] == first["session_id"]
    assert [same_path(e["data"]["cwd"], world.worktree(task_id)) for e in started] == [True, True]
    assert [c["files"] for c in commits] == [["one.txt"], ["two.txt"]]
    assert (world.worktree(task_id) / "two.txt").read_text() == "second turn\n"


async def test_a_graceful_shutdown_commits_the_interrupted_turn(
    world: World, model: ScriptedModel
) -> None:
    """SIGTERM mid-turn: the run is interrupted and what it wrote is committed on its branch."""
    gate = Hold(then=Reply("too late"))
    model.script(write("half.txt", "half\n"), gate)
    async with serving(world) as session:
        task_id = await create(session.client, "Stopped", "Write half.txt")
        with trio.fail_after(DEADLINE_S):
            await gate.reached.wait()
        session.up.terminate()
        with trio.fail_after(DEADLINE_S):
            assert await session.up.process.wait() == 0, session.up.log()[-2000:]
    gate.release()
    branch = branch_of(world, task_id)
    assert git(world.repo, "show", f"{branch}:half.txt") == "half\n"


async def test_include_uncommitted_makes_the_users_changes_the_first_commit(
    world: World, model: ScriptedModel
) -> None:
    """include_uncommitted copies the checkout's edits, deletions, new files in as commit one."""
    (world.repo / "keep.txt").write_text("the user's own edit\n")
    (world.repo / "scratch.txt").write_text("the user's untracked notes\n")
    (world.repo / "pkg" / "module.txt").unlink()
    before = Snapshot.of(world.repo)
    model.script(write("agent.txt", "the agent's file\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Carry", "Write agent.txt", include_uncommitted=True)
        await run_to_waiting(session.client, task_id)
    branch = branch_of(world, task_id)
    shas = git(world.repo, "rev-list", "--reverse", f"main..{branch}").split()
    assert len(shas) == 2, shas
    carried = git(world.repo, "show", "--name-only", "--format=", shas[0]).split()
    assert sorted(carried) == ["keep.txt", "pkg/module.txt", "scratch.txt"]
    assert not (world.worktree(task_id) / "pkg" / "module.txt").exists()
    assert git(world.repo, "show", "--name-only", "--format=", shas[1]).split() == ["agent.txt"]
    assert git(world.repo, "show", f"{branch}:keep.txt") == "the user's own edit\n"
    assert attrs.evolve(Snapshot.of(world.repo), branches="") == attrs.evolve(before, branches="")


async def test_a_failed_turn_is_committed_too(world: World, model: ScriptedModel) -> None:
    """A run that fails after writing (out of turns) still leaves a commit saying how it ended."""
    model.script(write("partial.txt", "half done\n"))
    async with serving(world) as session:
        task_id = await create(session.client, "Failing", "Write then stop", max_turns=1)
        task = await wait_done(session.client, task_id, timeout=DEADLINE_S)
        commits = (await read_json(session.client, f"task://{task_id}/commits"))["commits"]
    assert task["status"] == "failed", task["report"]
    assert [c["files"] for c in commits] == [["partial.txt"]]
    assert "The run ended error: claude reached the maximum number of turns" in commits[0]["body"]
    assert task["report"]["commit"] == commits[0]["sha"]


async def test_a_turn_that_changes_nothing_makes_no_commit(
    world: World, model: ScriptedModel
) -> None:
    """A turn that only reads: no commit, an empty diff, and the log says so."""
    model.script(read("shared.txt"), Reply("Nothing to change."))
    async with serving(world) as session:
        task_id = await create(session.client, "Reader", "Read shared.txt")
        task = await run_to_waiting(session.client, task_id)
        commits = (await read_json(session.client, f"task://{task_id}/commits"))["commits"]
        diff = await read_diff(session.client, task_id)
        logged = [e["summary"] for e in await events(session.client, task_id)]
    assert commits == []
    assert diff == ""
    assert task["report"]["commit"] is None
    assert "no commit: the turn changed no files" in logged
    assert git(world.repo, "rev-parse", branch_of(world, task_id)) == git(
        world.repo, "rev-parse", "main"
    )


async def test_end_task_keeps_the_worktree_and_the_branch(
    world: World, model: ScriptedModel
) -> None:
    """end_task completes the task but throws nothing away: worktree and branch stay."""
    model.script(write("work.txt", "work\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Ended", "Write work.txt")
        await run_to_waiting(session.client, task_id)
        ended = await ok(session.client, "end_task", id=task_id)
    assert ended["status"] == "completed"
    branch = branch_of(world, task_id)
    assert git(world.repo, "show", f"{branch}:work.txt") == "work\n"
    assert (world.worktree(task_id) / "work.txt").read_text() == "work\n"


async def test_clean_state_removes_worktrees_but_keeps_branches_with_work(
    world: World, model: ScriptedModel
) -> None:
    """clean_state sweeps every task's worktree; a branch holding commits stays, reported."""
    model.script(write("work.txt", "work\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Cleaned", "Write work.txt")
        await run_to_waiting(session.client, task_id)
        branch = branch_of(world, task_id)
        tip = git(world.repo, "rev-parse", branch)
        await ok(session.client, "clean_state")
        await eventually(
            lambda: not world.worktree(task_id).exists(),
            "the sweep after clean_state",
            lambda: session.up.log()[-2000:],
        )
    assert list(world.worktrees.iterdir()) == []
    assert worktree_paths(world.repo) == [str(world.repo)]
    assert git(world.repo, "rev-parse", branch) == tip
    assert git(world.repo, "status", "--porcelain") == ""


# -- discard and sweep -----------------------------------------------------------------------


async def test_discard_mid_run_leaves_no_worktree_branch_or_directory(
    world: World, model: ScriptedModel
) -> None:
    """discard_task stops the run, then nothing of the task is left: no worktree, branch, dir."""
    gate = Hold(then=Reply("too late"))
    model.script(write("partial.txt", "half done\n"), gate)
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Doomed", "Start something")
        with trio.fail_after(DEADLINE_S):
            await gate.reached.wait()
        assert (world.worktree(task_id) / "partial.txt").exists()
        discarded = await ok(client, "discard_task", id=task_id)
        assert discarded["status"] == "cancelled", discarded
        await eventually(lambda: not world.processes(session.up), "the run's processes to end")
    gate.release()
    assert git(world.repo, "branch", "--list", "coding-agent/*") == ""
    assert worktree_paths(world.repo) == [str(world.repo)]
    assert not world.worktree(task_id).exists()
    assert list(world.worktrees.iterdir()) == []
    assert Snapshot.of(world.repo).status == ""


async def test_a_worktree_deleted_by_hand_fails_the_next_turn_clearly_and_discards(
    world: World, model: ScriptedModel
) -> None:
    """rm -rf of a task's worktree: the follow-up fails naming it; discard still cleans up."""
    model.script(write("one.txt", "one\n"), Reply("One."))
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Gone", "Write one.txt")
        await run_to_waiting(client, task_id)
        shutil.rmtree(world.worktree(task_id))
        message = await refused(client, "update_task", id=task_id, instructions="Go on")
        assert "unknown_worktree" in message
        assert f"{world.worktree(task_id)} is missing" in message
        await ok(client, "discard_task", id=task_id)
    assert git(world.repo, "branch", "--list", "coding-agent/*") == ""
    assert worktree_paths(world.repo) == [str(world.repo)]
    assert list(world.worktrees.iterdir()) == []
    assert model.unexpected == []


async def test_sweep_after_a_crash_removes_the_orphan_and_keeps_live_tasks(
    world: World, model: ScriptedModel
) -> None:
    """After a SIGKILL, the next start removes worktrees with no task and keeps the others."""
    gate = Hold(then=Reply("too late"))
    model.script_for("[kept]", write("kept.txt", "kept\n"), Reply("Kept."))
    model.script_for("[orphan]", gate)
    async with serving(world) as session:
        kept = await create(session.client, "Kept", "[kept] write kept.txt")
        await run_to_waiting(session.client, kept)
        orphan = await create(session.client, "Orphan", "[orphan] think")
        with trio.fail_after(DEADLINE_S):
            await gate.reached.wait()
        orphan_branch = branch_of(world, orphan)
        session.up.kill()
        await session.up.process.wait()
    gate.release()
    await eventually(lambda: not world.processes(), "the killed run's processes")
    # A crash between the worktree's creation and the task's first record leaves exactly this:
    # a worktree whose task the server never saved.
    for record in (world.state / "tasks").glob(f"{orphan}.*"):
        record.unlink()
    (world.worktrees / "half-made").mkdir()  # a directory with no metadata: a torn create
    assert world.worktree(orphan).is_dir()
    async with serving(world) as session:
        await eventually(
            lambda: (
                not world.worktree(orphan).exists() and not (world.worktrees / "half-made").exists()
            ),
            "the sweep to remove the orphans",
            lambda: (
                f"{sorted(p.name for p in world.worktrees.iterdir())}; {session.up.log()[-2000:]}"
            ),
        )
        assert (await ok(session.client, "report", id=kept))["status"] == "waiting"
    assert sorted(p.name for p in world.worktrees.iterdir()) == sorted([kept, f"{kept}.json"])
    assert worktree_paths(world.repo) == [str(world.repo), str(world.worktree(kept))]
    assert git(world.repo, "branch", "--list", orphan_branch) == ""
    assert (world.worktree(kept) / "kept.txt").read_text() == "kept\n"


async def test_the_sweep_deletes_nothing_a_planted_link_points_at(world: World) -> None:
    """Links planted in the worktrees dir (to a dir, to the checkout): their targets stay."""
    precious = world.root / "precious"
    precious.mkdir()
    (precious / "keep-me.txt").write_text("precious\n")
    before = Snapshot.of(world.repo)
    world.worktrees.mkdir(parents=True)
    (world.worktrees / "to-dir").symlink_to(precious)
    (world.worktrees / "to-checkout").symlink_to(world.repo)
    (world.worktrees / "to-checkout.json").symlink_to(world.repo / "keep.txt")
    # A torn create's empty dir, which the sweep removes; it sorts last, so once it is gone the
    # start-up sweep has been over every entry.
    (world.worktrees / "zz-torn").mkdir()
    async with serving(world) as session:
        await eventually(
            lambda: not (world.worktrees / "zz-torn").exists(),
            "the sweep at start",
            lambda: f"{os.listdir(world.worktrees)}; {session.up.log()[-2000:]}",
        )
    assert (precious / "keep-me.txt").read_text() == "precious\n"
    assert Snapshot.of(world.repo) == before


async def test_the_periodic_sweep_removes_orphans_while_up_runs(world: World) -> None:
    """With WORKTREE_SWEEP_INTERVAL_S=0.5, leftovers planted twice while up runs both go."""
    fast = attrs.evolve(world, env=world.env | {"WORKTREE_SWEEP_INTERVAL_S": "0.5"})
    async with serving(fast) as session:
        for attempt in ("first", "second"):  # the second can only be a later sweep's work
            (world.worktrees / f"left-{attempt}").mkdir(parents=True)
            await eventually(
                lambda: os.listdir(world.worktrees) == [],
                f"a sweep to remove the {attempt} leftover",
                lambda: f"{os.listdir(world.worktrees)}; {session.up.log()[-1000:]}",
                timeout=15,
            )


# -- repositories that get no worktree -------------------------------------------------------


async def test_a_project_outside_git_runs_with_isolation_none(
    world: World, model: ScriptedModel
) -> None:
    """No git repository: the task runs in the project dir itself, and the result says why."""
    plain = world.root / "plain"
    plain.mkdir()
    model.script(write("note.txt", "written in place\n"), Reply("Done."))
    async with serving(world) as session:
        result = await session.client.call_tool(
            "create_task", {"title": "Plain", "instructions": "Write", "project_dir": "plain"}
        )
        assert not result.is_error, said(result)
        assert f"isolation: none ({plain} is not inside a git repository)" in said(result)
        assert result.structured_content is not None
        task_id = result.structured_content["result"]["task_id"]
        await run_to_waiting(session.client, task_id)
        started = [e for e in await events(session.client, task_id) if e["kind"] == "run_started"]
    assert same_path(started[0]["data"]["cwd"], plain)
    assert (plain / "note.txt").read_text() == "written in place\n"
    assert not world.worktrees.exists() or list(world.worktrees.iterdir()) == []


async def test_isolation_none_works_in_the_checkout_and_has_nothing_to_review(
    world: World, model: ScriptedModel
) -> None:
    """isolation "none" in a git repo: Claude edits the checkout; review calls say there is none."""
    model.script(write("direct.txt", "straight into the checkout\n"), Reply("Done."))
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Direct", "Write direct.txt", isolation="none")
        await run_to_waiting(client, task_id)
        for uri in (f"task://{task_id}/diff", f"task://{task_id}/commits"):
            with pytest.raises(MCPError, match="no worktree"):
                await client.read_resource(uri)
        assert "no worktree" in await refused(client, "merge_task", id=task_id)
        assert "no worktree" in await refused(client, "discard_task", id=task_id)
    assert (world.repo / "direct.txt").read_text() == "straight into the checkout\n"
    assert git(world.repo, "status", "--porcelain") == "?? direct.txt\n"
    assert git(world.repo, "branch", "--list", "coding-agent/*") == ""


async def test_worktree_isolation_outside_git_is_refused(world: World) -> None:
    """isolation "worktree" for a project outside git: refused, and no task is made."""
    (world.root / "plain").mkdir()
    async with serving(world) as session:
        message = await refused(
            session.client,
            "create_task",
            title="Plain",
            instructions="Write",
            project_dir="plain",
            isolation="worktree",
        )
        assert "not inside a git repository" in message
        assert (await ok(session.client, "report"))["total_tasks"] == 0


def make_unsupported(world: World, kind: str) -> str:
    """Turn the checkout into a repository a worktree cannot serve; the word its refusal uses."""
    if kind == "submodule":
        add_submodule(world.repo, world.root.parent / "library")
        return "submodule"
    add_lfs_attributes(world.repo)
    return "LFS"


@pytest.mark.parametrize("kind", ["submodule", "lfs"])
async def test_unsupported_repository_is_refused_when_worktree_is_asked(
    world: World, kind: str
) -> None:
    """Submodules or LFS with isolation "worktree": a clear refusal pointing at "none"."""
    word = make_unsupported(world, kind)
    before = Snapshot.of(world.repo)
    async with serving(world) as session:
        message = await refused(
            session.client,
            "create_task",
            title="T",
            instructions="Go",
            project_dir="repo",
            isolation="worktree",
        )
        assert word.lower() in message.lower()
        assert "none" in message
        assert (await ok(session.client, "report"))["total_tasks"] == 0
    assert Snapshot.of(world.repo) == before
    assert not world.worktrees.exists() or list(world.worktrees.iterdir()) == []


@pytest.mark.parametrize("kind", ["submodule", "lfs"])
async def test_unsupported_repository_falls_back_to_no_isolation(
    world: World, model: ScriptedModel, kind: str
) -> None:
    """Submodules or LFS with isolation left out: the task runs in the checkout, said so."""
    word = make_unsupported(world, kind)
    model.script(write("in_place.txt", "in the checkout\n"), Reply("Done."))
    async with serving(world) as session:
        result = await session.client.call_tool(
            "create_task", {"title": "T", "instructions": "Go", "project_dir": "repo"}
        )
        assert not result.is_error, said(result)
        assert "isolation: none" in said(result)
        assert word.lower() in said(result).lower()
        assert result.structured_content is not None
        task_id = result.structured_content["result"]["task_id"]
        await run_to_waiting(session.client, task_id)
    assert (world.repo / "in_place.txt").read_text() == "in the checkout\n"
    assert git(world.repo, "branch", "--list", "coding-agent/*") == ""


async def test_check_status_names_the_daemons_git(world: World) -> None:
    """check_status says which git the daemon found: the one worktrees are made with."""
    version = (await trio.run_process(["git", "--version"], capture_stdout=True)).stdout
    async with serving(world) as session:
        result = await session.client.call_tool("check_status", {})
    assert not result.is_error, said(result)
    assert f"{version.decode().strip()}: tasks get worktrees" in said(result)
