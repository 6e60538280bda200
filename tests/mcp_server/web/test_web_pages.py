"""The dashboard's pages: a long log in bounded pages, the diff coloured and folded per file,
the CSP and no inline code anywhere, static files with their types, and ``run_server`` serving
it all on the MCP port."""

from __future__ import annotations

import pathlib
import re
from pathlib import PurePosixPath

import httpx
import trio
from _support.daemon import running_daemon
from _support.dashboard import TOKEN, dashboard_server, wait_task_done, worktree_dashboard

from mcp_server._cli import run_server
from mcp_server._config import ServerConfig
from mcp_server._tasks import DaemonEndpoint, Workspace
from mcp_server._web._guard import CSP

_LINE = re.compile(r'<li class="log-line[^"]*" id="event-(\d+)"')


def _seqs(html: str) -> list[int]:
    return [int(seq) for seq in _LINE.findall(html)]


async def test_task_page_shows_only_the_last_log_page(tmp_path: pathlib.Path) -> None:
    """A long log renders its last 200 events, with a link to the older ones."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="lines 450")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        last = web.runner.last_seq(task_id)
        assert last > 450
        browser = await web.logged_in()
        page = (await browser.get(f"/tasks/{task_id}")).text
        assert _seqs(page) == list(range(last - 199, last + 1))
        assert f'href="/tasks/{task_id}/log?before={last - 199}"' in page
        assert f'sse-connect="/tasks/{task_id}/events?after={last}&amp;status=waiting' in page


async def test_task_page_size_does_not_grow_with_the_log(tmp_path: pathlib.Path) -> None:
    """A task with 20,000 events renders a page no bigger than with a few hundred."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="hello")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        for number in range(20_000):
            web.runner.store.append_event(
                task_id, kind="agent", summary=f"line {number} " + "x" * 100, data={"kind": "text"}
            )
        await web.runner.store.flush()
        last = web.runner.last_seq(task_id)
        assert last > 20_000
        browser = await web.logged_in()
        page = (await browser.get(f"/tasks/{task_id}")).text
        assert _seqs(page) == list(range(last - 199, last + 1))
        assert len(page) < 200 * 400 + 10_000


async def test_older_log_pages_are_bounded(tmp_path: pathlib.Path) -> None:
    """Each older page holds the 200 events before it and links to the next older one."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="lines 450")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        browser = await web.logged_in()
        before = web.runner.last_seq(task_id) - 199
        seen: list[int] = []
        while True:
            fragment = await browser.get(
                f"/tasks/{task_id}/log?before={before}", headers={"HX-Request": "true"}
            )
            assert "<html" not in fragment.text  # htmx gets a fragment, not a page
            seqs = _seqs(fragment.text)
            assert 0 < len(seqs) <= 200
            assert seqs == list(range(seqs[0], before))
            seen = seqs + seen
            match = re.search(r'id="log-older" href="[^"]*before=(\d+)"', fragment.text)
            if match is None:
                break
            before = int(match[1])
        assert seen == list(range(1, web.runner.last_seq(task_id) - 199))
        whole = await browser.get(f"/tasks/{task_id}/log?before=201")
        assert "<html" in whole.text
        assert _seqs(whole.text) == list(range(1, 201))


async def test_log_page_refuses_a_bad_position(tmp_path: pathlib.Path) -> None:
    """A 'before' that is not a number is a clear 400, not a crash."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="hello")
        browser = await web.logged_in()
        response = await browser.get(f"/tasks/{created['task_id']}/log?before=%C2%B2")
        assert response.status_code == 400
        assert "expected a sequence number" in response.text


async def test_diff_is_coloured_and_folded_per_file(tmp_path: pathlib.Path) -> None:
    """The diff shows one foldable section per file, added and removed lines classed."""
    async with worktree_dashboard(tmp_path) as web:
        created = await web.mcp.ok(
            "create_task", title="t", instructions="edit README replaced words"
        )
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        await web.mcp.ok("update_task", id=task_id, instructions="edit new.txt fresh file")
        await wait_task_done(web, task_id)
        browser = await web.logged_in()
        page = await browser.get(f"/tasks/{task_id}/diff")
        fragment = await browser.get(f"/tasks/{task_id}/diff", headers={"HX-Request": "true"})
        assert "<html" in page.text
        assert "<html" not in fragment.text
        html = fragment.text
        assert html.count('<details class="diff-file" open>') == 2
        assert '<span class="path">README</span>' in html
        assert '<span class="path">new.txt</span>' in html
        assert '<span class="line del">-hello</span>' in html
        assert '<span class="line add">+replaced words</span>' in html
        assert '<span class="line add">+fresh file</span>' in html
        assert re.search(r'<span class="line hunk">@@ [^<]*</span>', html)
        task_page = (await browser.get(f"/tasks/{task_id}")).text
        assert f'hx-get="/tasks/{task_id}/diff"' in task_page


