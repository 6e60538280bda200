"""The authorization endpoint and its consent page: what it shows, what the owner must prove,
and what it refuses to do (PKCE S256 only, exact redirect URIs, this server's resource)."""

from __future__ import annotations

import pathlib
from urllib.parse import parse_qs, urlsplit

import pytest
from _support.oauth import TOKEN, OAuthServer, hidden_fields, oauth_server, pkce

from mcp_server._oauth import OAuthSettings
from mcp_server._oauth._consent import ConsentSettings
from mcp_server._oauth._records import hash_password, write_password_hash


def redirect_query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


async def open_consent(server: OAuthServer, **extra: str) -> tuple[dict[str, str], str]:
    client = await server.register()
    _, challenge = pkce()
    params = server.authorize_params(client, challenge, **extra)
    page = await server.consent_page(params)
    assert page.status_code == 200, page.text
    return params, page.text


async def test_consent_page_shows_the_client_and_carries_the_form(tmp_path: pathlib.Path) -> None:
    """The page names the client and its redirect URI and holds the contract's form fields."""
    async with oauth_server(tmp_path) as server:
        client = await server.register(client_name="Claude Desktop")
        _, challenge = pkce()
        page = await server.consent_page(server.authorize_params(client, challenge))
        assert page.status_code == 200
        assert "Claude Desktop" in page.text
        assert client.redirect_uri in page.text
        assert '<form method="post" action="/oauth/authorize"' in page.text
        assert 'name="credential"' in page.text
        assert 'name="decision" value="allow"' in page.text
        assert 'name="decision" value="deny"' in page.text
        fields = hidden_fields(page.text)
        assert fields["client_id"] == client.client_id
        assert fields["csrf"]
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "form-action 'self' http://127.0.0.1:53682" in csp
        assert page.headers["x-frame-options"] == "DENY"


async def test_allow_with_token_redirects_with_code_and_state(tmp_path: pathlib.Path) -> None:
    """Allow with the bearer token: a redirect to the client with a code and its state."""
    async with oauth_server(tmp_path) as server:
        params, html = await open_consent(server)
        answer = await server.submit(html, "allow")
        assert answer.status_code == 302
        location = answer.headers["location"]
        assert location.startswith(params["redirect_uri"] + "?")
        query = redirect_query(location)
        assert query["code"][0]
        assert query["state"] == [params["state"]]


async def test_allow_with_owner_password(tmp_path: pathlib.Path) -> None:
    """The owner's password (scrypt-hashed in the state dir) is accepted instead of the token."""
    async with oauth_server(tmp_path) as server:
        write_password_hash(server.state_dir, hash_password("correct horse battery"))
        _, html = await open_consent(server)
        answer = await server.submit(html, "allow", "correct horse battery")
        assert answer.status_code == 302
        assert "code" in redirect_query(answer.headers["location"])


async def test_wrong_credential_shows_the_page_again(tmp_path: pathlib.Path) -> None:
    """A wrong credential: the consent page again, 401, with an error; no redirect."""
    async with oauth_server(tmp_path) as server:
        _, html = await open_consent(server)
        answer = await server.submit(html, "allow", "not-the-token")
        assert answer.status_code == 401
        assert "wrong credential" in answer.text
        assert "location" not in answer.headers
        again = await server.submit(answer.text, "allow", TOKEN)
        assert again.status_code == 302


async def test_wrong_credentials_are_rate_limited(tmp_path: pathlib.Path) -> None:
    """Past the allowed failures even the right credential waits (429, Retry-After)."""
    settings = OAuthSettings(consent=ConsentSettings(failures_per_client=3, window_s=600))
    async with oauth_server(tmp_path, settings) as server:
        _, html = await open_consent(server)
        for _ in range(3):
            wrong = await server.submit(html, "allow", "guess")
            assert wrong.status_code == 401
        throttled = await server.submit(html, "allow", TOKEN)
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0


async def test_deny_redirects_with_access_denied(tmp_path: pathlib.Path) -> None:
    """Deny: back to the client with ``error=access_denied`` and its state, no code."""
    async with oauth_server(tmp_path) as server:
        params, html = await open_consent(server)
        answer = await server.submit(html, "deny", "")
        assert answer.status_code == 302
        query = redirect_query(answer.headers["location"])
        assert query["error"] == ["access_denied"]
        assert query["state"] == [params["state"]]
        assert "code" not in query


async def test_consent_ticket_is_one_use(tmp_path: pathlib.Path) -> None:
    """A consent form answered once cannot be sent again (400 page, no second code)."""
    async with oauth_server(tmp_path) as server:
        _, html = await open_consent(server)
        assert (await server.submit(html, "allow")).status_code == 302
        again = await server.submit(html, "allow")
        assert again.status_code == 400
        assert "expired or was already answered" in again.text


async def test_consent_post_from_another_origin_is_refused(tmp_path: pathlib.Path) -> None:
    """The consent form is taken only from this server's own origin."""
    async with oauth_server(tmp_path) as server:
        _, html = await open_consent(server)
        fields = {**hidden_fields(html), "decision": "allow", "credential": TOKEN}
        answer = await server.http.post(
            f"{server.base}/oauth/authorize",
            data=fields,
            headers={"Origin": "https://evil.example"},
        )
        assert answer.status_code == 403
        assert "location" not in answer.headers


async def test_unregistered_redirect_uri_gets_a_page_not_a_redirect(
    tmp_path: pathlib.Path,
) -> None:
    """A redirect URI the client did not register: an error page, never a redirect to it."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        _, challenge = pkce()
        params = server.authorize_params(client, challenge, redirect_uri="https://evil.example/cb")
        page = await server.consent_page(params)
        assert page.status_code == 400
        assert "location" not in page.headers
        assert "not supported by client" in page.text


async def test_loopback_redirect_uri_matches_on_any_port(tmp_path: pathlib.Path) -> None:
    """A native client's loopback redirect URI matches on another port (RFC 8252 §7.3)."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        _, challenge = pkce()
        other_port = "http://127.0.0.1:40001/callback"
        page = await server.consent_page(
            server.authorize_params(client, challenge, redirect_uri=other_port)
        )
        assert page.status_code == 200, page.text
        answer = await server.submit(page.text, "allow")
        assert answer.headers["location"].startswith(other_port + "?")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"code_challenge": ""}, "code_challenge"),
        ({"code_challenge_method": "plain"}, "S256"),
        ({"resource": "https://other.example/mcp"}, "invalid_target"),
    ],
)
async def test_authorization_request_refused_back_to_client(
    tmp_path: pathlib.Path, change: dict[str, str], says: str
) -> None:
    """No PKCE, PKCE ``plain`` or another resource: the client hears why, no consent page."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        _, challenge = pkce()
        params = {**server.authorize_params(client, challenge), **change}
        answer = await server.consent_page(params)
        assert answer.status_code == 302, answer.text
        query = redirect_query(answer.headers["location"])
        assert says in query["error"][0] + query.get("error_description", [""])[0]
        assert "code" not in query
