"""The OAuth consent page in a real browser (Chromium) against a real ``coding-agent up``: its
CSP lets the form lead to the client's redirect URI (browsers apply ``form-action`` to the
redirect after the POST), and the code it hands over buys tokens."""

from __future__ import annotations

import socket
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from _support.browser import wait_for
from _support.dashboard_pages import Dashboard
from _support.oauth import pkce
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser


def closed_port() -> int:
    """A loopback port nobody listens on: the browser's redirect lands there and stays visible."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def consent_url(dashboard: Dashboard, redirect_uri: str) -> tuple[str, str, str]:
    """Register a public client; the authorization URL, the client id and the PKCE verifier."""
    async with httpx.AsyncClient(base_url=dashboard.base, timeout=30) as http:
        registered = await http.post(
            "/oauth/register",
            json={
                "client_name": "Browser Test Client",
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "none",
            },
        )
    client_id = registered.json()["client_id"]
    verifier, challenge = pkce()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "browser",
            "resource": dashboard.url("/mcp"),
        }
    )
    return dashboard.url(f"/oauth/authorize?{query}"), client_id, verifier


async def test_allow_in_a_browser_reaches_the_client_with_a_working_code(
    browser: WebDriver, dashboard: Dashboard
) -> None:
    """Typing the token and pressing Allow lands on the redirect URI; its code buys tokens."""
    redirect_uri = f"http://127.0.0.1:{closed_port()}/callback"
    url, client_id, verifier = await consent_url(dashboard, redirect_uri)
    browser.get(url)
    field = wait_for(browser, lambda d: d.find_element(By.ID, "credential"), "the consent page")
    assert "Browser Test Client" in browser.page_source
    field.send_keys(dashboard.up.token)
    browser.find_element(By.ID, "allow").click()
    landed = wait_for(
        browser,
        lambda d: d.current_url if d.current_url.startswith(redirect_uri) else None,
        "the redirect to the client",
    )
    query = parse_qs(urlsplit(landed).query)
    assert query["state"] == ["browser"]
    async with httpx.AsyncClient(base_url=dashboard.base, timeout=30) as http:
        tokens = await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "code_verifier": verifier,
            },
        )
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["access_token"]


async def test_deny_in_a_browser_reaches_the_client_with_access_denied(
    browser: WebDriver, dashboard: Dashboard
) -> None:
    """Pressing Deny (no credential typed) lands on the redirect URI with access_denied."""
    redirect_uri = f"http://127.0.0.1:{closed_port()}/callback"
    url, _, _ = await consent_url(dashboard, redirect_uri)
    browser.get(url)
    wait_for(browser, lambda d: d.find_element(By.ID, "deny"), "the consent page").click()
    landed = wait_for(
        browser,
        lambda d: d.current_url if d.current_url.startswith(redirect_uri) else None,
        "the redirect to the client",
    )
    assert parse_qs(urlsplit(landed).query)["error"] == ["access_denied"]
