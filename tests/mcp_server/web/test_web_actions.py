"""Steering tasks from the dashboard: follow-up, end, merge and discard reach the task (checked
over MCP and in the daemon's git), and a refusal is shown on the page."""

from __future__ import annotations

import pathlib

from _support.dashboard import dashboard_server, git, wait_task_done, worktree_dashboard


async def test_follow_up_reaches_the_agent(tmp_path: pathlib.Path) -> None:
    """A follow-up sent from the page starts the next turn in the same conversation."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="hello")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        browser = await web.logged_in()
        page = f"/tasks/{task_id}"
        response = await web.post_form(browser, f"{page}/follow-up", page, instructions="lines 2")
        assert (response.status_code, response.headers["location"]) == (303, page)
        task = await wait_task_done(web, task_id)
        assert (task["status"], task["turns"]) == ("waiting", 2)
        report = await web.mcp.ok("report", id=task_id)
        assert report["instructions"][-1] == "lines 2"
        assert report["report"]["final_text"] == "done"
        shown = (await browser.get(page)).text
        assert 'class="notice notice-ok"' in shown
        assert "follow-up sent" in shown


async def test_follow_up_while_running_is_refused_on_the_page(tmp_path: pathlib.Path) -> None:
    """A follow-up during a run is refused with the runner's reason shown once on the page."""
    async with dashboard_server(tmp_path) as web:
        gate = tmp_path / "gate"
        created = await web.mcp.ok("create_task", title="t", instructions=f"waitfile {gate}")
        task_id = created["task_id"]
        browser = await web.logged_in()
        page = f"/tasks/{task_id}"
        await web.post_form(browser, f"{page}/follow-up", page, instructions="hello")
        shown = (await browser.get(page)).text
        assert 'class="notice notice-error"' in shown
        assert "still running its last turn" in shown
        assert 'class="notice' not in (await browser.get(page)).text
        gate.touch()
        task = await wait_task_done(web, task_id)
        assert task["turns"] == 1


async def test_end_stops_the_run_and_closes_the_task(tmp_path: pathlib.Path) -> None:
    """End from the page stops the agent's run and completes the task."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok(
            "create_task", title="t", instructions=f"waitfile {tmp_path / 'never'}"
        )
        task_id = created["task_id"]
        assert web.runner.is_running(task_id)
        browser = await web.logged_in()
        page = f"/tasks/{task_id}"
        response = await web.post_form(browser, f"{page}/end", page)
        assert response.status_code == 303
        report = await web.mcp.ok("report", id=task_id)
        assert report["status"] == "completed"
        assert report["report"]["outcome"] == "cancelled"
        assert not web.runner.is_running(task_id)


async def test_merge_lands_the_branch(tmp_path: pathlib.Path) -> None:
    """Merge from the page lands the task's branch in main with the chosen strategy."""
    async with worktree_dashboard(tmp_path) as web:
        created = await web.mcp.ok(
            "create_task", title="t", instructions="edit new.txt merged words"
        )
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        browser = await web.logged_in()
        page = f"/tasks/{task_id}"
        response = await web.post_form(browser, f"{page}/merge", page, strategy="squash")
        assert response.status_code == 303
        report = await web.mcp.ok("report", id=task_id)
        assert (report["status"], report["review"]) == ("completed", "merged")
        assert "merged words" in await git(web.root, "show", "main:new.txt")
        assert await git(web.root, "rev-list", "--count", "main") == "2\n"  # squash: one commit
        assert "merged into main" in (await browser.get(page)).text


async def test_discard_removes_the_work(tmp_path: pathlib.Path) -> None:
    """Discard from the page removes the task's branch; main is untouched."""
    async with worktree_dashboard(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="edit new.txt gone")
        task_id = created["task_id"]
        task = await wait_task_done(web, task_id)
        branch = task["branch"]
        assert branch in await git(web.root, "branch", "--list")
        browser = await web.logged_in()
        page = f"/tasks/{task_id}"
        response = await web.post_form(browser, f"{page}/discard", page)
        assert response.status_code == 303
        report = await web.mcp.ok("report", id=task_id)
        assert (report["status"], report["review"]) == ("cancelled", "discarded")
        assert branch not in await git(web.root, "branch", "--list")
        assert not (web.root / "new.txt").exists()


async def test_unknown_merge_strategy_is_refused(tmp_path: pathlib.Path) -> None:
    """A strategy that is not one is refused with the tools' own message; nothing merges."""
    async with worktree_dashboard(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="edit new.txt x")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        browser = await web.logged_in()
        page = f"/tasks/{task_id}"
        await web.post_form(browser, f"{page}/merge", page, strategy="octopus")
        shown = (await browser.get(page)).text
        assert "merge refused" in shown
        assert "strategy" in shown
        report = await web.mcp.ok("report", id=task_id)
        assert report["review"] is None


async def test_notice_waits_for_a_full_page(tmp_path: pathlib.Path) -> None:
    """An action's notice is not used up by a fragment htmx loads; the next page shows it."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="hello")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        browser = await web.logged_in()
        page = f"/tasks/{task_id}"
        await web.post_form(browser, f"{page}/end", page)
        fragment = await browser.get(f"{page}/log?before=3", headers={"HX-Request": "true"})
        assert 'id="notice"' not in fragment.text
        assert "task ended: it is completed" in (await browser.get(page)).text
