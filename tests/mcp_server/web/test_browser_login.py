"""Logging in and out in a real browser: the token, the cookie, and where a stale one leads."""

from __future__ import annotations

import pathlib

import pytest
import trio
from _support.browser import body_text, wait_for
from _support.dashboard import dashboard_server
from _support.dashboard_pages import (
    BOARD,
    COOKIE,
    LOGIN_PATH,
    TOKEN_FIELD,
    Dashboard,
    log_in,
    log_out,
    login_page_for,
)
from selenium.webdriver.remote.webdriver import WebDriver

from mcp_server._web import DashboardSettings

pytestmark = pytest.mark.browser


async def test_login_with_the_token_opens_the_board(
    browser: WebDriver, dashboard: Dashboard
) -> None:
    """The bearer token typed on /login leads to the board, with an HttpOnly, Strict cookie."""
    browser.get(dashboard.url("/"))
    field = wait_for(browser, lambda d: d.find_element(*TOKEN_FIELD), "the login page")
    field.send_keys(dashboard.up.token)
    field.submit()
    wait_for(browser, lambda d: d.find_elements(*BOARD), "the board")
    cookie = browser.get_cookie(COOKIE)
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    assert browser.execute_script("return document.cookie") == ""
    assert dashboard.up.token not in browser.page_source


async def test_wrong_token_is_refused_on_the_login_page(
    browser: WebDriver, dashboard: Dashboard
) -> None:
    """A wrong token leaves the browser on /login, told so, with no session cookie."""
    browser.get(dashboard.url(LOGIN_PATH))
    field = wait_for(browser, lambda d: d.find_element(*TOKEN_FIELD), "the login page")
    field.send_keys("not-the-token")
    field.submit()
    wait_for(browser, lambda d: "wrong token" in body_text(d), "the refusal")
    assert browser.find_elements(*TOKEN_FIELD)
    assert browser.get_cookie(COOKIE) is None
    browser.get(dashboard.url("/"))
    wait_for(browser, lambda d: login_page_for(d, dashboard.base, "/"), "the login page again")


async def test_idle_login_expires_back_to_login_and_returns(
    browser: WebDriver, tmp_path: pathlib.Path
) -> None:
    """A login idle past the expiry sends the next page to /login, which then leads back."""
    now = [1000.0]
    settings = DashboardSettings(session_idle_s=3600)
    async with dashboard_server(tmp_path, clock=lambda: now[0], settings=settings) as web:
        # The server runs in this process: the browser is driven from a worker thread.
        await trio.to_thread.run_sync(log_in, browser, web.base, web.token)
        now[0] += 3601
        await trio.to_thread.run_sync(browser.get, web.base + "/status")
        await trio.to_thread.run_sync(
            lambda: wait_for(browser, lambda d: login_page_for(d, web.base, "/status"), "/login")
        )
        await trio.to_thread.run_sync(log_in_again, browser, web.token)
        await trio.to_thread.run_sync(
            lambda: wait_for(browser, lambda d: d.current_url == web.base + "/status", "/status")
        )


def log_in_again(driver: WebDriver, token: str) -> None:
    """Type the token on the login page the browser shows."""
    field = driver.find_element(*TOKEN_FIELD)
    field.send_keys(token)
    field.submit()


async def test_logout_ends_the_session(logged_in: WebDriver, dashboard: Dashboard) -> None:
    """After logging out, the old cookie no longer opens the board."""
    cookie = logged_in.get_cookie(COOKIE)
    assert cookie is not None
    log_out(logged_in)
    wait_for(logged_in, lambda d: d.find_elements(*TOKEN_FIELD), "the login page")
    logged_in.add_cookie(cookie)
    logged_in.get(dashboard.url("/"))
    wait_for(logged_in, lambda d: login_page_for(d, dashboard.base, "/"), "the login page")
