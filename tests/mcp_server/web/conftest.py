"""Fixtures of the dashboard's browser tests: Chromium, a real ``coding-agent up``, a login.

``dashboard`` is ``coding-agent up`` (server, dashboard and daemon in one process) whose agent
is the task stand-in (``tests/e2e/stand_in_claude.py``), with an MCP client of it; ``browser``
is a fresh headless Chromium at desktop size; ``logged_in`` is that browser past ``/login``.
Selenium is imported only by the fixtures that start a browser: the dashboard's other tests in
this directory run without it.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from _support.agent_up import base_env, coding_agent_up
from _support.task_server import Client, install_agent

if TYPE_CHECKING:
    from _support.dashboard_pages import Dashboard
    from selenium.webdriver.remote.webdriver import WebDriver


@pytest.fixture(scope="session")
def chromium() -> None:
    """Debian's chromium and chromium-driver, installed once when missing."""
    from _support.browser import ensure_chromium  # noqa: PLC0415 -- needs selenium

    ensure_chromium()


@pytest.fixture
def browser(chromium: None) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile, 1280x800."""
    from _support.browser import chrome  # noqa: PLC0415 -- needs selenium

    with chrome() as driver:
        yield driver


@pytest.fixture
async def dashboard(tmp_path: pathlib.Path) -> AsyncIterator[Dashboard]:
    """``coding-agent up`` with the task stand-in agent, and an initialized MCP client of it."""
    from _support.dashboard_pages import GIT_ENV, Dashboard  # noqa: PLC0415 -- needs selenium

    root = tmp_path / "root"
    root.mkdir()
    agent = install_agent(tmp_path / "bin")
    env = base_env(CLAUDE_PATH=agent) | GIT_ENV
    async with coding_agent_up(tmp_path / "state", root, env) as up:
        headers = {"Authorization": f"Bearer {up.token}"}
        async with httpx.AsyncClient(timeout=120, headers=headers) as http:
            client = Client(http, up.url)
            await client.initialize()
            yield Dashboard(up=up, client=client, root=root)


@pytest.fixture
async def logged_in(browser: WebDriver, dashboard: Dashboard) -> WebDriver:
    """The browser, logged in to the dashboard with the bearer token (on the board)."""
    from _support.dashboard_pages import log_in  # noqa: PLC0415 -- needs selenium

    log_in(browser, dashboard.base, dashboard.up.token)
    return browser
