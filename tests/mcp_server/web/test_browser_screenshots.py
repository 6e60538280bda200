"""The pages at a phone's and a desktop's width: they fit, and the screenshots are kept.

Each test saves ``build/screenshots/PAGE-WIDTH.png`` (CI keeps the directory as an artifact);
two of them are copied by hand to ``docs/images/`` for the README.
"""

from __future__ import annotations

import pytest
from _support.browser import DESKTOP, PHONE, screenshot, set_viewport, wait_for
from _support.dashboard_pages import LOG, Dashboard, find, open_task, task_row_css
from _support.git_repos import make_repo
from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

SIZES = {"phone": PHONE, "desktop": DESKTOP}


# Elements that reach past the viewport's right edge (scrolled inside a box or not).
_PAST_THE_EDGE = """
return [...document.querySelectorAll("body *")]
  .filter(e => {
    const box = e.getBoundingClientRect();
    return box.width > 0 && box.right > innerWidth + 1;
  })
  .map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + "." + e.className);
"""


def laid_out_width(driver: WebDriver) -> int:
    """The width the page is laid out at (a phone's own only with a device-width viewport)."""
    return int(driver.execute_script("return window.innerWidth"))


def past_the_edge(driver: WebDriver) -> list[str]:
    """The elements a reader would have to scroll sideways to see (empty when the page fits)."""
    return list(driver.execute_script(_PAST_THE_EDGE))


async def some_tasks(dashboard: Dashboard) -> str:
    """Tasks in two git projects, one of each state; the id of one with a diff and a log."""
    shop = make_repo(dashboard.root / "shop", {"README.md": "# Shop\n"})
    docs = make_repo(dashboard.root / "docs", {"index.md": "# Docs\n"})
    shown = await dashboard.create(
        "Greet visitors on the home page",
        "edit greeting.txt Welcome to the shop!",
        project_dir=str(shop),
    )
    await dashboard.wait_ended(shown)
    await dashboard.client.ok("update_task", id=shown, instructions="lines 5")
    await dashboard.wait_ended(shown)
    failed = await dashboard.create("Fix the flaky build", "fail", project_dir=str(docs))
    await dashboard.wait_ended(failed)
    await dashboard.create("Write the API guide", "sleep 600", project_dir=str(docs))
    return shown


@pytest.mark.parametrize("width", SIZES)
async def test_board_fits_and_is_captured(
    logged_in: WebDriver, dashboard: Dashboard, width: str
) -> None:
    """The board with tasks needs no sideways scrolling; saved as board-WIDTH.png."""
    task_id = await some_tasks(dashboard)
    set_viewport(logged_in, SIZES[width])
    logged_in.refresh()
    wait_for(logged_in, lambda d: find(d, task_row_css(task_id)), "the board's rows")
    screenshot(logged_in, f"board-{width}")
    assert laid_out_width(logged_in) == SIZES[width][0]
    assert past_the_edge(logged_in) == []


@pytest.mark.parametrize("width", SIZES)
async def test_task_page_fits_and_is_captured(
    logged_in: WebDriver, dashboard: Dashboard, width: str
) -> None:
    """A task's page with its log needs no sideways scrolling; saved as task-WIDTH.png."""
    task_id = await some_tasks(dashboard)
    set_viewport(logged_in, SIZES[width])
    open_task(logged_in, dashboard, task_id)
    wait_for(logged_in, lambda d: "line 4" in d.find_element(*LOG).text, "the task's log")
    wait_for(logged_in, lambda d: find(d, "#diff .diff-file"), "the task's diff")
    screenshot(logged_in, f"task-{width}")
    assert laid_out_width(logged_in) == SIZES[width][0]
    assert past_the_edge(logged_in) == []
