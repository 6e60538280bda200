"""End to end, issue 9: merge_task lands a task's branch in the user's branch, or refuses and
leaves the checkout byte-for-byte as it was (the world of ``_support/worktree_e2e.py``).
"""

from __future__ import annotations

import pathlib

import attrs
import pytest
import trio
from _support.checkouts import Snapshot
from _support.git_repos import commit_files, git
from _support.scripted_model import Hold, Reply, ScriptedModel
from _support.sdk_tasks import events, ok, refused, wait_done
from _support.worktree_e2e import (
    DEADLINE_S,
    World,
    branch_of,
    create,
    edit,
    eventually,
    make_world,
    read,
    run_to_waiting,
    serving,
    worktree_paths,
    write,
)

pytestmark = pytest.mark.claude_cli


@pytest.fixture
def world(tmp_path: pathlib.Path, model: ScriptedModel) -> World:
    """The user's checkout (``root/repo`` on main) and ``up``'s environment."""
    return make_world(tmp_path, model)


@pytest.mark.parametrize("strategy", ["merge", "squash", "rebase"])
async def test_merge_lands_the_changes_in_the_users_branch(
    world: World, model: ScriptedModel, strategy: str
) -> None:
    """merge_task (each strategy) puts the task's work on main and in the checkout, then cleans."""
    model.script(
        read("shared.txt"),
        edit("shared.txt", "line 1", "line one"),
        write("feature.txt", "the feature\n"),
        Reply("Done."),
    )
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Feature", "Add the feature")
        await run_to_waiting(client, task_id)
        branch = branch_of(world, task_id)
        task_tip = git(world.repo, "rev-parse", branch).strip()
        user_tip = commit_files(
            world.repo, {"keep.txt": "the user moved on\n"}, "the user's own commit"
        )
        await ok(client, "merge_task", id=task_id, strategy=strategy)
        task = await ok(client, "report", id=task_id)
        statuses = [e["summary"] for e in await events(client, task_id) if e["kind"] == "status"]
    assert task["status"] == "completed"
    assert task["review"] == "merged"
    head = git(world.repo, "rev-parse", "HEAD").strip()
    assert f"merged into main at {head[:12]}" in statuses[-1]
    assert git(world.repo, "status", "--porcelain") == ""
    assert git(world.repo, "symbolic-ref", "HEAD") == "refs/heads/main\n"
    assert (world.repo / "feature.txt").read_text() == "the feature\n"
    assert (world.repo / "shared.txt").read_text() == "line one\nline 2\nline 3\n"
    assert (world.repo / "keep.txt").read_text() == "the user moved on\n"
    parents = git(world.repo, "rev-list", "--parents", "-n1", "HEAD").split()[1:]
    expected_parents = [user_tip, task_tip] if strategy == "merge" else [user_tip]
    assert parents == expected_parents
    if strategy == "rebase":
        assert git(world.repo, "log", "-1", "--format=%s", "HEAD").startswith("turn 1: ")
    assert git(world.repo, "branch", "--list", "coding-agent/*") == ""
    assert worktree_paths(world.repo) == [str(world.repo)]
    assert not world.worktree(task_id).exists()


async def test_a_merged_task_takes_no_follow_up_and_no_second_merge(
    world: World, model: ScriptedModel
) -> None:
    """After merge_task the work is in main: update_task and merge_task are refused, said why."""
    model.script(write("feature.txt", "the feature\n"), Reply("Done."))
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Once", "Add the feature")
        await run_to_waiting(client, task_id)
        await ok(client, "merge_task", id=task_id)
        head = git(world.repo, "rev-parse", "HEAD")
        assert "merged" in await refused(client, "update_task", id=task_id, instructions="More")
        assert "merged" in await refused(client, "merge_task", id=task_id)
        assert "merged" in await refused(client, "discard_task", id=task_id)
    assert git(world.repo, "rev-parse", "HEAD") == head
    assert model.pending_steps == 0
    assert model.unexpected == []


