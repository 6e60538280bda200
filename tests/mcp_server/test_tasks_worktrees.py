"""Worktree tasks through MCP: a real server, a real daemon (which runs git), the stand-in agent
and real git repositories made here (issue 9)."""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import trio
from _support.polling import eventually
from _support.task_server import Env, all_events, task_server, wait_done

from mcp_server._tasks import TaskStore

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
"""A fixed git identity and no user or system config, for the tests' git and the daemon's."""


async def git(repo: pathlib.Path, *args: str) -> str:
    """Run git in ``repo``; its stdout."""
    done = await trio.run_process(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **GIT_ENV},
        capture_stdout=True,
        capture_stderr=True,
    )
    return done.stdout.decode()


async def make_repo(repo: pathlib.Path) -> None:
    """A repository on branch main with one commit (README)."""
    await trio.Path(repo).mkdir(parents=True, exist_ok=True)
    await git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("hello\n")
    await git(repo, "add", "README")
    await git(repo, "commit", "-q", "-m", "first")


@contextlib.asynccontextmanager
async def server(tmp_path: pathlib.Path, **options: Any) -> AsyncIterator[Env]:
    """``task_server`` whose daemon has a state dir (so it makes worktrees) and git's test env."""
    async with task_server(
        tmp_path,
        daemon_env=GIT_ENV,
        daemon_config={"state_dir": str(tmp_path / "daemon")},
        **options,
    ) as env:
        yield env


def worktrees_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "daemon" / "worktrees"


async def branches(repo: pathlib.Path) -> list[str]:
    listing = await git(repo, "branch", "--list", "coding-agent/*", "--format=%(refname:short)")
    return listing.split()


async def created_in_repo(env: Env, instructions: str, **arguments: Any) -> dict[str, Any]:
    """A task created in the repository at ``env.root``, once its first run ended."""
    await make_repo(env.root)
    created = await env.client.ok(
        "create_task", title="Write a file", instructions=instructions, **arguments
    )
    return await wait_done(env.client, created["task_id"])


async def test_git_project_gets_a_worktree_by_default(tmp_path: pathlib.Path) -> None:
    """In a git repository create_task uses a worktree on a coding-agent/ branch, says so, and
    the agent's edit lands there, not in the user's checkout."""
    async with server(tmp_path) as env:
        await make_repo(env.root)
        result = await env.client.call(
            "create_task", title="Write a file", instructions="edit a.txt hi"
        )
        structured = result["structuredContent"]
        task = structured["result"]
        assert task["isolation"] == "worktree"
        assert task["branch"] == f"coding-agent/{task['task_id'][:8]}-write-a-file"
        assert f"isolation: worktree (branch {task['branch']})" in structured["message"]
        await wait_done(env.client, task["task_id"])
        assert (worktrees_dir(tmp_path) / task["task_id"] / "a.txt").read_text() == "hi\n"
        assert not (env.root / "a.txt").exists()


async def test_container_paths_reach_the_repository_on_the_host(tmp_path: pathlib.Path) -> None:
    """As from the container: project_dir under /workspace is mapped to the host's repository,
    whose worktree the agent edits, and the merge lands in the host's checkout."""
    async with server(tmp_path, client_root="/workspace") as env:
        await make_repo(env.root / "app")
        created = await env.client.ok(
            "create_task", title="Write", instructions="edit a.txt hi", project_dir="/workspace/app"
        )
        assert created["isolation"] == "worktree"
        await wait_done(env.client, created["task_id"])
        assert (worktrees_dir(tmp_path) / created["task_id"] / "a.txt").read_text() == "hi\n"
        merged = await env.client.ok("merge_task", id=created["task_id"])
        assert merged["review"] == "merged"
    assert (env.root / "app" / "a.txt").read_text() == "hi\n"


