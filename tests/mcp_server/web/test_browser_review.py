"""Merge and discard from a worktree task's page (issue 9), each behind a confirmation."""

from __future__ import annotations

import pytest
from _support.browser import body_text, wait_for
from _support.dashboard_pages import Dashboard, confirm, find, open_task, pending_confirmation
from _support.git_repos import branches, make_repo
from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser


async def worktree_task(dashboard: Dashboard, instructions: str) -> str:
    """A task in a git repository (so in a worktree of its own) whose first run ended."""
    repo = make_repo(dashboard.root / "project", {"README": "hello\n"})
    task_id = await dashboard.create("Edit a file", instructions, project_dir=str(repo))
    task = await dashboard.wait_ended(task_id)
    assert task["isolation"] == "worktree", task
    return task_id


async def test_merge_asks_for_confirmation_first(
    logged_in: WebDriver, dashboard: Dashboard
) -> None:
    """Pressing Merge asks for a confirmation and changes nothing until it is given."""
    task_id = await worktree_task(dashboard, "edit a.txt merged")
    open_task(logged_in, dashboard, task_id)
    pending_confirmation(logged_in, "merge")
    task = await dashboard.task(task_id)
    assert (task["status"], task["review"]) == ("waiting", None)
    assert not (dashboard.root / "project" / "a.txt").exists()


async def test_merge_from_the_page_lands_the_work(
    logged_in: WebDriver, dashboard: Dashboard
) -> None:
    """Merge, confirmed on the page, puts the task's work on the project's branch."""
    task_id = await worktree_task(dashboard, "edit a.txt merged")
    open_task(logged_in, dashboard, task_id)
    confirm(logged_in, "merge")
    wait_for(logged_in, lambda d: "merged into main" in body_text(d), "the merge's notice")
    task = await dashboard.task(task_id)
    assert (task["status"], task["review"]) == ("completed", "merged")
    assert (dashboard.root / "project" / "a.txt").read_text() == "merged\n"


async def test_discard_from_the_page_removes_the_branch(
    logged_in: WebDriver, dashboard: Dashboard
) -> None:
    """Discard, confirmed on the page, deletes the task's branch and cancels the task."""
    task_id = await worktree_task(dashboard, "edit a.txt thrown away")
    branch = (await dashboard.task(task_id))["branch"]
    assert branch in branches(dashboard.root / "project")
    open_task(logged_in, dashboard, task_id)
    confirm(logged_in, "discard")
    wait_for(logged_in, lambda d: "discarded" in body_text(d), "the discard's notice")
    task = await dashboard.task(task_id)
    assert (task["status"], task["review"]) == ("cancelled", "discarded")
    assert branch not in branches(dashboard.root / "project")
    assert not find(logged_in, "form[action$='/merge']")
