"""Client ID metadata documents (MCP 2025-11-25): a ``client_id`` that is an https URL names a
JSON document, served by the client's owner, that says the client's name and redirect URIs.

The server fetches it instead of asking the client to register: https only, no redirects,
at most ``max_bytes`` within ``timeout_s``, and (unless ``allow_private``) only from hosts whose
every address is public, so a client id cannot make the server probe its own network. The
document must name itself as ``client_id`` and pass the same redirect-URI rules as a
registration; the client it describes is public (``token_endpoint_auth_method: none``).
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
import httpx
import orjson
import trio

from ._authlib import GRANT_TYPES, MAX_CLIENT_NAME, SCOPE
from ._book import redirect_uri_problem
from ._records import ClientRecord

MAX_URL: Final = 2000


class ClientDocumentError(Exception):
    """A client id metadata document that cannot be used, and why."""


def is_document_client_id(client_id: str) -> bool:
    """Whether ``client_id`` is a URL naming a metadata document: https with a path."""
    if len(client_id) > MAX_URL or not client_id.startswith("https://"):
        return False
    try:
        parts = urlsplit(client_id)
    except ValueError:
        return False
    return bool(parts.hostname) and parts.path not in ("", "/") and not parts.fragment


def client_from_document(url: str, document: Any, now: float) -> ClientRecord:
    """The client ``document`` (fetched from ``url``) describes, or :class:`ClientDocumentError`."""
    if not isinstance(document, dict):
        raise ClientDocumentError(f"expected a JSON object, got {type(document).__name__}")
    if document.get("client_id") != url:
        given = document.get("client_id")
        raise ClientDocumentError(
            f"expected client_id {url!r} (the document's own URL), got {given!r}"
        )
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        raise ClientDocumentError("expected redirect_uris: a non-empty array of URLs")
    for index, uri in enumerate(uris):
        problem = redirect_uri_problem(uri)
        if problem is not None:
            raise ClientDocumentError(f"redirect_uris[{index}]: {problem}")
    method = document.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise ClientDocumentError(
            f"expected token_endpoint_auth_method 'none' (a public client), got {method!r}"
        )
    name = document.get("client_name", urlsplit(url).hostname)
    if not isinstance(name, str) or len(name) > MAX_CLIENT_NAME:
        raise ClientDocumentError(
            f"expected client_name: a string of at most {MAX_CLIENT_NAME} characters"
        )
    grants = document.get("grant_types", list(GRANT_TYPES))
    if not isinstance(grants, list) or not set(grants) <= set(GRANT_TYPES):
        raise ClientDocumentError(
            f"expected grant_types within {list(GRANT_TYPES)}, got {grants!r}"
        )
    client_uri = document.get("client_uri")
    return ClientRecord(
        client_id=url,
        client_name=name,
        redirect_uris=tuple(uris),
        token_endpoint_auth_method="none",  # noqa: S106 (a method's name, not a secret)
        grant_types=tuple(grants),
        response_types=("code",),
        scope=SCOPE,
        registered_at=now,
        client_uri=client_uri if isinstance(client_uri, str) else None,
        from_document=True,
    )


@attrs.frozen
class DocumentFetcher:
    """How documents are fetched: bounds, whether private addresses may serve them, the TLS
    trust (tests pass a context trusting their own CA)."""

    timeout_s: float = 5.0
    max_bytes: int = 64 * 1024
    allow_private: bool = False
    verify: ssl.SSLContext | bool = True

    async def fetch(self, url: str, now: float) -> ClientRecord:
        """The client the document at ``url`` describes."""
        if not is_document_client_id(url):
            raise ClientDocumentError(f"expected an https URL with a path, got {url[:200]!r}")
        document: Any = None
        with trio.move_on_after(self.timeout_s) as scope:
            try:
                document = await self._get(url)
            except httpx.HTTPError as exc:
                raise ClientDocumentError(f"cannot fetch {url}: {exc}") from None
        if scope.cancelled_caught:
            raise ClientDocumentError(f"no answer from {url} within {self.timeout_s:g} s")
        return client_from_document(url, document, now)

    async def _check_addresses(self, host: str, port: int) -> None:
        if self.allow_private:
            return
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
        except OSError as exc:
            raise ClientDocumentError(f"cannot resolve {host}: {exc}") from None
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if not address.is_global:
                raise ClientDocumentError(
                    f"{host} resolves to {address}, not a public address: refused"
                )

    async def _get(self, url: str) -> Any:
        parts = urlsplit(url)
        await self._check_addresses(parts.hostname or "", parts.port or 443)
        async with (
            httpx.AsyncClient(verify=self.verify, follow_redirects=False) as http,
            http.stream("GET", url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise ClientDocumentError(f"{url} answered {response.status_code}, expected 200")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise ClientDocumentError(
                        f"{url} sent more than {self.max_bytes} bytes: refused"
                    )
        try:
            return orjson.loads(bytes(body))
        except orjson.JSONDecodeError as exc:
            raise ClientDocumentError(f"{url} is not JSON: {exc}") from None