async def test_non_git_project_runs_without_isolation(tmp_path: pathlib.Path) -> None:
    """Outside a git repository the task runs in the project dir, and the result says why."""
    async with server(tmp_path) as env:
        result = await env.client.call("create_task", title="t", instructions="edit a.txt hi")
        structured = result["structuredContent"]
        assert structured["result"]["isolation"] == "none"
        assert "isolation: none (" in structured["message"]
        assert "git" in structured["result"]["isolation_note"]
        await wait_done(env.client, structured["result"]["task_id"])
        assert (env.root / "a.txt").read_text() == "hi\n"


async def test_explicit_worktree_outside_git_is_refused(tmp_path: pathlib.Path) -> None:
    """isolation 'worktree' outside a git repository fails the call and creates no task."""
    async with server(tmp_path) as env:
        result = await env.client.call(
            "create_task", title="t", instructions="hello", isolation="worktree"
        )
        assert result["isError"] is True
        assert result["structuredContent"]["error"]["code"] == "not_a_repository"
        assert (await env.client.read("agent://tasks"))["total_tasks"] == 0


async def test_a_runs_changes_become_one_commit(tmp_path: pathlib.Path) -> None:
    """The turn's edit is committed on the branch; diff, diffstat and commits show exactly it."""
    async with server(tmp_path) as env:
        task = await created_in_repo(env, "edit a.txt hello")
        task_id = task["task_id"]
        commits = (await env.client.read(f"task://{task_id}/commits"))["commits"]
        assert [(c["subject"], c["files"]) for c in commits] == [
            ("turn 1: edit a.txt hello", ["a.txt"])
        ]
        assert f"Coding-Agent-Task: {task_id}" in commits[0]["body"]
        assert task["report"]["commit"] == commits[0]["sha"]
        assert task["commits"] == [commits[0]["sha"]]
        stat = await env.client.read(f"task://{task_id}/diffstat")
        assert stat["files"] == [{"path": "a.txt", "status": "added", "added": 1, "removed": 0}]
        diff = await env.client.read(f"task://{task_id}/diff")
        assert "+hello" in diff["diff"]
        assert "README" not in diff["diff"]
        assert diff["next"] is None
        kinds = [
            e["summary"] for e in await all_events(env.client, task_id) if e["kind"] == "commit"
        ]
        assert kinds == [f"commit {commits[0]['sha'][:7]}: 1 file"]


async def test_report_includes_the_diffstat(tmp_path: pathlib.Path) -> None:
    """report of a worktree task carries its diffstat (files and +/-)."""
    async with server(tmp_path) as env:
        task = await created_in_repo(env, "edit a.txt hello")
        report = await env.client.ok("report", id=task["task_id"])
        assert report["diffstat"]["totals"] == {"files": 1, "added": 1, "removed": 0}


async def test_follow_up_adds_a_second_commit(tmp_path: pathlib.Path) -> None:
    """A follow-up's edit is a second commit on the same branch."""
    async with server(tmp_path) as env:
        task = await created_in_repo(env, "edit a.txt one")
        await env.client.ok("update_task", id=task["task_id"], instructions="edit b.txt two")
        task = await wait_done(env.client, task["task_id"])
        commits = (await env.client.read(f"task://{task['task_id']}/commits"))["commits"]
        assert [c["files"] for c in commits] == [["a.txt"], ["b.txt"]]
        assert commits[1]["subject"] == "turn 2: edit b.txt two"
        assert task["commits"] == [c["sha"] for c in commits]


async def test_merge_lands_the_work_and_completes_the_task(tmp_path: pathlib.Path) -> None:
    """merge_task puts the branch's work on main in the checkout; the task is completed."""
    async with server(tmp_path) as env:
        task = await created_in_repo(env, "edit a.txt merged")
        merged = await env.client.ok("merge_task", id=task["task_id"])
        assert (merged["status"], merged["review"]) == ("completed", "merged")
        assert merged["merge"]["base_branch"] == "main"
        assert (env.root / "a.txt").read_text() == "merged\n"
        assert (await git(env.root, "rev-parse", "main")).strip() == merged["merge"]["commit"]
        events = await all_events(env.client, task["task_id"])
        assert events[-1]["summary"].startswith("completed: merged into main at ")


