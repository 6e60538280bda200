"""Fixtures of the dashboard's browser tests: Chromium, a real ``coding-agent up``, a login.

``dashboard`` is ``coding-agent up`` (server, dashboard and daemon in one process) whose agent
is the task stand-in (``tests/e2e/stand_in_claude.py``), with an MCP client of it; ``browser``
is a fresh headless Chromium at desktop size; ``logged_in`` is that browser past ``/login``.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from _support.agent_up import base_env, coding_agent_up
from _support.browser import chrome, ensure_chromium
from _support.dashboard_pages import GIT_ENV, Dashboard, log_in
from _support.task_server import Client, install_agent
from selenium.webdriver.remote.webdriver import WebDriver


@pytest.fixture(scope="session")
def chromium() -> None:
    """Debian's chromium and chromium-driver, installed once when missing."""
    ensure_chromium()


@pytest.fixture
def browser(chromium: None) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile, 1280x800."""
    with chrome() as driver:
        yield driver


@pytest.fixture
async def dashboard(tmp_path: pathlib.Path) -> AsyncIterator[Dashboard]:
    """``coding-agent up`` with the task stand-in agent, and an initialized MCP client of it."""
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
    log_in(browser, dashboard)
    return browser