async def test_merge_into_a_branch_not_checked_out_moves_only_its_ref(
    world: World, model: ScriptedModel
) -> None:
    """The user switched to another branch: main gets the work, the checkout stays untouched."""
    model.script(write("feature.txt", "the feature\n"), Reply("Done."))
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Elsewhere", "Add the feature")
        await run_to_waiting(client, task_id)
        git(world.repo, "switch", "-q", "-c", "elsewhere")
        (world.repo / "keep.txt").write_text("uncommitted on elsewhere\n")
        before = Snapshot.of(world.repo)
        await ok(client, "merge_task", id=task_id, strategy="squash")
    assert attrs.evolve(Snapshot.of(world.repo), branches="") == attrs.evolve(before, branches="")
    assert git(world.repo, "show", "main:feature.txt") == "the feature\n"
    assert git(world.repo, "rev-parse", "main~1") == git(world.repo, "rev-parse", "elsewhere")
    assert not (world.repo / "feature.txt").exists()


async def test_merge_is_refused_while_a_run_is_in_flight(
    world: World, model: ScriptedModel
) -> None:
    """merge_task during a run: refused as busy; nothing moves, and the run goes on."""
    gate = Hold(then=Reply("Done."))
    model.script(write("feature.txt", "the feature\n"), gate)
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Busy", "Add the feature")
        with trio.fail_after(DEADLINE_S):
            await gate.reached.wait()
        before = Snapshot.of(world.repo)
        message = await refused(client, "merge_task", id=task_id)
        assert "busy" in message
        assert Snapshot.of(world.repo) == before
        gate.release()
        await run_to_waiting(client, task_id)
    assert git(world.repo, "show", f"{branch_of(world, task_id)}:feature.txt") == "the feature\n"


async def test_conflicting_merge_is_refused_and_leaves_the_checkout_as_it_was(
    world: World, model: ScriptedModel
) -> None:
    """A merge that conflicts is refused (the file named) by every strategy; nothing changes."""
    model.script(read("shared.txt"), edit("shared.txt", "line 2", "the task's line"), Reply("Ok."))
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Conflict", "Change line 2")
        await run_to_waiting(client, task_id)
        branch = branch_of(world, task_id)
        task_tip = git(world.repo, "rev-parse", branch)
        conflicting = {"shared.txt": "line 1\nthe user's line\nline 3\n"}
        commit_files(world.repo, conflicting, "the user's conflicting commit")
        (world.repo / "keep.txt").write_text("an uncommitted edit elsewhere\n")
        (world.repo / "scratch.txt").write_text("untracked\n")
        before = Snapshot.of(world.repo)
        for strategy in ("merge", "squash", "rebase"):
            message = await refused(client, "merge_task", id=task_id, strategy=strategy)
            assert "shared.txt" in message, (strategy, message)
            assert "merge_conflict" in message, (strategy, message)
            assert Snapshot.of(world.repo) == before, strategy
        task = await ok(client, "report", id=task_id)
    assert task["status"] == "waiting"
    assert git(world.repo, "rev-parse", branch) == task_tip
    assert worktree_paths(world.repo) == [str(world.repo), str(world.worktree(task_id))]


async def test_merge_is_refused_when_the_checkout_has_uncommitted_changes_in_touched_files(
    world: World, model: ScriptedModel
) -> None:
    """Uncommitted edits to a file the merge touches: refused, the file named, nothing changed."""
    model.script(read("keep.txt"), write("keep.txt", "the task's version\n"), Reply("Ok."))
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Touch keep", "Rewrite keep.txt")
        await run_to_waiting(client, task_id)
        (world.repo / "keep.txt").write_text("the user's unsaved work\n")
        before = Snapshot.of(world.repo)
        message = await refused(client, "merge_task", id=task_id)
        assert "dirty_checkout" in message
        assert "keep.txt" in message
        assert Snapshot.of(world.repo) == before
        assert (await ok(client, "report", id=task_id))["status"] == "waiting"


