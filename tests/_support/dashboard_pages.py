"""The dashboard as its browser tests see it: where its pages are and what they show.

The URL paths, element ids and classes the dashboard promises its tests live here only; the
tests say what a person does (log in, open a task, send a follow-up) through these helpers.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any
from urllib.parse import quote

import attrs
import trio
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from _support.agent_up import Up
from _support.browser import wait_for
from _support.task_server import Client

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
"""A fixed git identity and no user or system config, for the daemon's git (worktree tasks)."""

LOGIN_PATH = "/login"
BOARD_PATH = "/"
TASK_PATH = "/tasks/{id}"
COOKIE = "coding_agent_session"
TOKEN_FIELD = (By.ID, "token")
BOARD = (By.ID, "board")
LOG = (By.ID, "log")
FOLLOW_UP_FIELD = (By.CSS_SELECTOR, "#follow-up textarea[name=instructions]")
LOGOUT = (By.ID, "logout")
LIVE_TASK = "#task-live[data-live='open']"
LIVE_BOARD = "#board-rows[data-live='open']"


@attrs.frozen
class Dashboard:
    """A running ``coding-agent up``, its MCP client, and the root its agents work under."""

    up: Up
    client: Client
    root: pathlib.Path

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``: the dashboard is on the MCP endpoint's port."""
        return self.up.url.removesuffix("/mcp")

    def url(self, path: str) -> str:
        return self.base + path

    async def create(self, title: str, instructions: str, **arguments: Any) -> str:
        """A task created over MCP; its id."""
        created = await self.client.ok(
            "create_task", title=title, instructions=instructions, **arguments
        )
        return str(created["task_id"])

    async def task(self, task_id: str) -> dict[str, Any]:
        """The task as MCP's ``report`` shows it."""
        return await self.client.ok("report", id=task_id)

    async def wait_ended(self, task_id: str) -> dict[str, Any]:
        """``wait_task`` until the run in flight ended (within a minute); the task."""
        with trio.fail_after(60):
            while True:
                task = await self.client.ok("wait_task", id=task_id, timeout_s=20)
                if task["status"] != "in_progress":
                    return task


def log_in(driver: WebDriver, base: str, token: str) -> None:
    """Type ``token`` on the login page of the dashboard at ``base``; wait for the board."""
    driver.get(base + LOGIN_PATH)
    field = wait_for(driver, lambda d: d.find_element(*TOKEN_FIELD), "the login form")
    field.send_keys(token)
    field.submit()
    wait_for(driver, lambda d: d.find_elements(*BOARD), "the board after logging in")


def log_out(driver: WebDriver) -> None:
    """Press "Log out" in the page's header."""
    driver.find_element(*LOGOUT).click()


def login_page_for(driver: WebDriver, base: str, path: str) -> bool:
    """Whether the browser shows the login page (of the dashboard at ``base``) that leads back
    to ``path``."""
    expected = f"{base}{LOGIN_PATH}?next={quote(path, safe='/')}"
    return driver.current_url == expected and bool(driver.find_elements(*TOKEN_FIELD))


def task_row_css(task_id: str) -> str:
    """The CSS selector of the task's row on the board."""
    return f"#board #task-row-{task_id}"


def open_task(driver: WebDriver, dashboard: Dashboard, task_id: str) -> None:
    """Load the task's page; wait until its live stream is connected."""
    driver.get(dashboard.url(TASK_PATH.format(id=task_id)))
    wait_for(driver, lambda d: find(d, LIVE_TASK), f"task {task_id}'s live stream")


def wait_board_live(driver: WebDriver) -> None:
    """Wait until the board's live stream is connected."""
    wait_for(driver, lambda d: find(d, LIVE_BOARD), "the board's live stream")


def log_text(driver: WebDriver) -> str:
    """The text of the task page's event log."""
    found = driver.find_elements(*LOG)
    return found[0].text if found else ""


def follow_up_field(driver: WebDriver) -> WebElement:
    """The task page's follow-up box."""
    return wait_for(driver, lambda d: d.find_element(*FOLLOW_UP_FIELD), "the follow-up box")


def csrf_field(driver: WebDriver) -> WebElement:
    """The first CSRF field of the page's forms."""
    return driver.find_element(By.CSS_SELECTOR, "main input[name=csrf]")


def action_url(dashboard: Dashboard, task_id: str, action: str) -> str:
    """Where the task page's ``action`` form (end, merge, discard, follow-up) posts."""
    return dashboard.url(f"{TASK_PATH.format(id=task_id)}/{action}")


def pending_confirmation(driver: WebDriver, action: str) -> WebElement:
    """Press the task page's ``action`` button (end, merge, discard); its confirm button."""
    driver.find_element(By.ID, f"{action}-button").click()
    return wait_for(
        driver,
        lambda d: (button := d.find_element(By.ID, f"{action}-confirm")).is_displayed() and button,
        f"the confirmation of {action}",
    )


def submit_action(driver: WebDriver, action: str) -> None:
    """Press ``action`` and then its confirmation, without waiting for the answer."""
    pending_confirmation(driver, action).click()


def confirm(driver: WebDriver, action: str) -> None:
    """Press ``action``, confirm it, and wait for the task page to answer."""
    submit_action(driver, action)
    wait_for(driver, lambda d: d.find_elements(By.ID, "notice"), f"the answer to {action}")


def agent_pids(marker: str) -> list[int]:
    """The processes whose command line holds ``marker`` (an agent's unique argument)."""
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # it ended meanwhile
            if marker.encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def find(driver: WebDriver, css: str) -> WebElement | None:
    """The first element matching ``css``, or None."""
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def mark_page(driver: WebDriver) -> None:
    """Leave a mark on the page's window: a reload or navigation wipes it."""
    driver.execute_script("window.__notReloaded = true")


def still_marked(driver: WebDriver) -> bool:
    """Whether the page is the one :func:`mark_page` marked (no reload since)."""
    return driver.execute_script("return window.__notReloaded === true") is True