async def test_conflicting_merge_is_refused_with_the_files(tmp_path: pathlib.Path) -> None:
    """A merge that would conflict is a tool error naming the file; the task stays open."""
    async with server(tmp_path) as env:
        task = await created_in_repo(env, "edit a.txt theirs")
        (env.root / "a.txt").write_text("ours\n")
        await git(env.root, "add", "a.txt")
        await git(env.root, "commit", "-q", "-m", "ours")
        result = await env.client.call("merge_task", id=task["task_id"])
        assert result["isError"] is True
        structured = result["structuredContent"]
        assert structured["error"]["code"] == "merge_conflict"
        assert "a.txt" in structured["message"]
        assert (await env.client.ok("report", id=task["task_id"]))["review"] is None
        assert (env.root / "a.txt").read_text() == "ours\n"


async def test_discard_leaves_nothing_and_cancels(tmp_path: pathlib.Path) -> None:
    """discard_task removes the worktree and the branch; the task is cancelled."""
    async with server(tmp_path) as env:
        task = await created_in_repo(env, "edit a.txt gone")
        discarded = await env.client.ok("discard_task", id=task["task_id"])
        assert (discarded["status"], discarded["review"]) == ("cancelled", "discarded")
        assert not (worktrees_dir(tmp_path) / task["task_id"]).exists()
        assert await branches(env.root) == []
        assert not (env.root / "a.txt").exists()


async def test_merge_while_running_is_busy(tmp_path: pathlib.Path) -> None:
    """merge_task is refused with 'busy' while a run is in flight."""
    async with server(tmp_path) as env:
        await make_repo(env.root)
        created = await env.client.ok("create_task", title="t", instructions="sleep 30")
        assert await env.client.error_code("merge_task", id=created["task_id"]) == "busy"
        await env.client.ok("end_task", id=created["task_id"])


async def test_end_task_keeps_the_branch(tmp_path: pathlib.Path) -> None:
    """end_task leaves the worktree and its branch in place."""
    async with server(tmp_path) as env:
        task = await created_in_repo(env, "edit a.txt kept")
        await env.client.ok("end_task", id=task["task_id"])
        assert await branches(env.root) == [task["branch"]]
        assert (worktrees_dir(tmp_path) / task["task_id"] / "a.txt").exists()


async def test_startup_sweep_removes_worktrees_of_gone_tasks(tmp_path: pathlib.Path) -> None:
    """A server that starts without the task sweeps its worktree away (its branch, holding a
    commit, is kept)."""
    async with server(tmp_path) as env:
        task = await created_in_repo(env, "edit a.txt orphan")
    assert (worktrees_dir(tmp_path) / task["task_id"]).exists()
    fresh = functools.partial(TaskStore, tmp_path / "other-state")
    async with server(tmp_path, store=fresh):
        await eventually(
            lambda: not (worktrees_dir(tmp_path) / task["task_id"]).exists(),
            "the startup sweep",
        )
    assert await branches(tmp_path / "root") == [task["branch"]]


async def test_clean_state_sweeps_the_worktrees(tmp_path: pathlib.Path) -> None:
    """clean_state removes the deleted tasks' worktrees (a branch without commits too)."""
    async with server(tmp_path) as env:
        task = await created_in_repo(env, "hello")
        assert (worktrees_dir(tmp_path) / task["task_id"]).exists()
        await env.client.ok("clean_state")
        assert not (worktrees_dir(tmp_path) / task["task_id"]).exists()
        assert await branches(env.root) == []


