"""The Streamable HTTP transport against a live Hypercorn server on 127.0.0.1."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import pytest
import trio
from _support.mcp_http import (
    BASE_HEADERS,
    JSON,
    modern_headers,
    modern_params,
    open_session,
    read_events,
    rpc,
    serving,
)

from mcp_server import (
    HttpSettings,
    Registry,
    RequestContext,
    Resource,
    TextContents,
    Tool,
    ToolResult,
    serve,
)
from mcp_server._http._authority import advertised_base, public_bases
from mcp_server._http._streams import EventStream


@attrs.define
class Probe:
    """What the test tools saw."""

    started: trio.Event = attrs.field(factory=trio.Event)
    cancelled: trio.Event = attrs.field(factory=trio.Event)
    release: trio.Event = attrs.field(factory=trio.Event)


def make_registry(probe: Probe) -> Registry:
    registry = Registry()

    async def echo(ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult([{"type": "text", "text": str(args.get("text", ""))}])

    async def slow(ctx: RequestContext, args: JSON) -> ToolResult:
        probe.started.set()
        try:
            await trio.sleep_forever()
        finally:
            probe.cancelled.set()

    async def resumable(ctx: RequestContext, args: JSON) -> ToolResult:
        await ctx.progress(1, 2)
        ctx.close_sse_stream()
        await probe.release.wait()
        await ctx.progress(2, 2)
        return ToolResult([{"type": "text", "text": "resumed"}])

    async def gated(ctx: RequestContext, args: JSON) -> ToolResult:
        await ctx.progress(1, 2)
        probe.started.set()
        await probe.release.wait()
        return ToolResult([{"type": "text", "text": "released"}])

    async def waiter(ctx: RequestContext, args: JSON) -> ToolResult:
        probe.started.set()
        await probe.release.wait()
        return ToolResult([{"type": "text", "text": "waited"}])

    async def read(uri: str) -> list[Any]:
        return [TextContents(uri, "v")]

    schema = {"type": "object"}
    registry.add_tool(Tool("echo", "Echo", schema, echo))
    registry.add_tool(Tool("slow", "Waits until cancelled", schema, slow))
    registry.add_tool(Tool("resumable", "Closes its stream", schema, resumable))
    registry.add_tool(Tool("gated", "Waits for the test", schema, gated))
    registry.add_tool(Tool("waiter", "Waits for the test, silently", schema, waiter))
    registry.add_resource(Resource("x://watched", "watched", read))
    return registry


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
async def url(probe: Probe) -> AsyncIterator[str]:
    async with serving(make_registry(probe)) as served:
        yield served


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as http:
        yield http


def sse_messages(text: str) -> list[JSON]:
    return [
        json.loads(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: ") and line[len("data: ") :].strip()
    ]


# -- legacy leg ----------------------------------------------------------------------------------


async def test_notification_gets_202(url: str, client: httpx.AsyncClient) -> None:
    """A notification is accepted with 202 and no body."""
    headers = await open_session(client, url)
    response = await client.post(url, headers=headers, json=rpc(None, "notifications/progress"))
    assert response.status_code == 202
    assert response.content == b""


async def test_request_answers_json(url: str, client: httpx.AsyncClient) -> None:
    """A quick call is answered with a JSON object."""
    headers = await open_session(client, url)
    body = rpc(1, "tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    response = await client.post(url, headers=headers, json=body)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["result"]["content"] == [{"type": "text", "text": "hi"}]


async def test_missing_session_is_400_unknown_is_404(url: str, client: httpx.AsyncClient) -> None:
    """No session id → 400; an unknown one → 404."""
    missing = await client.post(url, headers=BASE_HEADERS, json=rpc(1, "tools/list"))
    assert missing.status_code == 400
    unknown = await client.post(
        url, headers={**BASE_HEADERS, "mcp-session-id": "nope"}, json=rpc(1, "tools/list")
    )
    assert unknown.status_code == 404


async def test_delete_ends_the_session(url: str, client: httpx.AsyncClient) -> None:
    """After DELETE the session id gets 404."""
    headers = await open_session(client, url)
    deleted = await client.delete(url, headers=headers)
    assert deleted.status_code == 204
    after = await client.post(url, headers=headers, json=rpc(1, "tools/list"))
    assert after.status_code == 404


async def test_bad_version_header_is_400(url: str, client: httpx.AsyncClient) -> None:
    """An unsupported MCP-Protocol-Version on a session is rejected with 400."""
    headers = await open_session(client, url)
    headers["mcp-protocol-version"] = "1999-01-01"
    response = await client.post(url, headers=headers, json=rpc(1, "tools/list"))
    assert response.status_code == 400


async def test_notifications_cancelled_cancels_the_handler(
    url: str, client: httpx.AsyncClient, probe: Probe
) -> None:
    """A legacy notifications/cancelled cancels the running request's scope."""
    headers = await open_session(client, url)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: client.post(url, headers=headers, json=rpc(5, "tools/call", {"name": "slow"}))
        )
        with trio.fail_after(10):
            await probe.started.wait()
        cancel = rpc(None, "notifications/cancelled", {"requestId": 5})
        assert (await client.post(url, headers=headers, json=cancel)).status_code == 202
        with trio.fail_after(10):
            await probe.cancelled.wait()


