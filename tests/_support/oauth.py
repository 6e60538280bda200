"""The built-in authorization server through a real ``serve()`` on 127.0.0.1:0, and an OAuth
client's steps against it (httpx as the client, the consent form filled like a browser would).

    async with oauth_server(tmp_path) as server:
        client = await server.register()
        flow = await server.authorize(client)            # PKCE, the consent form, the code
        tokens = await server.exchange(client, flow)     # the token endpoint

``server.clock`` is the wall clock the authorization server reads (a test moves it for expiry);
``server.restart()`` stops the server and starts a new one on the same state dir.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import trio

from mcp_server import HttpSettings, Registry, RequestContext, Tool, ToolResult, serve
from mcp_server._oauth import OAuthService, OAuthSettings, oauth_blueprint

TOKEN = "oauth-test-static-token-0123456789"
REDIRECT = "http://127.0.0.1:53682/callback"
ACCEPT = "application/json, text/event-stream"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def echo_registry() -> Registry:
    """One tool, ``echo``: enough to show a call got through."""
    registry = Registry()

    async def echo(ctx: RequestContext, args: dict[str, Any]) -> ToolResult:
        return ToolResult([{"type": "text", "text": str(args.get("text", ""))}])

    registry.add_tool(Tool("echo", "Echo", {"type": "object"}, echo))
    return registry


@attrs.define
class Clock:
    """A wall clock a test moves."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@attrs.frozen
class RegisteredClient:
    client_id: str
    redirect_uri: str
    client_secret: str | None = None


@attrs.frozen
class Flow:
    """A finished consent: the code, and what the token request must repeat."""

    code: str
    verifier: str
    redirect_uri: str
    state: str


def pkce() -> tuple[str, str]:
    """A code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hidden_fields(html: str) -> dict[str, str]:
    """The consent form's hidden inputs (HTML-unescaped enough for our values)."""
    return {name: value.replace("&amp;", "&") for name, value in _HIDDEN.findall(html)}


@attrs.define
class OAuthServer:
    state_dir: Path
    clock: Clock
    settings: OAuthSettings
    http: httpx.AsyncClient
    base: str = ""
    service: OAuthService | None = None
    _shutdown: trio.Event | None = None
    _stopped: trio.Event | None = None
    _nursery: trio.Nursery | None = None

    @property
    def mcp(self) -> str:
        return f"{self.base}/mcp"

    async def start(self, nursery: trio.Nursery, port: int = 0) -> None:
        self._nursery = nursery
        service = OAuthService(self.state_dir, TOKEN, self.settings, clock=self.clock)
        await service.load()
        config = HttpSettings(
            port=port, auth_token=TOKEN, graceful_timeout_s=2.0, access_tokens=service.verify
        )
        shutdown, stopped = trio.Event(), trio.Event()
        scope = trio.CancelScope()

        async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                with scope:
                    async with trio.open_nursery() as inner:
                        await inner.start(service.run)
                        await serve(
                            echo_registry(),
                            config,
                            shutdown=shutdown,
                            blueprints=[oauth_blueprint(service, config)],
                            task_status=task_status,
                        )
                        inner.cancel_scope.cancel()
            finally:
                stopped.set()

        urls: list[str] = await nursery.start(run)
        self.base = urls[0].replace("127.0.0.1", "localhost")
        self.service, self._shutdown, self._stopped = service, shutdown, stopped

    async def stop(self) -> None:
        assert self._shutdown is not None
        assert self._stopped is not None
        self._shutdown.set()
        with trio.fail_after(20):
            await self._stopped.wait()

    async def restart(self) -> None:
        """Stop this server and start another on the same state dir and port."""
        await self.stop()
        assert self._nursery is not None
        await self.start(self._nursery, int(self.base.rsplit(":", 1)[1]))

    # -- a client's steps ---------------------------------------------------------------------

    async def register(self, **metadata: Any) -> RegisteredClient:
        """Register a public client (or what ``metadata`` says) and check it worked."""
        body = {
            "client_name": "Test Client",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            **metadata,
        }
        response = await self.http.post(f"{self.base}/oauth/register", json=body)
        assert response.status_code == 201, response.text
        data = response.json()
        return RegisteredClient(
            data["client_id"], body["redirect_uris"][0], data.get("client_secret")
        )

    def authorize_params(
        self, client: RegisteredClient, challenge: str, **extra: str
    ) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "st-" + secrets.token_hex(4),
            "resource": self.mcp,
            "scope": "mcp",
            **extra,
        }

    async def consent_page(self, params: dict[str, str]) -> httpx.Response:
        return await self.http.get(f"{self.base}/oauth/authorize", params=params)

    async def submit(self, html: str, decision: str, credential: str = TOKEN) -> httpx.Response:
        """Send the consent form of the page ``html`` as a browser would (same origin)."""
        fields = {**hidden_fields(html), "decision": decision, "credential": credential}
        return await self.http.post(
            f"{self.base}/oauth/authorize",
            data=fields,
            headers={"Origin": self.base, "Sec-Fetch-Site": "same-origin"},
        )

    async def authorize(self, client: RegisteredClient, **extra: str) -> Flow:
        """Consent (allowed with the bearer token) and the code it redirects with."""
        verifier, challenge = pkce()
        params = self.authorize_params(client, challenge, **extra)
        page = await self.consent_page(params)
        assert page.status_code == 200, page.text
        answer = await self.submit(page.text, "allow")
        assert answer.status_code in (302, 303), answer.text
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        assert query["state"] == [params["state"]]
        return Flow(query["code"][0], verifier, params["redirect_uri"], params["state"])

    async def token(self, **form: str) -> httpx.Response:
        return await self.http.post(f"{self.base}/oauth/token", data=form)

    async def exchange(self, client: RegisteredClient, flow: Flow, **extra: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": flow.code,
            "redirect_uri": flow.redirect_uri,
            "client_id": client.client_id,
            "code_verifier": flow.verifier,
            "resource": self.mcp,
            **extra,
        }
        return await self.token(**form)

    async def tokens(self, client: RegisteredClient) -> dict[str, Any]:
        """A full authorization: consent, code, tokens."""
        response = await self.exchange(client, await self.authorize(client))
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    async def refresh(self, client: RegisteredClient, refresh_token: str) -> httpx.Response:
        return await self.token(
            grant_type="refresh_token", refresh_token=refresh_token, client_id=client.client_id
        )

    async def call_mcp(self, access_token: str) -> httpx.Response:
        """A 2026-07-28 ``tools/call`` of ``echo`` with ``access_token``."""
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/list",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2025-11-25"}},
        }
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "oauth-test", "version": "1"},
            },
        }
        return await self.http.post(
            self.mcp,
            json=body,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Accept": ACCEPT,
                "Content-Type": "application/json",
            },
        )


@asynccontextmanager
async def oauth_server(
    tmp_path: Path, settings: OAuthSettings | None = None
) -> AsyncIterator[OAuthServer]:
    """A server with the built-in authorization server on a state dir under ``tmp_path``."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:
        server = OAuthServer(state, Clock(), settings or OAuthSettings(), http)
        await server.start(nursery)
        try:
            yield server
        finally:
            await server.stop()
            nursery.cancel_scope.cancel()