async def test_two_tasks_from_one_base_both_merge_one_after_the_other(
    world: World, model: ScriptedModel
) -> None:
    """Two tasks branched from the same main: the first merges, the second lands on top of it."""
    model.script_for("[task-a]", write("a.txt", "from A\n"), Reply("A done."))
    model.script_for("[task-b]", write("b.txt", "from B\n"), Reply("B done."))
    async with serving(world) as session:
        client = session.client
        task_a = await create(client, "A", "[task-a] write a.txt")
        task_b = await create(client, "B", "[task-b] write b.txt")
        await run_to_waiting(client, task_a)
        await run_to_waiting(client, task_b)
        await ok(client, "merge_task", id=task_a, strategy="merge")
        await ok(client, "merge_task", id=task_b, strategy="rebase")
    assert (world.repo / "a.txt").read_text() == "from A\n"
    assert (world.repo / "b.txt").read_text() == "from B\n"
    subjects = git(world.repo, "log", "--format=%s", "--first-parent", "main").splitlines()
    assert subjects[0].startswith("turn 1: [task-b]")
    assert git(world.repo, "status", "--porcelain") == ""
    assert worktree_paths(world.repo) == [str(world.repo)]


async def test_two_tasks_created_and_merged_at_once_both_land(
    world: World, model: ScriptedModel
) -> None:
    """create_task twice at once, then merge_task twice at once: two worktrees, both merged."""
    model.script_for("[task-a]", write("a.txt", "from A\n"), Reply("A done."))
    model.script_for("[task-b]", write("b.txt", "from B\n"), Reply("B done."))
    ids: dict[str, str] = {}
    async with serving(world) as session:
        client = session.client

        async def make(name: str) -> None:
            ids[name] = await create(client, name, f"[task-{name}] write {name}.txt")
            await run_to_waiting(client, ids[name])

        async def land(name: str) -> None:
            await ok(client, "merge_task", id=ids[name], strategy="merge")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(make, "a")
            nursery.start_soon(make, "b")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(land, "a")
            nursery.start_soon(land, "b")
    assert (world.repo / "a.txt").read_text() == "from A\n"
    assert (world.repo / "b.txt").read_text() == "from B\n"
    merges = git(world.repo, "rev-list", "--merges", "main").split()
    assert len(merges) == 2, merges
    assert git(world.repo, "status", "--porcelain") == ""
    assert worktree_paths(world.repo) == [str(world.repo)]


