"""The board in a real browser: live without reload, and usable with the keyboard."""

from __future__ import annotations

import pytest
from _support.browser import wait_for
from _support.dashboard_pages import (
    TASK_PATH,
    Dashboard,
    find,
    mark_page,
    still_marked,
    task_row_css,
    wait_board_live,
)
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

LIVE_S = 1.0
"""The issue's bound: a task created over MCP is on the open board within a second."""


async def test_task_created_over_mcp_appears_on_the_board_without_reload(
    logged_in: WebDriver, dashboard: Dashboard
) -> None:
    """A task created over MCP shows on the open board within a second, the page not reloaded."""
    wait_board_live(logged_in)
    mark_page(logged_in)
    task_id = await dashboard.create("Appears live", "hello")
    row = wait_for(
        logged_in,
        lambda d: find(d, task_row_css(task_id)),
        "the new task's row on the board",
        timeout=LIVE_S,
    )
    assert "Appears live" in row.text
    assert still_marked(logged_in), "the board was reloaded to show the task"


async def test_board_task_link_opens_the_task_with_the_keyboard(
    logged_in: WebDriver, dashboard: Dashboard
) -> None:
    """Tab reaches the task's link on the board and Enter opens its page."""
    task_id = await dashboard.create("Reached by Tab", "hello")
    logged_in.refresh()
    wait_for(logged_in, lambda d: find(d, task_row_css(task_id)), "the task's row")
    target = dashboard.url(TASK_PATH.format(id=task_id))
    body = logged_in.switch_to.active_element
    for _ in range(60):
        body.send_keys(Keys.TAB)
        body = logged_in.switch_to.active_element
        if body.get_attribute("href") == target:
            break
    else:
        raise AssertionError(f"Tab never reached the link to {target}")
    body.send_keys(Keys.ENTER)
    wait_for(logged_in, lambda d: d.current_url == target, "the task page after Enter")