async def test_every_page_carries_the_csp(tmp_path: pathlib.Path) -> None:
    """Every answer of the dashboard, refusals included, allows only its own origin."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="hello")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        browser = await web.logged_in()
        anonymous = web.browser()
        answers = [
            await anonymous.get("/login"),
            await anonymous.get("/"),
            await anonymous.post("/login", data={"token": "wrong"}),
            await browser.get("/"),
            await browser.get("/status"),
            await browser.get(f"/tasks/{task_id}"),
            await browser.get(f"/tasks/{task_id}/log?before=2"),
            await browser.get(f"/tasks/{task_id}/diff"),
            await browser.get("/tasks/no-such-task"),
            await browser.get("/no-such-page"),
            await browser.post(f"/tasks/{task_id}/end"),
            await browser.get("/static/style.css"),
        ]
        for response in answers:
            assert response.headers["content-security-policy"] == CSP, response.url
            assert response.headers["x-frame-options"] == "DENY", response.url
        assert CSP.startswith("default-src 'self';")


async def test_pages_have_no_inline_script_or_style(tmp_path: pathlib.Path) -> None:
    """No page holds inline script, style or event handlers (the CSP would block them)."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="hello")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        browser = await web.logged_in()
        pages = [(await web.browser().get("/login")).text]
        for path in ("/", "/status", f"/tasks/{task_id}", f"/tasks/{task_id}/log?before=3"):
            pages.append((await browser.get(path)).text)
        for html in pages:
            assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
            assert "<style" not in html
            assert re.search(r"\sstyle=", html) is None
            assert re.search(r"\son[a-z]+=", html) is None
            assert "hx-on" not in html


async def test_static_files_have_their_types(tmp_path: pathlib.Path) -> None:
    """The stylesheet and the vendored scripts are served with their media types."""
    async with dashboard_server(tmp_path) as web:
        browser = web.browser()
        css = await browser.get("/static/style.css")
        htmx = await browser.get("/static/htmx.min.js")
        sse = await browser.get("/static/sse.min.js")
        app = await browser.get("/static/app.js")
        assert app.headers["content-type"].startswith("text/javascript")
        assert css.headers["content-type"].startswith("text/css")
        assert htmx.headers["content-type"].startswith("text/javascript")
        assert sse.headers["content-type"].startswith("text/javascript")
        assert 'version:"2.0.11"' in htmx.text
        assert "sse-connect" in sse.text
        assert css.headers["x-content-type-options"] == "nosniff"


async def test_run_server_serves_the_dashboard(tmp_path: pathlib.Path) -> None:
    """``coding-agent serve``'s server answers the dashboard at / beside /mcp."""
    root = tmp_path / "root"
    root.mkdir()
    async with running_daemon(roots=[root]) as daemon:
        config = ServerConfig(
            host="127.0.0.1",
            port=0,
            state_path=tmp_path / "state",
            workspace=Workspace(PurePosixPath(root), PurePosixPath(root)),
            daemon=DaemonEndpoint(host=daemon.host, port=daemon.port, token=daemon.token),
            auth_token=TOKEN,
            http_graceful_s=2.0,
        )
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                lambda task_status: run_server(config, shutdown=shutdown, task_status=task_status)
            )
            base = urls[0].replace("127.0.0.1", "localhost")
            async with httpx.AsyncClient(base_url=base) as browser:
                assert (await browser.get("/")).headers["location"] == "/login?next=/"
                login = await browser.post("/login", data={"token": TOKEN})
                assert login.status_code == 303
                board = await browser.get("/")
                assert 'id="board"' in board.text
                assert board.headers["content-security-policy"] == CSP
            shutdown.set()