async def test_diff_of_a_task_without_worktree_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    """Reading the diff of a task that has no worktree is a resource error saying so."""
    async with server(tmp_path) as env:
        created = await env.client.ok("create_task", title="t", instructions="hello")
        await wait_done(env.client, created["task_id"])
        answer = await env.client.rpc(
            "resources/read", {"uri": f"task://{created['task_id']}/diff"}
        )
        assert "has no worktree" in answer["error"]["message"]
        assert "not inside a git repository" in answer["error"]["message"]


async def test_discard_stops_a_run_in_flight_first(tmp_path: pathlib.Path) -> None:
    """discard_task during a run stops it, then removes the worktree and the branch."""
    async with server(tmp_path) as env:
        await make_repo(env.root)
        created = await env.client.ok("create_task", title="t", instructions="sleep 30")
        with trio.fail_after(20):
            discarded = await env.client.ok("discard_task", id=created["task_id"])
        assert (discarded["status"], discarded["review"]) == ("cancelled", "discarded")
        assert discarded["report"]["outcome"] == "cancelled"
        assert await branches(env.root) == []
        assert not (worktrees_dir(tmp_path) / created["task_id"]).exists()


async def test_base_ref_starts_the_branch_there(tmp_path: pathlib.Path) -> None:
    """create_task's base_ref is where the task's branch starts."""
    async with server(tmp_path) as env:
        await make_repo(env.root)
        first = (await git(env.root, "rev-parse", "HEAD")).strip()
        (env.root / "later.txt").write_text("later\n")
        await git(env.root, "add", "later.txt")
        await git(env.root, "commit", "-q", "-m", "later")
        created = await env.client.ok(
            "create_task", title="t", instructions="hello", base_ref=first
        )
        task = await wait_done(env.client, created["task_id"])
        assert task["worktree"]["base_commit"] == first
        assert not (worktrees_dir(tmp_path) / task["task_id"] / "later.txt").exists()


async def test_include_uncommitted_copies_the_checkouts_changes(tmp_path: pathlib.Path) -> None:
    """include_uncommitted brings the checkout's uncommitted edit in as the branch's first commit,
    and leaves the checkout as it was."""
    async with server(tmp_path) as env:
        await make_repo(env.root)
        (env.root / "README").write_text("edited, not committed\n")
        created = await env.client.ok(
            "create_task", title="t", instructions="hello", include_uncommitted=True
        )
        task = await wait_done(env.client, created["task_id"])
        copied = worktrees_dir(tmp_path) / task["task_id"] / "README"
        assert copied.read_text() == "edited, not committed\n"
        commits = (await env.client.read(f"task://{task['task_id']}/commits"))["commits"]
        assert [c["files"] for c in commits] == [["README"]]
        assert (env.root / "README").read_text() == "edited, not committed\n"


async def test_a_failed_commit_is_logged_and_the_task_goes_on(tmp_path: pathlib.Path) -> None:
    """When git cannot commit the turn (a stale index.lock), a 'commit failed' event says why
    and the run still ends as it did: the task waits for a follow-up."""
    async with server(tmp_path) as env:
        await make_repo(env.root)
        go = tmp_path / "go"
        created = await env.client.ok("create_task", title="t", instructions=f"waitfile {go}")
        gitlink = worktrees_dir(tmp_path) / created["task_id"] / ".git"
        gitdir = pathlib.Path(gitlink.read_text().removeprefix("gitdir:").strip())
        (gitdir / "index.lock").write_text("")
        (worktrees_dir(tmp_path) / created["task_id"] / "new.txt").write_text("x\n")
        go.write_text("")
        task = await wait_done(env.client, created["task_id"])
        assert (task["status"], task["report"]["commit"], task["commits"]) == ("waiting", None, [])
        events = await all_events(env.client, created["task_id"])
        (commit,) = [e for e in events if e["kind"] == "commit"]
        assert commit["summary"].startswith("commit failed: daemon: ")
        assert "index.lock" in commit["summary"]
