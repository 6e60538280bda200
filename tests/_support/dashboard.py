"""The dashboard as its browser tests see it: where its pages are and what they show.

The URL paths, element ids and classes the dashboard promises its tests live here only; the
tests say what a person does (log in, open a task, send a follow-up) through these helpers.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import attrs
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
TOKEN_FIELD = (By.CSS_SELECTOR, "form input[name=token]")
BOARD = (By.ID, "board")
TASK_ROW = "#board [data-task-id='{id}']"
TASK_LINK = "#board a[href='/tasks/{id}']"
LOG = (By.ID, "log")
FOLLOW_UP_FIELD = (By.CSS_SELECTOR, "#follow-up textarea[name=instructions]")
FOLLOW_UP_SUBMIT = (By.CSS_SELECTOR, "#follow-up button[type=submit]")
CSRF_FIELD = "input[name=csrf]"
ACTION_FORM = "form#{action}"
CONFIRM_BUTTON = "form#{action}-confirm button[type=submit]"
FLASH_ERROR = (By.CSS_SELECTOR, ".notice.error")


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
        """``wait_task`` until the run in flight ended; the task."""
        while True:
            task = await self.client.ok("wait_task", id=task_id, timeout_s=20)
            if task["status"] != "in_progress":
                return task


def log_in(driver: WebDriver, dashboard: Dashboard) -> None:
    """Type the bearer token on the login page; wait for the board."""
    driver.get(dashboard.url(LOGIN_PATH))
    field = wait_for(driver, lambda d: d.find_element(*TOKEN_FIELD), "the login form")
    field.send_keys(dashboard.up.token)
    field.submit()
    wait_for(driver, lambda d: d.find_elements(*BOARD), "the board after logging in")


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
