"""Cross-site requests and forged forms, from a real browser holding a live login.

The other origin is another port on 127.0.0.1: the same *site* for the browser, so the
SameSite=Strict cookie goes along, and only the dashboard's own checks (Origin, CSRF token) stand
between that page and the task.
"""

from __future__ import annotations

import html
import pathlib
import uuid

import pytest
from _support.browser import body_text, other_origin, wait_for
from _support.dashboard_pages import (
    Dashboard,
    action_url,
    agent_pids,
    csrf_field,
    find,
    open_task,
    submit_action,
)
from _support.polling import eventually
from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

AUTO_SUBMIT = """<!doctype html>
<html><body onload="document.forms[0].submit()">
<form method="post" action="{action}">{fields}<button>go</button></form>
</body></html>
"""


def forged_page(action: str, fields: dict[str, str]) -> str:
    """A page that posts a form to ``action`` as soon as it loads."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    return AUTO_SUBMIT.format(action=html.escape(action), fields=inputs)


def dashboard_answer(driver: WebDriver, dashboard: Dashboard) -> str:
    """Wait until the dashboard answered the forged post with a page; that page's URL (the
    post's own when refused, the task page's when obeyed)."""
    wait_for(
        driver,
        lambda d: find(d, "#refusal, #notice, #log") and d.current_url.startswith(dashboard.base),
        "the dashboard's answer to the forged post",
    )
    return driver.current_url


async def running_task(dashboard: Dashboard, tmp_path: pathlib.Path) -> tuple[str, str]:
    """A task whose agent runs until the test ends it; its id and the agent's marker path."""
    never = str(tmp_path / f"never-{uuid.uuid4()}")
    task_id = await dashboard.create("Must keep running", f"waitfile {never}")
    await eventually(lambda: bool(agent_pids(never)), "the agent's process")
    return task_id, never


async def assert_still_running(dashboard: Dashboard, task_id: str, marker: str) -> None:
    """The task is still in progress and its agent alive."""
    task = await dashboard.task(task_id)
    assert task["status"] == "in_progress", task
    assert agent_pids(marker), "the agent was stopped"


async def test_cross_site_form_post_is_refused_and_changes_nothing(
    logged_in: WebDriver, dashboard: Dashboard, tmp_path: pathlib.Path
) -> None:
    """A page on another origin that posts "end" to the dashboard gets 403; the task runs on."""
    task_id, marker = await running_task(dashboard, tmp_path)
    end = action_url(dashboard, task_id, "end")
    with other_origin(forged_page(end, {})) as page:
        logged_in.get(page)
        answer = dashboard_answer(logged_in, dashboard)
    assert answer == end, f"the forged post was answered with {answer}, not refused"
    await assert_still_running(dashboard, task_id, marker)


async def test_cross_site_post_carrying_the_csrf_token_is_still_refused(
    logged_in: WebDriver, dashboard: Dashboard, tmp_path: pathlib.Path
) -> None:
    """Even with this login's CSRF token (leaked), a post from another origin is refused."""
    task_id, marker = await running_task(dashboard, tmp_path)
    open_task(logged_in, dashboard, task_id)
    token = csrf_field(logged_in).get_attribute("value") or ""
    assert token, "the task page carries no CSRF token"
    end = action_url(dashboard, task_id, "end")
    with other_origin(forged_page(end, {"csrf": token})) as page:
        logged_in.get(page)
        answer = dashboard_answer(logged_in, dashboard)
    assert answer == end, f"the forged post was answered with {answer}, not refused"
    await assert_still_running(dashboard, task_id, marker)


async def test_wrong_csrf_token_is_refused_and_changes_nothing(
    logged_in: WebDriver, dashboard: Dashboard, tmp_path: pathlib.Path
) -> None:
    """The page's own end form, its CSRF field altered, is refused; the task runs on."""
    task_id, marker = await running_task(dashboard, tmp_path)
    open_task(logged_in, dashboard, task_id)
    logged_in.execute_script(
        "document.querySelectorAll(\"input[name='csrf']\").forEach(i => { i.value = 'forged'; })"
    )
    submit_action(logged_in, "end")
    wait_for(logged_in, lambda d: "CSRF token" in body_text(d), "the CSRF refusal")
    await assert_still_running(dashboard, task_id, marker)
