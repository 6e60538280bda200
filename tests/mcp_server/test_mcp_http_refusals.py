"""What the Streamable HTTP transport refuses, and how clearly: protocol-version headers,
``subscriptions/listen`` floods and oversized filters, Host and Origin variants."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import httpx
import pytest
import trio
from _support.mcp_http import (
    BASE_HEADERS,
    JSON,
    LEGACY,
    modern_headers,
    modern_params,
    open_session,
    read_events,
    rpc,
    serving,
)

from mcp_server import Registry, RequestContext, Tool, ToolResult

SUPPORTED = ("2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")


def make_registry() -> Registry:
    registry = Registry()

    async def echo(ctx: RequestContext, args: JSON) -> ToolResult:
        return ToolResult([{"type": "text", "text": str(args.get("text", ""))}])

    registry.add_tool(Tool("echo", "Echo", {"type": "object"}, echo))
    return registry


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as http:
        yield http


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with serving(make_registry()) as served:
        yield served


def assert_names_supported_versions(response: httpx.Response, requested: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == -32022
    assert requested in error["message"]
    assert all(version in error["message"] for version in SUPPORTED), error["message"]
    assert error["data"] == {"supported": list(SUPPORTED), "requested": requested}


# -- MCP-Protocol-Version ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ping", "tools/list"])
async def test_legacy_session_version_header(
    url: str, client: httpx.AsyncClient, method: str
) -> None:
    """On a session a served version works; an unsupported one is 400 naming the served ones."""
    headers = await open_session(client, url)
    served = await client.post(
        url, headers={**headers, "mcp-protocol-version": "2025-03-26"}, json=rpc(1, method)
    )
    assert served.status_code == 200
    assert "result" in served.json()
    unsupported = await client.post(
        url, headers={**headers, "mcp-protocol-version": "1999-01-01"}, json=rpc(2, method)
    )
    assert_names_supported_versions(unsupported, "1999-01-01")
    assert unsupported.json()["id"] == 2


async def test_legacy_session_version_header_on_get_and_delete(
    url: str, client: httpx.AsyncClient
) -> None:
    """GET and DELETE with an unsupported version are 400 too (not 405), and leave the session."""
    headers = await open_session(client, url)
    bad = {**headers, "mcp-protocol-version": "1999-01-01"}
    assert_names_supported_versions(await client.get(url, headers=bad), "1999-01-01")
    assert_names_supported_versions(await client.delete(url, headers=bad), "1999-01-01")
    still = await client.post(url, headers=headers, json=rpc(3, "ping"))
    assert still.status_code == 200


@pytest.mark.parametrize("method", ["ping", "tools/list"])
async def test_modern_version_header(url: str, client: httpx.AsyncClient, method: str) -> None:
    """Without a session, 2026-07-28 works and an unknown version is 400 naming the served ones."""
    listed = await client.post(
        url, headers=modern_headers("tools/list"), json=rpc(1, "tools/list", modern_params())
    )
    assert listed.status_code == 200
    assert listed.json()["result"]["tools"][0]["name"] == "echo"
    params = modern_params()
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    headers = {**modern_headers(method), "mcp-protocol-version": "2099-01-01"}
    unsupported = await client.post(url, headers=headers, json=rpc(2, method, params))
    assert_names_supported_versions(unsupported, "2099-01-01")


# -- subscriptions/listen bounds -----------------------------------------------------------------


async def try_listen(
    client: httpx.AsyncClient, url: str, rid: str, notifications: JSON
) -> tuple[int, JSON]:
    """Open a listen and close it at once: its status and first message (or error body)."""
    body = rpc(rid, "subscriptions/listen", modern_params(notifications=notifications))
    headers = modern_headers("subscriptions/listen")
    async with client.stream("POST", url, headers=headers, json=body) as response:
        if response.headers["content-type"].startswith("application/json"):
            await response.aread()
            answer: JSON = response.json()
            return response.status_code, answer
        async for _, message in read_events(response):
            if message is not None:
                return response.status_code, message
    raise AssertionError("the listen stream ended without a message")


@attrs.define(eq=False)
class HeldListen:
    """A listen stream a test keeps open, and the tools list_changed it was sent."""

    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    changed: trio.Event = attrs.field(factory=trio.Event)

    async def hold(
        self, client: httpx.AsyncClient, url: str, rid: str, *, task_status: trio.TaskStatus[None]
    ) -> None:
        notifications = {"toolsListChanged": True}
        body = rpc(rid, "subscriptions/listen", modern_params(notifications=notifications))
        headers = modern_headers("subscriptions/listen")
        with self.scope:
            async with client.stream("POST", url, headers=headers, json=body) as response:
                assert response.status_code == 200
                async for _, message in read_events(response):
                    method = message and message.get("method")
                    if method == "notifications/subscriptions/acknowledged":
                        task_status.started()
                    elif method == "notifications/tools/list_changed":
                        self.changed.set()


async def test_listen_flood_beyond_the_cap_is_refused_while_open_ones_keep_working(
    client: httpx.AsyncClient,
) -> None:
    """Past max_listens a listen is 429 naming the limit; open ones still get notifications."""
    registry = make_registry()
    async with serving(registry, max_listens=3) as url, trio.open_nursery() as nursery:
        held = [HeldListen() for _ in range(3)]
        for index, listen in enumerate(held):
            await nursery.start(listen.hold, client, url, f"L{index}")
        status, refused = await try_listen(client, url, "L3", {"toolsListChanged": True})
        assert status == 429, refused
        assert refused["id"] == "L3"
        assert "at most 3" in refused["error"]["message"]
        registry.remove_tool("echo")
        with trio.fail_after(10):
            for listen in held:
                await listen.changed.wait()
        held[0].scope.cancel()
        # The server notices the closed stream on its own schedule: retry until a slot is free.
        with trio.fail_after(10):
            while (await try_listen(client, url, "L4", {}))[0] == 429:  # noqa: ASYNC110
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("notifications", "expected"),
    [
        ({"taskIds": [f"t{i}" for i in range(257)]}, "expected at most 256 items"),
        ({"resourceSubscriptions": [f"x://{i}" for i in range(257)]}, "expected at most 256"),
        ({"taskIds": ["t" * 257]}, "expected at most 256 characters"),
        ({"taskIds": ["t", 7]}, "expected string, got integer"),
        ({"resourceSubscriptions": "x://one"}, "expected array or null, got string"),
    ],
)
async def test_listen_filter_beyond_its_limits_is_refused(
    url: str, client: httpx.AsyncClient, notifications: JSON, expected: str
) -> None:
    """A listen filter too long, with a too long entry or of the wrong shape is 400 -32602."""
    status, refused = await try_listen(client, url, "L", notifications)
    assert status == 400, refused
    assert refused["error"]["code"] == -32602
    assert expected in refused["error"]["message"]
    assert "@ $.params.notifications." in refused["error"]["message"]


async def test_listen_filter_at_its_limits_is_accepted(url: str, client: httpx.AsyncClient) -> None:
    """256 task ids of 256 characters are acknowledged in full; null stands for absent."""
    task_ids = [f"{i:03}" + "t" * 253 for i in range(256)]
    wanted = {"taskIds": task_ids, "resourceSubscriptions": None, "toolsListChanged": None}
    status, ack = await try_listen(client, url, "L", wanted)
    assert status == 200
    assert ack["params"]["notifications"]["taskIds"] == sorted(task_ids)


# -- Host and Origin -----------------------------------------------------------------------------

TOKEN = "s3cret"
TUNNEL = "https://x.trycloudflare.com"
INITIALIZE = rpc(0, "initialize", {"protocolVersion": LEGACY, "capabilities": {}})


@pytest.fixture
async def fenced_url() -> AsyncIterator[str]:
    async with serving(make_registry(), auth_token=TOKEN, public_urls=(TUNNEL,)) as served:
        yield served


def port_of(url: str) -> str:
    return url.rsplit(":", 1)[1].split("/", 1)[0]


async def post_raw(
    client: httpx.AsyncClient, url: str, extra: list[tuple[bytes, bytes]]
) -> httpx.Response:
    """POST an initialize with ``extra`` raw header bytes (Host and Origin sent as given)."""
    headers = [(name.encode(), value.encode()) for name, value in BASE_HEADERS.items()]
    return await client.post(url, headers=headers + extra, json=INITIALIZE)


ALLOWED_HOSTS = [
    ("localhost:{port}", "localhost:{port}"),
    ("localhost", "localhost"),
    ("LocalHost:{port}", "localhost:{port}"),
    ("127.0.0.1:{port}", "127.0.0.1:{port}"),
    ("[::1]:{port}", "[::1]:{port}"),
]
REFUSED_HOSTS = [
    "localhost:evil.com",
    "localhost:{port}@evil.com",
    "localhost@evil.com",
    "evil.com",
    "evil.com:{port}",
    "localhost.evil.com:{port}",
    "localhost:{port}:{port}",
    "localhost:",
    "localhost:+80",
    "localhost:99999",
    "localhost:000{port}",
    "localhost:\xb2",
    "localhost\\@evil.com",
    "localhost:{port}/evil",
    "::1",
    "[::1",
    "",
]


@pytest.mark.parametrize(("host", "canonical"), ALLOWED_HOSTS)
async def test_allowed_host_is_served_and_advertised_as_parsed(
    fenced_url: str, client: httpx.AsyncClient, host: str, canonical: str
) -> None:
    """A well-formed local Host is served; the 401 challenge and metadata name it re-serialized."""
    port = port_of(fenced_url)
    raw = host.format(port=port).encode("latin-1")
    expected = f"http://{canonical.format(port=port)}"
    authorized = (b"authorization", f"Bearer {TOKEN}".encode())
    served = await post_raw(client, fenced_url, [(b"host", raw), authorized])
    assert served.status_code == 200, served.text
    challenged = await post_raw(client, fenced_url, [(b"host", raw)])
    assert challenged.status_code == 401
    assert challenged.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{expected}/.well-known/oauth-protected-resource/mcp"'
    )
    metadata = await client.get(
        fenced_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"),
        headers=[(b"host", raw)],
    )
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == f"{expected}/mcp"


@pytest.mark.parametrize("host", REFUSED_HOSTS)
async def test_malformed_or_foreign_host_is_refused_and_never_reflected(
    fenced_url: str, client: httpx.AsyncClient, host: str
) -> None:
    """A Host that is not exactly an allowed host[:digits] is 421 on /mcp and on the metadata."""
    raw = host.format(port=port_of(fenced_url)).encode("latin-1")
    for authorization in ([], [(b"authorization", f"Bearer {TOKEN}".encode())]):
        refused = await post_raw(client, fenced_url, [(b"host", raw), *authorization])
        assert refused.status_code == 421, (refused.status_code, refused.text)
        assert "www-authenticate" not in refused.headers
        assert "Host not allowed: expected one of" in refused.json()["error"]["message"]
    for path in (
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ):
        metadata = await client.get(fenced_url.replace("/mcp", path), headers=[(b"host", raw)])
        assert metadata.status_code == 421, (metadata.status_code, metadata.text)
        assert "resource" not in metadata.json()


async def test_public_url_host_is_advertised_as_the_public_url(
    fenced_url: str, client: httpx.AsyncClient
) -> None:
    """The tunnel's Host (any case, with its port) is told the configured public URL only."""
    for host in (b"x.trycloudflare.com", b"X.TryCloudflare.com:443"):
        challenged = await post_raw(client, fenced_url, [(b"host", host)])
        assert challenged.headers["www-authenticate"] == (
            f'Bearer resource_metadata="{TUNNEL}/.well-known/oauth-protected-resource/mcp"'
        )
    refused = await post_raw(client, fenced_url, [(b"host", b"x.trycloudflare.com:1@evil.com")])
    assert refused.status_code == 421