async def test_last_event_id_resumes_a_closed_stream(
    url: str, client: httpx.AsyncClient, probe: Probe
) -> None:
    """A stream the server closed is resumed with GET + Last-Event-ID and ends with the result."""
    headers = await open_session(client, url)
    body = rpc(9, "tools/call", {"name": "resumable", "_meta": {"progressToken": "p"}})
    last_id = None
    seen: list[JSON] = []
    async with client.stream("POST", url, headers=headers, json=body) as response:
        assert response.headers["content-type"] == "text/event-stream"
        async for event_id, message in read_events(response):
            last_id = event_id or last_id
            if message is not None:
                seen.append(message)
    assert [m["method"] for m in seen] == ["notifications/progress"]
    probe.release.set()
    resume = {**headers, "last-event-id": str(last_id)}
    async with client.stream("GET", url, headers=resume) as response:
        rest = [m async for _, m in read_events(response) if m is not None]
    assert rest[0]["params"]["progress"] == 2
    assert rest[-1]["id"] == 9
    assert rest[-1]["result"]["content"][0]["text"] == "resumed"


async def test_resource_update_reaches_the_get_stream(
    client: httpx.AsyncClient, probe: Probe
) -> None:
    """A subscribed resource's update is delivered on the session's GET stream."""
    registry = make_registry(probe)
    async with serving(registry) as url:
        headers = await open_session(client, url)
        subscribe = rpc(1, "resources/subscribe", {"uri": "x://watched"})
        assert (await client.post(url, headers=headers, json=subscribe)).status_code == 200
        async with client.stream("GET", url, headers=headers) as response:
            registry.resource_updated("x://watched")
            with trio.fail_after(10):
                async for _, message in read_events(response):
                    if message is not None:
                        break
    assert message == {
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": {"uri": "x://watched"},
    }


# -- HTTP-level rejections -----------------------------------------------------------------------


