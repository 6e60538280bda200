"""Dynamic client registration (RFC 7591): good metadata registers, bad metadata is refused
with an error that says what was expected."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from _support.oauth import REDIRECT, oauth_server


async def test_public_client_registers_without_secret(tmp_path: pathlib.Path) -> None:
    """A client with ``token_endpoint_auth_method: none`` gets an id and no secret."""
    async with oauth_server(tmp_path) as server:
        answer = await server.http.post(
            f"{server.base}/oauth/register",
            json={
                "client_name": "Claude",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
            },
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["client_id"]
        assert "client_secret" not in body
        assert body["redirect_uris"] == [REDIRECT]
        assert body["client_name"] == "Claude"


async def test_confidential_client_gets_a_secret_stored_hashed(tmp_path: pathlib.Path) -> None:
    """A client registering ``client_secret_post`` gets a secret; the state file keeps its hash."""
    async with oauth_server(tmp_path) as server:
        client = await server.register(
            token_endpoint_auth_method="client_secret_post",
            redirect_uris=["https://claude.ai/api/mcp/auth_callback"],
        )
        assert client.client_secret
        assert client.client_secret not in (server.state_dir / "oauth.json").read_text()


@pytest.mark.parametrize(
    ("metadata", "error", "says"),
    [
        ({"redirect_uris": ["http://example.com/cb"]}, "invalid_redirect_uri", "127.0.0.1"),
        ({"redirect_uris": ["https://x.example/cb#frag"]}, "invalid_redirect_uri", "fragment"),
        ({"redirect_uris": ["myapp:/cb"]}, "invalid_redirect_uri", "https://HOST"),
        ({"redirect_uris": []}, "invalid_redirect_uri", "non-empty"),
        ({"client_name": "no uris"}, "invalid_redirect_uri", "redirect_uris"),
        ({"redirect_uris": [REDIRECT], "grant_types": ["password"]}, "invalid_client_metadata", ""),
        ({"redirect_uris": [REDIRECT], "client_name": 5}, "invalid_client_metadata", "client_name"),
    ],
)
async def test_bad_metadata_is_refused_clearly(
    tmp_path: pathlib.Path, metadata: dict[str, Any], error: str, says: str
) -> None:
    """Bad client metadata: 400 with the RFC 7591 error and a description naming the problem."""
    async with oauth_server(tmp_path) as server:
        answer = await server.http.post(f"{server.base}/oauth/register", json=metadata)
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["error"] == error
        assert says in body.get("error_description", ""), body


async def test_non_json_registration_is_refused(tmp_path: pathlib.Path) -> None:
    """A registration body that is not a JSON object: 400 saying a JSON object was expected."""
    async with oauth_server(tmp_path) as server:
        for body in (b"{not json", b"[1, 2]"):
            answer = await server.http.post(
                f"{server.base}/oauth/register",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 400
            assert answer.json()["error"] == "invalid_client_metadata"
            assert "expected a JSON object" in answer.json()["error_description"]
