"""The dashboard's fence: CSRF tokens, Origin and Host checks; a refused request changes nothing."""

from __future__ import annotations

import pathlib

from _support.dashboard import Web, csrf_of, dashboard_server, wait_task_done


async def _waiting_task(web: Web) -> str:
    created = await web.mcp.ok("create_task", title="t", instructions="hello")
    task = await wait_task_done(web, created["task_id"])
    assert task["status"] == "waiting"
    return str(task["task_id"])


async def _status_over_mcp(web: Web, task_id: str) -> str:
    report = await web.mcp.ok("report", id=task_id)
    return str(report["status"])


async def test_post_without_csrf_is_refused_and_changes_nothing(tmp_path: pathlib.Path) -> None:
    """An end without the login's CSRF token is refused (403) and the task stays open."""
    async with dashboard_server(tmp_path) as web:
        task_id = await _waiting_task(web)
        browser = await web.logged_in()
        response = await browser.post(f"/tasks/{task_id}/end", headers={"Origin": web.base})
        assert response.status_code == 403
        assert 'id="refusal"' in response.text
        wrong = await browser.post(
            f"/tasks/{task_id}/end", data={"csrf": "forged"}, headers={"Origin": web.base}
        )
        assert wrong.status_code == 403
        assert await _status_over_mcp(web, task_id) == "waiting"


async def test_csrf_token_of_another_login_is_refused(tmp_path: pathlib.Path) -> None:
    """A CSRF token is bound to its login: another browser's token does not work."""
    async with dashboard_server(tmp_path) as web:
        task_id = await _waiting_task(web)
        first = await web.logged_in()
        second = await web.logged_in()
        token_of_first = csrf_of((await first.get("/")).text)
        response = await second.post(
            f"/tasks/{task_id}/end", data={"csrf": token_of_first}, headers={"Origin": web.base}
        )
        assert response.status_code == 403
        assert await _status_over_mcp(web, task_id) == "waiting"


async def test_post_from_another_origin_is_refused_and_changes_nothing(
    tmp_path: pathlib.Path,
) -> None:
    """A form posted from another site (its Origin) is refused even with a valid token."""
    async with dashboard_server(tmp_path) as web:
        task_id = await _waiting_task(web)
        browser = await web.logged_in()
        csrf = csrf_of((await browser.get(f"/tasks/{task_id}")).text)
        response = await browser.post(
            f"/tasks/{task_id}/end",
            data={"csrf": csrf},
            headers={"Origin": "http://evil.example"},
        )
        assert response.status_code == 403
        assert "Origin not allowed" in response.text
        assert await _status_over_mcp(web, task_id) == "waiting"


async def test_post_from_another_local_port_is_refused(tmp_path: pathlib.Path) -> None:
    """A page on another loopback port (the same site to a browser, so the cookie goes along)
    cannot post even with a leaked CSRF token."""
    async with dashboard_server(tmp_path) as web:
        task_id = await _waiting_task(web)
        browser = await web.logged_in()
        csrf = csrf_of((await browser.get(f"/tasks/{task_id}")).text)
        port = int(web.base.rsplit(":", 1)[1])
        for origin in (f"http://localhost:{port + 1}", f"http://127.0.0.1:{port}"):
            response = await browser.post(
                f"/tasks/{task_id}/end", data={"csrf": csrf}, headers={"Origin": origin}
            )
            assert response.status_code == 403, origin
        assert await _status_over_mcp(web, task_id) == "waiting"


async def test_same_site_fetch_is_refused(tmp_path: pathlib.Path) -> None:
    """A request the browser marks ``Sec-Fetch-Site: same-site`` (another port) is refused."""
    async with dashboard_server(tmp_path) as web:
        task_id = await _waiting_task(web)
        browser = await web.logged_in()
        csrf = csrf_of((await browser.get(f"/tasks/{task_id}")).text)
        response = await browser.post(
            f"/tasks/{task_id}/end", data={"csrf": csrf}, headers={"Sec-Fetch-Site": "same-site"}
        )
        assert response.status_code == 403
        assert await _status_over_mcp(web, task_id) == "waiting"


async def test_post_through_the_public_url_is_accepted(tmp_path: pathlib.Path) -> None:
    """A form posted from the tunnel's public https origin, with its token, goes through."""
    public = "https://agent.example.com"
    async with dashboard_server(tmp_path, public_urls=(public,)) as web:
        task_id = await _waiting_task(web)
        tunnel = {"Host": "agent.example.com"}
        browser = web.browser(headers=tunnel)
        login = await browser.post("/login", data={"token": web.token}, headers={"Origin": public})
        assert login.status_code == 303
        session = login.cookies["coding_agent_session"]
        browser.cookies.set("coding_agent_session", session)
        csrf = csrf_of((await browser.get(f"/tasks/{task_id}")).text)
        response = await browser.post(
            f"/tasks/{task_id}/end",
            data={"csrf": csrf},
            headers={"Origin": public, "Sec-Fetch-Site": "same-origin"},
        )
        assert response.status_code == 303
        assert await _status_over_mcp(web, task_id) == "completed"


async def test_cross_site_fetch_is_refused(tmp_path: pathlib.Path) -> None:
    """A request the browser marks ``Sec-Fetch-Site: cross-site`` is refused."""
    async with dashboard_server(tmp_path) as web:
        task_id = await _waiting_task(web)
        browser = await web.logged_in()
        csrf = csrf_of((await browser.get(f"/tasks/{task_id}")).text)
        response = await browser.post(
            f"/tasks/{task_id}/end", data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert response.status_code == 403
        assert await _status_over_mcp(web, task_id) == "waiting"


async def test_foreign_host_is_refused(tmp_path: pathlib.Path) -> None:
    """A page asked for under another Host (DNS rebinding) is refused with 421."""
    async with dashboard_server(tmp_path) as web:
        browser = await web.logged_in()
        response = await browser.get("/", headers={"Host": "evil.example"})
        assert response.status_code == 421
        login = await web.browser().get("/login", headers={"Host": "evil.example:80"})
        assert login.status_code == 421


async def test_login_from_another_origin_is_refused(tmp_path: pathlib.Path) -> None:
    """Another site cannot post the login form (no cookie is set)."""
    async with dashboard_server(tmp_path) as web:
        response = await web.browser().post(
            "/login", data={"token": web.token}, headers={"Origin": "http://evil.example"}
        )
        assert response.status_code == 403
        assert "set-cookie" not in response.headers


async def test_next_never_leaves_the_server(tmp_path: pathlib.Path) -> None:
    """A login's ``next`` pointing at another site lands on the board instead."""
    async with dashboard_server(tmp_path) as web:
        for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
            browser = web.browser()
            response = await browser.post("/login", data={"token": web.token, "next": target})
            assert response.headers["location"] == "/", target