async def test_a_checkout_that_is_itself_a_linked_worktree_gets_the_merge(
    world: World, model: ScriptedModel
) -> None:
    """The user works in a linked worktree on 'topic': the task branches from and merges into it."""
    linked = world.root / "linked"
    git(world.repo, "worktree", "add", "-q", "-b", "topic", str(linked))
    model.script(write("feature.txt", "the feature\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Linked", "Add the feature", project_dir="linked")
        await run_to_waiting(session.client, task_id)
        await ok(session.client, "merge_task", id=task_id, strategy="squash")
    assert (linked / "feature.txt").read_text() == "the feature\n"
    assert git(linked, "status", "--porcelain") == ""
    assert git(world.repo, "show", "topic:feature.txt") == "the feature\n"
    assert git(world.repo, "rev-parse", "main") == git(world.repo, "rev-parse", "topic~1")
    assert not (world.repo / "feature.txt").exists()
    assert worktree_paths(world.repo) == [str(world.repo), str(linked)]


async def test_base_ref_branches_from_and_merges_into_that_branch(
    world: World, model: ScriptedModel
) -> None:
    """base_ref "release": the task starts from release and merges into it, main untouched."""
    git(world.repo, "branch", "release")
    commit_files(world.repo, {"main-only.txt": "only on main\n"}, "main moves on")
    before = Snapshot.of(world.repo)
    model.script(write("fix.txt", "the fix\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Fix", "Fix release", base_ref="release")
        await run_to_waiting(session.client, task_id)
        assert not (world.worktree(task_id) / "main-only.txt").exists()
        await ok(session.client, "merge_task", id=task_id)
    assert git(world.repo, "show", "release:fix.txt") == "the fix\n"
    assert attrs.evolve(Snapshot.of(world.repo), branches="") == attrs.evolve(before, branches="")
    assert git(world.repo, "rev-parse", "main") == before.head


async def test_a_task_from_a_detached_head_is_refused_a_merge(
    world: World, model: ScriptedModel
) -> None:
    """A checkout on a detached HEAD gives no base branch: merge_task says so; discard works."""
    git(world.repo, "switch", "-q", "--detach")
    model.script(write("feature.txt", "the feature\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Detached", "Add the feature")
        await run_to_waiting(session.client, task_id)
        before = Snapshot.of(world.repo)
        message = await refused(session.client, "merge_task", id=task_id)
        assert "no_base_branch" in message
        assert Snapshot.of(world.repo) == before
        await ok(session.client, "discard_task", id=task_id)
    assert worktree_paths(world.repo) == [str(world.repo)]


async def test_an_ended_task_can_still_be_merged(world: World, model: ScriptedModel) -> None:
    """end_task keeps the work: the completed task's branch still merges into main."""
    model.script(write("feature.txt", "the feature\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Ended", "Add the feature")
        await run_to_waiting(session.client, task_id)
        await ok(session.client, "end_task", id=task_id)
        merged = await ok(session.client, "merge_task", id=task_id)
    assert merged["review"] == "merged"
    assert (world.repo / "feature.txt").read_text() == "the feature\n"
    assert worktree_paths(world.repo) == [str(world.repo)]


async def test_work_of_a_turn_cut_by_a_crash_is_not_lost_by_a_merge(
    world: World, model: ScriptedModel
) -> None:
    """Files written in a turn a SIGKILL cut short (never committed) reach main with the merge."""
    gate = Hold(then=Reply("too late"))
    model.script(write("first.txt", "turn one\n"), Reply("Done."), write("cut.txt", "cut\n"), gate)
    async with serving(world) as session:
        task_id = await create(session.client, "Cut", "Write first.txt")
        await run_to_waiting(session.client, task_id)
        await ok(session.client, "update_task", id=task_id, instructions="Write cut.txt")
        with trio.fail_after(DEADLINE_S):
            await gate.reached.wait()
        session.up.kill()
        await session.up.process.wait()
    gate.release()
    await eventually(lambda: not world.processes(), "the killed run's processes")
    assert (world.worktree(task_id) / "cut.txt").exists()
    async with serving(world) as session:
        # The restarted server re-attaches to the run; the restarted daemon no longer has it.
        interrupted = await wait_done(session.client, task_id, timeout=DEADLINE_S)
        assert interrupted["status"] == "interrupted"
        await ok(session.client, "merge_task", id=task_id)
    assert (world.repo / "first.txt").read_text() == "turn one\n"
    assert (world.repo / "cut.txt").read_text() == "cut\n"


async def test_rebase_replays_every_turn_onto_the_moved_main(
    world: World, model: ScriptedModel
) -> None:
    """Two turns, main moved meanwhile: rebase puts both turn commits, in order, on main's tip."""
    model.script(write("one.txt", "one\n"), Reply("One."), write("two.txt", "two\n"), Reply("Two."))
    async with serving(world) as session:
        client = session.client
        task_id = await create(client, "Turns", "Write one.txt")
        await run_to_waiting(client, task_id)
        await ok(client, "update_task", id=task_id, instructions="Write two.txt")
        await run_to_waiting(client, task_id)
        user_tip = commit_files(world.repo, {"keep.txt": "moved\n"}, "the user moves main")
        await ok(client, "merge_task", id=task_id, strategy="rebase")
    log = git(world.repo, "log", "--format=%P %s", "-3", "main").splitlines()
    assert [line.split(" ", 1)[1] for line in log] == [
        "turn 2: Write two.txt",
        "turn 1: Write one.txt",
        "the user moves main",
    ]
    assert log[1].split()[0] == user_tip
    assert all(len(line.split(" ", 1)[0].split(",")) == 1 for line in log)


@pytest.mark.parametrize("strategy", ["merge", "squash"])
async def test_merge_task_message_becomes_the_commit_message(
    world: World, model: ScriptedModel, strategy: str
) -> None:
    """merge_task's message is the message of the merge or squash commit on main."""
    model.script(write("feature.txt", "the feature\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Msg", "Add the feature")
        await run_to_waiting(session.client, task_id)
        message = "Add the feature\n\nReviewed over MCP."
        await ok(session.client, "merge_task", id=task_id, strategy=strategy, message=message)
    assert git(world.repo, "log", "-1", "--format=%B", "main").strip() == message
