"""Client ID metadata documents: a ``client_id`` that is an https URL is fetched (from a
loopback HTTPS server with a test CA, trustme) instead of registered, within bounds."""

from __future__ import annotations

import functools
import json
import pathlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trio
import trustme
from _support.oauth import REDIRECT, RegisteredClient, oauth_server, pkce

from mcp_server._oauth import OAuthSettings
from mcp_server._oauth._documents import DocumentFetcher


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def fetcher(authority: trustme.CA, **overrides: Any) -> DocumentFetcher:
    """A fetcher trusting the test CA and allowed to reach loopback."""
    context = ssl.create_default_context()
    authority.configure_trust(context)
    settings: dict[str, Any] = {"allow_private": True, "verify": context, "timeout_s": 10.0}
    return DocumentFetcher(**(settings | overrides))


@asynccontextmanager
async def document_server(authority: trustme.CA, documents: dict[str, Any]) -> AsyncIterator[str]:
    """HTTPS on 127.0.0.1:0 answering ``documents[path]``: a dict (JSON), bytes (as is),
    ``"redirect"`` (302) or ``"hang"`` (never answers). Yields ``https://127.0.0.1:PORT``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)

    async def handle(stream: trio.SSLStream[trio.SocketStream]) -> None:
        request = b""
        try:
            while b"\r\n\r\n" not in request:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                request += chunk
            path = request.split(b" ")[1].decode()
            answer = documents.get(path)
            if answer == "hang":
                await trio.sleep_forever()
            if answer == "redirect":
                head = "HTTP/1.1 302 Found\r\nLocation: /good.json\r\nContent-Length: 0\r\n"
                await stream.send_all((head + "Connection: close\r\n\r\n").encode())
                return
            body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            status = "200 OK" if answer is not None else "404 Not Found"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            await stream.send_all(head.encode() + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_ssl_over_tcp, handle, 0, context, host="127.0.0.1")
        )
        port = listeners[0].transport_listener.socket.getsockname()[1]
        try:
            yield f"https://127.0.0.1:{port}"
        finally:
            nursery.cancel_scope.cancel()


def document(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "client_id": url,
        "client_name": "Document Client",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        **fields,
    }


async def test_metadata_says_documents_are_supported(
    tmp_path: pathlib.Path, authority: trustme.CA
) -> None:
    """The authorization server metadata advertises ``client_id_metadata_document_supported``."""
    settings = OAuthSettings(documents=fetcher(authority))
    async with oauth_server(tmp_path, settings) as server:
        answer = await server.http.get(f"{server.base}/.well-known/oauth-authorization-server")
        assert answer.json()["client_id_metadata_document_supported"] is True


async def test_document_client_gets_tokens_without_registering(
    tmp_path: pathlib.Path, authority: trustme.CA
) -> None:
    """A URL client id: its document is fetched, the consent page names it, tokens work."""
    documents: dict[str, Any] = {}
    settings = OAuthSettings(documents=fetcher(authority))
    async with (
        document_server(authority, documents) as origin,
        oauth_server(tmp_path, settings) as server,
    ):
        url = f"{origin}/client.json"
        documents["/client.json"] = document(url)
        client = RegisteredClient(url, REDIRECT)
        _, challenge = pkce()
        page = await server.consent_page(server.authorize_params(client, challenge))
        assert page.status_code == 200, page.text
        assert "Document Client" in page.text
        tokens = await server.tokens(client)
        assert (await server.call_mcp(tokens["access_token"])).status_code == 200


@pytest.mark.parametrize(
    ("served", "says"),
    [
        ({"client_id": "https://elsewhere.example/c.json"}, "the document's own URL"),
        ({"redirect_uris": ["http://example.com/cb"]}, "redirect_uris[0]"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "public client"),
        (b"not json", "is not JSON"),
        (b"x" * 70_000, "more than 65536 bytes"),
        ("redirect", "answered 302"),
        (None, "answered 404"),
    ],
)
async def test_unusable_document_is_refused_clearly(
    tmp_path: pathlib.Path, authority: trustme.CA, served: Any, says: str
) -> None:
    """A document that lies about itself, is too big, redirects or is missing: an error page."""
    documents: dict[str, Any] = {}
    settings = OAuthSettings(documents=fetcher(authority))
    async with (
        document_server(authority, documents) as origin,
        oauth_server(tmp_path, settings) as server,
    ):
        url = f"{origin}/client.json"
        if isinstance(served, dict):
            documents["/client.json"] = document(url, **served)
        elif served is not None:
            documents["/client.json"] = served
        _, challenge = pkce()
        params = server.authorize_params(RegisteredClient(url, REDIRECT), challenge)
        page = await server.consent_page(params)
        assert page.status_code == 400
        assert "location" not in page.headers
        assert says in page.text.replace("&#39;", "'").replace("&#34;", '"')


async def test_slow_document_times_out(tmp_path: pathlib.Path, authority: trustme.CA) -> None:
    """A document server that never answers: refused once the fetch's time is up."""
    documents: dict[str, Any] = {"/client.json": "hang"}
    settings = OAuthSettings(documents=fetcher(authority, timeout_s=0.5))
    async with (
        document_server(authority, documents) as origin,
        oauth_server(tmp_path, settings) as server,
    ):
        _, challenge = pkce()
        client = RegisteredClient(f"{origin}/client.json", REDIRECT)
        page = await server.consent_page(server.authorize_params(client, challenge))
        assert page.status_code == 400
        assert "within 0.5 s" in page.text


async def test_private_addresses_are_not_fetched_by_default(
    tmp_path: pathlib.Path, authority: trustme.CA
) -> None:
    """By default a client id naming a loopback host is refused before any request is sent."""
    documents: dict[str, Any] = {}
    settings = OAuthSettings(documents=fetcher(authority, allow_private=False))
    async with (
        document_server(authority, documents) as origin,
        oauth_server(tmp_path, settings) as server,
    ):
        url = f"{origin}/client.json"
        documents["/client.json"] = document(url)
        _, challenge = pkce()
        page = await server.consent_page(
            server.authorize_params(RegisteredClient(url, REDIRECT), challenge)
        )
        assert page.status_code == 400
        assert "not a public address" in page.text


async def test_document_client_redirect_uri_is_checked(
    tmp_path: pathlib.Path, authority: trustme.CA
) -> None:
    """A document client asking for a redirect URI its document does not list: refused."""
    documents: dict[str, Any] = {}
    settings = OAuthSettings(documents=fetcher(authority))
    async with (
        document_server(authority, documents) as origin,
        oauth_server(tmp_path, settings) as server,
    ):
        url = f"{origin}/client.json"
        documents["/client.json"] = document(url)
        _, challenge = pkce()
        client = RegisteredClient(url, "https://evil.example/cb")
        page = await server.consent_page(server.authorize_params(client, challenge))
        assert page.status_code == 400
        assert "location" not in page.headers
        query = parse_qs(urlsplit(page.headers.get("location", "")).query)
        assert "code" not in query