ALLOWED_ORIGINS = [
    "http://localhost:{port}",
    "http://localhost",
    "https://127.0.0.1:8443",
    "http://[::1]:{port}",
    "HTTP://LocalHost:{port}",
    TUNNEL,
    f"{TUNNEL}:443",
]
REFUSED_ORIGINS = [
    "http://evil.com\\@localhost",
    "http://evil.com\\@localhost:{port}",
    "http://user@localhost:{port}",
    "http://evil.com",
    "http://localhost.evil.com",
    "http://localhost:evil.com",
    "http://localhost:{port}/",
    "http://localhost:{port}/mcp",
    "http://localhost:99999",
    "http://localhost:\xb2",
    "ftp://localhost",
    "localhost:{port}",
    "null",
    "http://x.trycloudflare.com",
    f"{TUNNEL}:8443",
    f"{TUNNEL}.evil.com",
]


@pytest.mark.parametrize("origin", ALLOWED_ORIGINS)
async def test_allowed_origin_is_served(
    fenced_url: str, client: httpx.AsyncClient, origin: str
) -> None:
    """A loopback Origin on any port, or a public URL's exact origin, is served."""
    raw = origin.format(port=port_of(fenced_url)).encode("latin-1")
    authorized = (b"authorization", f"Bearer {TOKEN}".encode())
    served = await post_raw(client, fenced_url, [(b"origin", raw), authorized])
    assert served.status_code == 200, served.text


@pytest.mark.parametrize("origin", REFUSED_ORIGINS)
async def test_malformed_or_foreign_origin_is_403(
    fenced_url: str, client: httpx.AsyncClient, origin: str
) -> None:
    """An Origin that is not exactly scheme://allowed-host[:digits] is 403."""
    raw = origin.format(port=port_of(fenced_url)).encode("latin-1")
    authorized = (b"authorization", f"Bearer {TOKEN}".encode())
    refused = await post_raw(client, fenced_url, [(b"origin", raw), authorized])
    assert refused.status_code == 403, (refused.status_code, refused.text)
    assert "Origin not allowed: expected" in refused.json()["error"]["message"]
