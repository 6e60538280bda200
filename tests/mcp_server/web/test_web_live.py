"""The dashboard's live updates: the board's and a task's event streams."""

from __future__ import annotations

import pathlib

import trio
from _support.dashboard import dashboard_server, sse_events, wait_task_done


async def test_board_stream_shows_a_task_created_over_mcp(tmp_path: pathlib.Path) -> None:
    """A task created over MCP reaches an open board stream as a row, without a reload."""
    async with dashboard_server(tmp_path) as web:
        browser = await web.logged_in()
        with trio.fail_after(30):
            async with browser.stream("GET", "/events/board") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                events = sse_events(response)
                first = await anext(events)
                assert (first.event, "board-empty" in first.data) == ("board", True)
                created = await web.mcp.ok("create_task", title="live row", instructions="hello")
                async for event in events:
                    if f'id="task-row-{created["task_id"]}"' in event.data:
                        break
        assert event.event == "board"
        assert "live row" in event.data


async def test_board_stream_keeps_the_page_filter(tmp_path: pathlib.Path) -> None:
    """A filtered board's stream sends only the rows its filter matches."""
    async with dashboard_server(tmp_path) as web:
        browser = await web.logged_in()
        with trio.fail_after(30):
            async with browser.stream("GET", "/events/board?q=wanted") as response:
                events = sse_events(response)
                await anext(events)
                await web.mcp.ok("create_task", title="other", instructions="hello")
                await web.mcp.ok("create_task", title="wanted one", instructions="hello")
                async for event in events:
                    if "wanted one" in event.data:
                        break
        assert "other" not in event.data


async def test_task_stream_sends_new_log_lines_and_status(tmp_path: pathlib.Path) -> None:
    """A task's stream sends its log lines after the page's last one, then its new status."""
    async with dashboard_server(tmp_path) as web:
        gate = tmp_path / "gate"
        created = await web.mcp.ok("create_task", title="t", instructions=f"waitfile {gate}")
        task_id = created["task_id"]
        browser = await web.logged_in()
        after = web.runner.last_seq(task_id)
        seen: list[str] = []
        with trio.fail_after(30):
            async with browser.stream("GET", f"/tasks/{task_id}/events?after={after}") as response:
                events = sse_events(response)
                gate.touch()
                async for event in events:
                    seen.append(event.event)
                    if event.event == "log":
                        assert int(event.id or 0) > after
                        assert f'id="event-{after}"' not in event.data
                    if event.event == "status" and "waiting" in event.data:
                        break
        assert "log" in seen
        task = await wait_task_done(web, task_id)
        assert task["status"] == "waiting"


async def test_task_stream_resumes_after_last_event_id(tmp_path: pathlib.Path) -> None:
    """A reconnecting browser gets only the lines after its Last-Event-ID."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="lines 5")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        last = web.runner.last_seq(task_id)
        browser = await web.logged_in()
        with trio.fail_after(30):
            async with browser.stream(
                "GET", f"/tasks/{task_id}/events?after=0", headers={"Last-Event-ID": str(last - 2)}
            ) as response:
                async for event in sse_events(response):
                    if event.event == "log":
                        break
        assert event.id == str(last)
        assert f'id="event-{last - 1}"' in event.data
        assert f'id="event-{last - 2}"' not in event.data


async def test_task_stream_skips_a_backlog_longer_than_a_page(tmp_path: pathlib.Path) -> None:
    """A stream far behind gets a line linking to what it skipped, then the last page only."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="lines 300")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        last = web.runner.last_seq(task_id)
        browser = await web.logged_in()
        with trio.fail_after(30):
            async with browser.stream("GET", f"/tasks/{task_id}/events?after=0") as response:
                events = sse_events(response)
                gap = await anext(events)
                lines = await anext(events)
        assert gap.event == "log"
        assert 'class="log-gap"' in gap.data
        assert f"/tasks/{task_id}/log?before={last - 199}" in gap.data
        assert lines.data.count('class="log-line') == 200
        assert lines.id == str(last)


async def test_streams_end_cleanly_when_the_server_drains(tmp_path: pathlib.Path) -> None:
    """At shutdown open streams end at once and cleanly (not cut at the drain's timeout)."""
    async with dashboard_server(tmp_path) as web:
        browser = await web.logged_in()
        with trio.fail_after(10):
            async with browser.stream("GET", "/events/board") as response:
                events = sse_events(response)
                await anext(events)
                web.shutdown.set()
                async for event in events:
                    assert event.event == "board"


async def test_task_stream_resends_status_only_when_it_changed(tmp_path: pathlib.Path) -> None:
    """A stream told what the page shows sends no status, facts, approvals, turns or buttons
    until the task's differ (a follow-up), then all five."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="hello")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        last = web.runner.last_seq(task_id)
        browser = await web.logged_in()
        path = f"/tasks/{task_id}/events?after={last}&status=waiting&review=&turns=1"
        kinds: list[str] = []
        with trio.fail_after(30):
            async with browser.stream("GET", path) as response:
                events = sse_events(response)
                await web.mcp.ok("update_task", id=task_id, instructions="lines 1")
                async for event in events:
                    kinds.append(event.event)
                    if event.event == "turns":
                        turns = event.data
                    if event.event == "actions":
                        break
        assert kinds[0] == "log"
        assert kinds[-5:] == ["status", "facts", "approvals", "turns", "actions"]
        assert '<pre class="instructions">lines 1</pre>' in turns


async def test_task_stream_ends_saying_deleted_after_clean_state(tmp_path: pathlib.Path) -> None:
    """A task deleted over MCP (clean_state) ends its stream with a 'deleted' status."""
    async with dashboard_server(tmp_path) as web:
        created = await web.mcp.ok("create_task", title="t", instructions="hello")
        task_id = created["task_id"]
        await wait_task_done(web, task_id)
        last = web.runner.last_seq(task_id)
        browser = await web.logged_in()
        path = f"/tasks/{task_id}/events?after={last}&status=waiting&review=&turns=1"
        with trio.fail_after(30):
            async with browser.stream("GET", path) as response:
                events = sse_events(response)
                await web.mcp.ok("clean_state")
                received = [event async for event in events]
        assert [event.event for event in received] == ["status"]
        assert ">deleted<" in received[0].data