async def test_malformed_body_is_32700(url: str, client: httpx.AsyncClient) -> None:
    """A body that is not JSON gets 400 and -32700."""
    response = await client.post(url, headers=BASE_HEADERS, content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
    assert response.json()["error"]["message"].startswith("Parse error: the body is not JSON (")


async def test_invalid_message_is_32600(url: str, client: httpx.AsyncClient) -> None:
    """JSON that is not a JSON-RPC message gets 400 and -32600, echoing the id."""
    response = await client.post(url, headers=BASE_HEADERS, json={"jsonrpc": "2.0", "id": 3})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600
    assert response.json()["error"]["message"] == "expected method, result or error @ $"
    assert response.json()["id"] == 3


async def test_oversized_body_is_413(probe: Probe, client: httpx.AsyncClient) -> None:
    """A body above max_body_bytes is refused with 413."""
    async with serving(make_registry(probe), max_body_bytes=1000) as url:
        body = rpc(1, "tools/list", {"pad": "x" * 2000})
        response = await client.post(url, headers=BASE_HEADERS, json=body)
    assert response.status_code == 413


async def test_connection_reused_after_an_early_rejection(
    url: str, client: httpx.AsyncClient
) -> None:
    """A keep-alive connection keeps serving after a 406 answered before the body mattered."""
    for _ in range(50):
        rejected = await client.post(
            url, headers={**BASE_HEADERS, "accept": "application/json"}, content=b"{}"
        )
        assert rejected.status_code == 406
        ping = await client.post(url, headers=BASE_HEADERS, json=rpc(1, "ping"))
        assert ping.status_code == 400  # no session: still a real answer on the same connection


async def test_accept_and_content_type_checked(url: str, client: httpx.AsyncClient) -> None:
    """A POST not accepting both types is 406; a non-JSON content type is 415."""
    no_sse = await client.post(
        url, headers={**BASE_HEADERS, "accept": "application/json"}, json=rpc(1, "ping")
    )
    assert no_sse.status_code == 406
    text = await client.post(
        url, headers={**BASE_HEADERS, "content-type": "text/plain"}, content=b"{}"
    )
    assert text.status_code == 415


async def test_bad_origin_403_bad_host_rejected(url: str, client: httpx.AsyncClient) -> None:
    """A foreign Origin gets 403; a foreign Host (DNS rebinding) a 4xx."""
    origin = await client.post(
        url, headers={**BASE_HEADERS, "origin": "https://evil.example.com"}, json=rpc(1, "ping")
    )
    assert origin.status_code == 403
    host = await client.post(
        url, headers={**BASE_HEADERS, "host": "evil.example.com"}, json=rpc(1, "ping")
    )
    assert 400 <= host.status_code < 500
    local = await client.post(
        url,
        headers={**BASE_HEADERS, "origin": url.rsplit("/", 1)[0]},
        json=rpc(0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}}),
    )
    assert local.status_code == 200


async def test_bearer_token_required(probe: Probe, client: httpx.AsyncClient) -> None:
    """Without the token: 401 with resource metadata; health needs no token; metadata served."""
    async with serving(make_registry(probe), auth_token="s3cret") as url:
        denied = await client.post(url, headers=BASE_HEADERS, json=rpc(1, "ping"))
        wrong = await client.post(
            url, headers={**BASE_HEADERS, "authorization": "Bearer nope"}, json=rpc(1, "ping")
        )
        params = {"protocolVersion": "2025-11-25", "capabilities": {}}
        allowed = await client.post(
            url,
            headers={**BASE_HEADERS, "authorization": "Bearer s3cret"},
            json=rpc(0, "initialize", params),
        )
        base = url.rsplit("/", 1)[0]
        health = await client.get(f"{base}/healthz")
        metadata = await client.get(f"{base}/.well-known/oauth-protected-resource/mcp")
    assert denied.status_code == 401
    assert wrong.status_code == 401
    challenge = denied.headers["www-authenticate"]
    assert challenge.startswith('Bearer resource_metadata="')
    assert "/.well-known/oauth-protected-resource/mcp" in challenge
    assert allowed.status_code == 200
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert metadata.json()["resource"] == url


async def test_auth_metadata_names_the_tunnel_url(probe: Probe, client: httpx.AsyncClient) -> None:
    """A request whose Host is a public URL's is told that URL in the 401 and RFC 9728 body."""
    tunnel = "https://x.trycloudflare.com"
    async with serving(make_registry(probe), auth_token="s3cret", public_urls=(tunnel,)) as url:
        host = {"host": "x.trycloudflare.com"}
        denied = await client.post(url, headers={**BASE_HEADERS, **host}, json=rpc(1, "ping"))
        base = url.rsplit("/", 1)[0]
        metadata = await client.get(
            f"{base}/.well-known/oauth-protected-resource/mcp", headers=host
        )
    assert denied.status_code == 401
    expected = f'Bearer resource_metadata="{tunnel}/.well-known/oauth-protected-resource/mcp"'
    assert denied.headers["www-authenticate"] == expected
    assert metadata.json()["resource"] == f"{tunnel}/mcp"


async def test_auth_metadata_keeps_a_local_request_url(
    probe: Probe, client: httpx.AsyncClient
) -> None:
    """A request to a local Host is told its own scheme and Host, even with a tunnel set."""
    tunnel = "https://x.trycloudflare.com"
    async with serving(make_registry(probe), auth_token="s3cret", public_urls=(tunnel,)) as url:
        denied = await client.post(url, headers=BASE_HEADERS, json=rpc(1, "ping"))
        base = url.rsplit("/", 1)[0]
        metadata = await client.get(f"{base}/.well-known/oauth-protected-resource/mcp")
    expected = f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
    assert denied.headers["www-authenticate"] == expected
    assert metadata.json()["resource"] == url


