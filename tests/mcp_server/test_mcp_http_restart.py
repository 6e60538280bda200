"""Legacy sessions survive a server restart on the same state directory (issue 15, item 3).

Each test runs a real server (``_support.mcp_http.serving``) with ``state_dir``, stops it
(graceful drain) and starts another on the same port and state directory; the client carries
on with the session id it had.
"""

from __future__ import annotations

import json
import os
import pathlib
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import mcp_types as types
import pytest
import trio
from _support.mcp_http import open_session, read_events, rpc, serving
from _support.polling import eventually
from conformance.server import WATCHED_URI, build_registry
from mcp import Client

from mcp_server._http._session_files import id_hash

LEGACY_SUBSCRIBE = pytest.mark.filterwarnings(
    "ignore:resources/(un)?subscribe is removed:mcp.shared.exceptions.MCPDeprecationWarning"
)


class Restartable:
    """One server at a time on a fixed port and state directory; ``restart`` replaces it."""

    def __init__(self, state: pathlib.Path, nursery: trio.Nursery, **settings: Any) -> None:
        self.state = state
        self.nursery = nursery
        self.settings = settings
        self.port = 0
        self.url = ""
        self._stop = trio.Event()
        self._stopped = trio.Event()

    async def start(self) -> None:
        self._stop, self._stopped = trio.Event(), trio.Event()
        started = trio.Event()

        async def run() -> None:
            try:
                async with serving(
                    build_registry(), state_dir=self.state, port=self.port, **self.settings
                ) as url:
                    self.url = url
                    self.port = int(url.rsplit(":", 1)[1].split("/")[0])
                    started.set()
                    await self._stop.wait()
            finally:
                self._stopped.set()

        self.nursery.start_soon(run)
        await started.wait()

    async def stop(self) -> None:
        self._stop.set()
        await self._stopped.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@asynccontextmanager
async def restartable(state: pathlib.Path, **settings: Any) -> AsyncIterator[Restartable]:
    """A started ``Restartable``, stopped on exit."""
    async with trio.open_nursery() as nursery:
        server = Restartable(state, nursery, **settings)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()


def session_files(state: pathlib.Path) -> list[pathlib.Path]:
    """The session records on disk."""
    directory = state / "sessions"
    return sorted(directory.glob("*.json")) if directory.exists() else []


def texts(result: types.CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, types.TextContent)]


async def test_sdk_legacy_client_keeps_calling_tools_after_a_restart(
    tmp_path: pathlib.Path,
) -> None:
    """The Python SDK's legacy client calls tools with the same session before and after."""
    async with restartable(tmp_path) as server, Client(server.url, mode="legacy") as client:
        assert texts(await client.call_tool("test_simple_text", {})) == [
            "This is a simple text response for testing."
        ]
        [before] = session_files(tmp_path)
        await server.restart()
        result = await client.call_tool("test_simple_text", {})
        assert texts(result) == ["This is a simple text response for testing."]
        assert (await client.list_tools()).tools
        assert session_files(tmp_path) == [before]  # the same session: no new initialize


@LEGACY_SUBSCRIBE
@pytest.mark.filterwarnings(
    "ignore:The logging capability is deprecated:mcp.shared.exceptions.MCPDeprecationWarning"
)
async def test_sdk_legacy_subscription_and_log_level_survive_a_restart(
    tmp_path: pathlib.Path,
) -> None:
    """After a restart the subscription still brings resources/updated on the resumed GET
    stream, and the log level set before it still filters log messages."""
    updated: list[str] = []
    logs: list[Any] = []
    arrived = trio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))
            arrived.set()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async with (
        restartable(tmp_path) as server,
        Client(
            server.url, mode="legacy", message_handler=on_message, logging_callback=on_log
        ) as client,
    ):
        await client.session.subscribe_resource(WATCHED_URI)
        await client.set_logging_level("error")
        await server.restart()
        await client.call_tool("test_tool_with_logging", {})
        await client.call_tool("test_touch_watched_resource", {})
        with trio.fail_after(20):
            await arrived.wait()
    assert updated == [WATCHED_URI]
    assert logs == []  # info messages stay below the "error" level set before the restart


async def test_deleted_session_stays_gone_after_a_restart(tmp_path: pathlib.Path) -> None:
    """DELETE removes the record at once: after a restart the id is 404 and nothing is on disk."""
    async with restartable(tmp_path) as server, httpx.AsyncClient() as http:
        headers = await open_session(http, server.url)
        assert len(session_files(tmp_path)) == 1
        deleted = await http.delete(server.url, headers=headers)
        assert deleted.status_code == 204
        assert session_files(tmp_path) == []
        await server.restart()
        again = await http.post(server.url, headers=headers, json=rpc(1, "ping"))
        assert again.status_code == 404


async def test_expired_session_stays_gone_after_a_restart(tmp_path: pathlib.Path) -> None:
    """An idle-expired session's record is removed, and a restart does not bring it back."""
    async with (
        restartable(tmp_path, session_idle_timeout_s=1.0) as server,
        httpx.AsyncClient() as http,
    ):
        headers = await open_session(http, server.url)
        assert len(session_files(tmp_path)) == 1
        await eventually(lambda: session_files(tmp_path) == [], timeout=20)
        await server.restart()
        again = await http.post(server.url, headers=headers, json=rpc(1, "ping"))
        assert again.status_code == 404


