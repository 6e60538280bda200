"""Logging in to the dashboard: the token for a session cookie, refusals, expiry, logout."""

from __future__ import annotations

import pathlib

from _support.dashboard import TOKEN, dashboard_server, wait_task_done

from mcp_server._web import DashboardSettings


async def test_login_sets_httponly_strict_cookie(tmp_path: pathlib.Path) -> None:
    """The right token answers with a session cookie that scripts and other sites cannot use."""
    async with dashboard_server(tmp_path) as web:
        browser = web.browser()
        response = await browser.post(
            "/login", data={"token": TOKEN, "next": "/status"}, headers={"Origin": web.base}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/status"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("coding_agent_session=")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/" in cookie
        assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would not return
        assert (await browser.get("/")).status_code == 200


async def test_cookie_is_secure_through_public_https_url(tmp_path: pathlib.Path) -> None:
    """A login through the tunnel's public https URL gets a Secure cookie."""
    public = "https://agent.example.com"
    async with dashboard_server(tmp_path, public_urls=(public,)) as web:
        response = await web.browser().post(
            "/login",
            data={"token": TOKEN},
            headers={"Origin": public, "Host": "agent.example.com"},
        )
        assert response.status_code == 303
        assert "Secure" in response.headers["set-cookie"]


async def test_no_page_shows_the_token_or_session_id(tmp_path: pathlib.Path) -> None:
    """Neither the bearer token nor the session id appears in any page."""
    async with dashboard_server(tmp_path) as web:
        browser = await web.logged_in()
        session_id = browser.cookies["coding_agent_session"]
        created = await web.mcp.ok("create_task", title="t", instructions="lines 3")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        paths = ["/login", "/", "/status", f"/tasks/{task_id}", f"/tasks/{task_id}/log?before=3"]
        paths += [f"/tasks/{task_id}/diff", "/tasks/unknown"]
        for path in paths:
            body = (await browser.get(path)).text
            assert TOKEN not in body, path
            assert session_id not in body, path
        async with browser.stream("GET", f"/tasks/{task_id}/events?after=0") as stream:
            async for line in stream.aiter_lines():
                assert TOKEN not in line
                assert session_id not in line
                if "task-actions" in line or "end-confirm" in line:
                    break


async def test_wrong_token_refused(tmp_path: pathlib.Path) -> None:
    """A wrong token gets the login page again with an error, and no cookie."""
    async with dashboard_server(tmp_path) as web:
        browser = web.browser()
        response = await browser.post(
            "/login", data={"token": TOKEN + "x"}, headers={"Origin": web.base}
        )
        assert response.status_code == 401
        assert 'id="login-error"' in response.text
        assert "set-cookie" not in response.headers
        assert (await browser.get("/")).status_code == 303


async def test_wrong_tokens_are_rate_limited(tmp_path: pathlib.Path) -> None:
    """Past the allowed wrong tokens even the right one waits (429 with Retry-After)."""
    settings = DashboardSettings(login_failures_per_client=3, login_window_s=600)
    async with dashboard_server(tmp_path, settings=settings) as web:
        browser = web.browser()
        for _ in range(3):
            wrong = await browser.post("/login", data={"token": "guess"})
            assert wrong.status_code == 401
        response = await browser.post("/login", data={"token": TOKEN})
        assert response.status_code == 429
        assert 0 < int(response.headers["retry-after"]) <= 600
        assert "set-cookie" not in response.headers


async def test_pages_need_the_login(tmp_path: pathlib.Path) -> None:
    """Without the cookie pages redirect to /login, streams and actions are refused."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="hello")
        task_id = created["task_id"]
        browser = web.browser()
        board = await browser.get("/")
        assert (board.status_code, board.headers["location"]) == (303, "/login?next=/")
        task = await browser.get(f"/tasks/{task_id}")
        assert task.headers["location"] == f"/login?next=/tasks/{task_id}"
        assert (await browser.get("/status")).status_code == 303
        assert (await browser.get("/events/board")).status_code == 401
        assert (await browser.get(f"/tasks/{task_id}/events")).status_code == 401
        ended = await browser.post(f"/tasks/{task_id}/end", data={"csrf": "x"})
        assert ended.status_code == 401
        assert web.runner.get(task_id).status != "completed"


async def test_expired_session_refused(tmp_path: pathlib.Path) -> None:
    """A login unused longer than the idle expiry sends the browser back to /login."""
    now = [1000.0]
    settings = DashboardSettings(session_idle_s=3600)
    async with dashboard_server(tmp_path, clock=lambda: now[0], settings=settings) as web:
        browser = await web.logged_in()
        assert (await browser.get("/")).status_code == 200
        now[0] += 3599
        assert (await browser.get("/")).status_code == 200
        now[0] += 3601
        response = await browser.get("/")
        assert (response.status_code, response.headers["location"]) == (303, "/login?next=/")


async def test_logout_ends_the_session(tmp_path: pathlib.Path) -> None:
    """After logout the old cookie no longer opens a page, even replayed."""
    async with dashboard_server(tmp_path) as web:
        browser = await web.logged_in()
        session_id = browser.cookies["coding_agent_session"]
        response = await web.post_form(browser, "/logout", "/")
        assert (response.status_code, response.headers["location"]) == (303, "/login")
        replay = web.browser(cookies={"coding_agent_session": session_id})
        assert (await replay.get("/")).status_code == 303