def test_advertised_base_prefers_the_public_url_on_the_same_port() -> None:
    """Two public URLs on one hostname: the Host's explicit port picks; none picks the first."""
    settings = HttpSettings(public_urls=("https://t.example", "http://t.example:8080"))
    bases = public_bases(settings)
    assert advertised_base("http", "T.example:8080", bases) == "http://t.example:8080"
    assert advertised_base("http", "t.example", bases) == "https://t.example"
    assert advertised_base("http", "localhost:3000", bases) == "http://localhost:3000"


async def test_json_answer_is_one_write_on_a_reused_connection(url: str) -> None:
    """A JSON answer's head and body arrive in one write; the keep-alive connection serves on."""
    port = int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    body = json.dumps(rpc(1, "tools/call", modern_params(name="echo", arguments={"text": "hi"})))
    head = "".join(f"{k}: {v}\r\n" for k, v in modern_headers("tools/call", "echo").items())
    request = (
        f"POST /mcp HTTP/1.1\r\nhost: localhost:{port}\r\n{head}"
        f"content-length: {len(body)}\r\n\r\n{body}"
    ).encode()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        for _ in range(2):
            await stream.send_all(request)
            with trio.fail_after(10):
                data = await stream.receive_some(65536)
            raw_head, _, payload = data.partition(b"\r\n\r\n")
            assert raw_head.startswith(b"HTTP/1.1 200")
            length = int(raw_head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert len(payload) == length
            assert json.loads(payload)["result"]["content"][0]["text"] == "hi"


# -- modern leg ----------------------------------------------------------------------------------


async def test_modern_get_and_delete_are_405(url: str, client: httpx.AsyncClient) -> None:
    """GET and DELETE on the 2026-07-28 leg are 405."""
    get = await client.get(url, headers=modern_headers("x"))
    delete = await client.delete(url, headers=modern_headers("x"))
    assert (get.status_code, delete.status_code) == (405, 405)


async def test_modern_unknown_method_is_404(url: str, client: httpx.AsyncClient) -> None:
    """An unknown or removed method on the modern leg is 404 + -32601."""
    response = await client.post(
        url, headers=modern_headers("ping"), json=rpc(1, "ping", modern_params())
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == -32601
    assert response.json()["error"]["message"] == "Method not found: ping"


async def test_modern_header_mismatch_is_400(url: str, client: httpx.AsyncClient) -> None:
    """A Mcp-Method header differing from the body is 400 + -32020."""
    response = await client.post(
        url, headers=modern_headers("prompts/list"), json=rpc(1, "tools/list", modern_params())
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    assert response.json()["error"]["message"] == (
        "Mcp-Method header does not match the request body: "
        "header 'prompts/list', body 'tools/list'"
    )


async def test_modern_closed_stream_cancels_the_handler(
    url: str, client: httpx.AsyncClient, probe: Probe
) -> None:
    """Closing a modern response stream cancels the request's handler."""
    body = rpc(1, "tools/call", modern_params(name="slow"))
    async with trio.open_nursery() as nursery:

        async def call() -> None:
            async with client.stream(
                "POST", url, headers=modern_headers("tools/call", "slow"), json=body
            ):
                await trio.sleep_forever()

        nursery.start_soon(call)
        with trio.fail_after(10):
            await probe.started.wait()
        nursery.cancel_scope.cancel()
    with trio.fail_after(10):
        await probe.cancelled.wait()


async def test_listen_stream_gets_list_changed(probe: Probe, client: httpx.AsyncClient) -> None:
    """subscriptions/listen acknowledges first, then relays the tools list_changed it asked for."""
    registry = make_registry(probe)
    params = modern_params(notifications={"toolsListChanged": True})
    async with (
        serving(registry) as url,
        client.stream(
            "POST",
            url,
            headers=modern_headers("subscriptions/listen"),
            json=rpc("L", "subscriptions/listen", params),
        ) as response,
    ):
        messages: list[JSON] = []
        with trio.fail_after(10):
            async for _, message in read_events(response):
                if message is None:
                    continue
                messages.append(message)
                if len(messages) == 1:
                    registry.remove_tool("echo")
                else:
                    break
    assert messages[0]["method"] == "notifications/subscriptions/acknowledged", messages
    assert messages[0]["params"]["notifications"] == {"toolsListChanged": True}
    assert messages[1]["method"] == "notifications/tools/list_changed"
    assert messages[1]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "L"


# -- shutdown ------------------------------------------------------------------------------------


async def test_drain_ends_sse_stream_with_a_final_event(probe: Probe) -> None:
    """On shutdown an open GET stream gets a final event and ends; the server returns."""
    events: list[tuple[str | None, JSON | None]] = []
    first, ended = trio.Event(), trio.Event()
    async with httpx.AsyncClient(timeout=20) as client, trio.open_nursery() as nursery:
        async with serving(make_registry(probe), graceful_timeout_s=30) as url:
            headers = await open_session(client, url)

            async def listen(task_status: trio.TaskStatus[None]) -> None:
                async with client.stream("GET", url, headers=headers) as response:
                    task_status.started()
                    async for event in read_events(response):
                        events.append(event)
                        first.set()
                ended.set()

            await nursery.start(listen)
            with trio.fail_after(10):
                await first.wait()
            left = trio.current_time()
        # Leaving `serving` drained the server well before the 30 s graceful timeout.
        assert trio.current_time() - left < 15
        with trio.fail_after(10):
            await ended.wait()
    assert len(events) >= 2
    assert events[-1][0] is not None


async def test_drain_lets_a_request_in_flight_complete(probe: Probe) -> None:
    """A request streaming when shutdown is set still gets its result; then serve() returns."""
    shutdown = trio.Event()
    settings = HttpSettings(port=0, graceful_timeout_s=30)
    messages: list[JSON] = []
    async with httpx.AsyncClient(timeout=20) as client, trio.open_nursery() as nursery:
        urls = await nursery.start(
            functools.partial(serve, make_registry(probe), settings, shutdown=shutdown)
        )
        url = urls[0].replace("127.0.0.1", "localhost") + "/mcp"
        headers = await open_session(client, url)

        async def call() -> None:
            body = rpc(3, "tools/call", {"name": "gated", "_meta": {"progressToken": "p"}})
            async with client.stream("POST", url, headers=headers, json=body) as response:
                messages.extend([m async for _, m in read_events(response) if m is not None])

        nursery.start_soon(call)
        with trio.fail_after(10):
            await probe.started.wait()
        shutdown.set()
        port = int(urls[0].rsplit(":", 1)[1])
        with trio.fail_after(10):
            await _until_refused(port)
        probe.release.set()
        started = trio.current_time()
    assert trio.current_time() - started < 15
    assert messages[0]["method"] == "notifications/progress"
    assert messages[-1]["result"]["content"][0]["text"] == "released"


@pytest.mark.parametrize("era", ["legacy", "modern"])
@pytest.mark.parametrize(("tool", "text"), [("waiter", "waited"), ("gated", "released")])
async def test_drain_lets_each_request_in_flight_complete(
    probe: Probe, era: str, tool: str, text: str
) -> None:
    """A request in flight (plain JSON or streaming) when shutdown is set gets its real result."""
    shutdown = trio.Event()
    settings = HttpSettings(port=0, graceful_timeout_s=30)
    messages: list[JSON] = []
    async with httpx.AsyncClient(timeout=20) as client, trio.open_nursery() as nursery:
        urls = await nursery.start(
            functools.partial(serve, make_registry(probe), settings, shutdown=shutdown)
        )
        url = urls[0].replace("127.0.0.1", "localhost") + "/mcp"
        if era == "legacy":
            headers = await open_session(client, url)
            body = rpc(3, "tools/call", {"name": tool, "_meta": {"progressToken": "p"}})
        else:
            headers = modern_headers("tools/call", tool)
            params = modern_params(name=tool)
            params["_meta"]["progressToken"] = "p"
            body = rpc(3, "tools/call", params)

        async def call() -> None:
            response = await client.post(url, headers=headers, json=body)
            assert response.status_code == 200
            if response.headers["content-type"].startswith("application/json"):
                messages.append(response.json())
            else:
                messages.extend(sse_messages(response.text))

        nursery.start_soon(call)
        with trio.fail_after(10):
            await probe.started.wait()
        shutdown.set()
        port = int(urls[0].rsplit(":", 1)[1])
        with trio.fail_after(10):
            await _until_refused(port)
        probe.release.set()
        started = trio.current_time()
    # serve() returned (the nursery exited) well before the 30 s graceful timeout.
    assert trio.current_time() - started < 15
    assert messages[-1]["id"] == 3
    assert messages[-1]["result"]["content"][0]["text"] == text


async def _until_refused(port: int) -> None:
    """Return once the server stopped accepting connections (draining)."""
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            return
        await stream.aclose()
        await trio.sleep(0.01)


async def test_idle_keep_alive_client_does_not_hold_shutdown(probe: Probe) -> None:
    """An idle keep-alive connection does not hold graceful shutdown for graceful_timeout."""
    async with httpx.AsyncClient(timeout=20) as client:
        async with serving(make_registry(probe), graceful_timeout_s=30) as url:
            await open_session(client, url)
            health = await client.get(url.rsplit("/", 1)[0] + "/healthz")
            assert health.status_code == 200
            started = trio.current_time()
        # The client still holds its pooled keep-alive connection here.
        assert trio.current_time() - started < 15


# -- resource bounds -----------------------------------------------------------------------------


async def test_idle_session_expires(probe: Probe, client: httpx.AsyncClient) -> None:
    """A session idle for longer than session_idle_timeout_s is gone (404)."""
    idle_timeout = 0.2
    async with serving(make_registry(probe), session_idle_timeout_s=idle_timeout) as url:
        headers = await open_session(client, url)
        response = await client.post(url, headers=headers, json=rpc(1, "ping"))
        assert response.status_code == 200
        # Each ping refreshes a live session, so each one follows an idle gap longer than the
        # timeout; on a loaded machine the sweep may miss a gap, and the next gap is awaited.
        with trio.fail_after(30):
            while response.status_code == 200:
                await trio.sleep(2 * idle_timeout)
                response = await client.post(url, headers=headers, json=rpc(1, "ping"))
    assert response.status_code == 404


async def test_session_cap_evicts_the_least_recently_used(
    probe: Probe, client: httpx.AsyncClient
) -> None:
    """Past max_sessions the least recently used idle session is ended."""
    async with serving(make_registry(probe), max_sessions=2) as url:
        first = await open_session(client, url)
        second = await open_session(client, url)
        await open_session(client, url)
        evicted = await client.post(url, headers=first, json=rpc(1, "ping"))
        kept = await client.post(url, headers=second, json=rpc(1, "ping"))
    assert (evicted.status_code, kept.status_code) == (404, 200)


def test_event_stream_is_bounded() -> None:
    """A stream keeps at most its limit of events and reports the gap to a lagging reader."""
    stream = EventStream("r1", 4)
    for index in range(10):
        stream.push(str(index).encode())
    events, gap = stream.after(0)
    assert gap
    assert [seq for seq, _ in events] == [7, 8, 9, 10]
    assert stream.after(8) == ([(9, b"8"), (10, b"9")], False)


async def test_second_get_stream_replaces_the_first(probe: Probe) -> None:
    """A new GET stream takes over: the old one ends, messages go out on the new one only."""
    registry = make_registry(probe)
    async with httpx.AsyncClient(timeout=20) as client, serving(registry) as url:
        headers = await open_session(client, url)
        subscribe = rpc(1, "resources/subscribe", {"uri": "x://watched"})
        assert (await client.post(url, headers=headers, json=subscribe)).status_code == 200
        async with client.stream("GET", url, headers=headers) as first:
            first_events = read_events(first)
            assert (await anext(first_events))[1] is None  # priming
            async with client.stream("GET", url, headers=headers) as second:
                second_events = read_events(second)
                assert (await anext(second_events))[1] is None
                with trio.fail_after(10):
                    leftovers = [event async for event in first_events]
                registry.resource_updated("x://watched")
                with trio.fail_after(10):
                    _, message = await anext(second_events)
    assert leftovers == []
    assert message is not None
    assert message["method"] == "notifications/resources/updated"