async def test_session_idle_through_a_restart_expires(tmp_path: pathlib.Path) -> None:
    """A session left idle across a restart still expires: dormant, then removed from disk."""
    async with (
        restartable(tmp_path, session_idle_timeout_s=2.0) as server,
        httpx.AsyncClient() as http,
    ):
        headers = await open_session(http, server.url)
        assert len(session_files(tmp_path)) == 1
        await server.restart()
        await eventually(lambda: session_files(tmp_path) == [], timeout=20)
        again = await http.post(server.url, headers=headers, json=rpc(1, "ping"))
        assert again.status_code == 404


async def test_session_record_holds_a_hash_of_the_id_and_is_private(
    tmp_path: pathlib.Path,
) -> None:
    """The record is named by the id's SHA-256, never holds the id itself, and is 0600."""
    async with restartable(tmp_path) as server, httpx.AsyncClient() as http:
        headers = await open_session(http, server.url, {"roots": {}})
        session_id = headers["mcp-session-id"]
        [record] = session_files(tmp_path)
        assert record.name == f"{id_hash(session_id)}.json"
        assert session_id not in record.read_text()
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "sessions").stat().st_mode) == 0o700
        saved = json.loads(record.read_bytes())
        assert saved["client_capabilities"] == {"roots": {}}
        assert saved["initialized"] is True


async def test_corrupt_session_file_is_quarantined_and_the_others_load(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A record that does not parse is moved to quarantine/ with a warning; the server starts
    and the other sessions carry on."""
    async with restartable(tmp_path) as server, httpx.AsyncClient() as http:
        headers = await open_session(http, server.url)
        await server.stop()
        bad = tmp_path / "sessions" / f"{'0' * 64}.json"
        bad.write_bytes(b'{"id_hash": "truncated')
        wrong = tmp_path / "sessions" / f"{'1' * 64}.json"
        wrong.write_bytes(b'{"id_hash": 5}')
        await server.start()
        ok = await http.post(server.url, headers=headers, json=rpc(1, "ping"))
        assert ok.status_code == 200, ok.text
    assert not bad.exists()
    assert not wrong.exists()
    quarantined = sorted(p.name for p in (tmp_path / "quarantine").iterdir())
    assert [name.split(".json.")[0] for name in quarantined] == [
        f"session-{'0' * 64}",
        f"session-{'1' * 64}",
    ]
    warnings = [r.getMessage() for r in caplog.records if "quarantined session" in r.getMessage()]
    assert len(warnings) == 2
    assert any("expected str, got int @ $.id_hash" in w for w in warnings), warnings


async def test_get_stream_resumes_after_a_restart_and_a_cut_request_stream_is_400(
    tmp_path: pathlib.Path,
) -> None:
    """A pre-restart Last-Event-ID on the GET stream resumes with what happened since; one of a
    request's stream says the stream was cut by the restart."""
    async with restartable(tmp_path) as server, httpx.AsyncClient(timeout=20) as http:
        headers = await open_session(http, server.url)
        await http.post(
            server.url, headers=headers, json=rpc(1, "resources/subscribe", {"uri": WATCHED_URI})
        )
        await server.restart()
        get_headers = {**headers, "accept": "text/event-stream", "last-event-id": "g:7"}
        async with http.stream("GET", server.url, headers=get_headers) as stream:
            assert stream.status_code == 200
            touch = rpc(2, "tools/call", {"name": "test_touch_watched_resource", "arguments": {}})
            answer = await http.post(server.url, headers=headers, json=touch)
            assert answer.status_code == 200
            async for event_id, message in read_events(stream):
                if message is not None:
                    assert message["method"] == "notifications/resources/updated"
                    assert event_id is not None
                    assert event_id != "g:1"  # this run's ids are not the last run's
                    break
        cut = {**headers, "accept": "text/event-stream", "last-event-id": "r3:1"}
        refused = await http.get(server.url, headers=cut)
        assert refused.status_code == 400
        assert "cut by a server restart" in refused.json()["error"]["message"]


async def test_oversized_session_is_kept_in_memory_only(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A session whose state would exceed the record bound works, is not written, and says so."""
    async with restartable(tmp_path) as server, httpx.AsyncClient() as http:
        headers = await open_session(http, server.url, {"experimental": {"x": "y" * 70_000}})
        ok = await http.post(server.url, headers=headers, json=rpc(1, "ping"))
        assert ok.status_code == 200
        assert session_files(tmp_path) == []
    assert any("kept in memory only" in r.getMessage() for r in caplog.records)


async def test_sessions_read_back_are_bounded_by_max_sessions(tmp_path: pathlib.Path) -> None:
    """More records than max_sessions: the newest are kept, the others removed from disk."""
    async with (
        restartable(tmp_path, max_sessions=2) as server,
        httpx.AsyncClient() as http,
    ):
        first = await open_session(http, server.url)
        await http.delete(server.url, headers=await open_session(http, server.url))
        second = await open_session(http, server.url)
        assert len(session_files(tmp_path)) == 2
        await server.stop()
        records = session_files(tmp_path)
        # A third record, older than both: over the bound, it is the one dropped.
        old = json.loads(records[0].read_bytes())
        old["id_hash"] = "f" * 64
        old["last_seen"] -= 60
        (tmp_path / "sessions" / f"{'f' * 64}.json").write_bytes(json.dumps(old).encode())
        os.sync()
        await server.start()
        await eventually(lambda: len(session_files(tmp_path)) == 2, timeout=20)
        assert not (tmp_path / "sessions" / f"{'f' * 64}.json").exists()
        for headers in (first, second):
            ok = await http.post(server.url, headers=headers, json=rpc(1, "ping"))
            assert ok.status_code == 200, ok.text
