"""What a client that knows only OAuth finds from ``/mcp``'s 401: the protected-resource
metadata naming this server as its authorization server, and that server's RFC 8414 metadata."""

from __future__ import annotations

import pathlib
import re

from _support.oauth import oauth_server


async def test_401_leads_to_authorization_server_metadata(tmp_path: pathlib.Path) -> None:
    """401 → resource metadata → authorization server metadata, every URL on this server."""
    async with oauth_server(tmp_path) as server:
        refused = await server.http.post(server.mcp, json={})
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        match = re.search(r'resource_metadata="([^"]+)"', challenge)
        assert match is not None, challenge
        assert 'scope="mcp"' in challenge
        resource = (await server.http.get(match[1])).json()
        assert resource["resource"] == server.mcp
        assert resource["authorization_servers"] == [server.base]
        assert resource["scopes_supported"] == ["mcp"]
        issuer = resource["authorization_servers"][0]
        answer = await server.http.get(f"{issuer}/.well-known/oauth-authorization-server")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        metadata = answer.json()
        assert metadata["issuer"] == server.base
        assert metadata["registration_endpoint"] == f"{server.base}/oauth/register"
        assert metadata["authorization_endpoint"] == f"{server.base}/oauth/authorize"
        assert metadata["token_endpoint"] == f"{server.base}/oauth/token"
        assert metadata["revocation_endpoint"] == f"{server.base}/oauth/revoke"
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        assert metadata["grant_types_supported"] == ["authorization_code", "refresh_token"]
        assert metadata["response_types_supported"] == ["code"]
        assert set(metadata["token_endpoint_auth_methods_supported"]) == {
            "none",
            "client_secret_post",
            "client_secret_basic",
        }


async def test_metadata_refuses_a_foreign_host(tmp_path: pathlib.Path) -> None:
    """The authorization server's metadata passes the same Host fence as ``/mcp`` (421)."""
    async with oauth_server(tmp_path) as server:
        answer = await server.http.get(
            f"{server.base}/.well-known/oauth-authorization-server",
            headers={"Host": "evil.example"},
        )
        assert answer.status_code == 421
        assert "Host not allowed" in answer.json()["error_description"]


async def test_registration_answers_browser_clients_cors(tmp_path: pathlib.Path) -> None:
    """A browser-based client's preflight to the registration endpoint is answered (CORS)."""
    async with oauth_server(tmp_path) as server:
        answer = await server.http.options(
            f"{server.base}/oauth/register",
            headers={
                "Origin": "http://localhost:6274",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == "*"
