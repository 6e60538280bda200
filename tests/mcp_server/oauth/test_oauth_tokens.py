"""The token endpoint and what its tokens open: code exchange checks, ``/mcp`` with an access
token, expiry, refresh rotation and reuse, revocation, and persistence across a restart."""

from __future__ import annotations

import base64
import pathlib

from _support.oauth import TOKEN, oauth_server

from mcp_server._oauth import OAuthSettings


async def test_access_token_opens_mcp(tmp_path: pathlib.Path) -> None:
    """The access token from a full consent flow is accepted on ``/mcp``."""
    async with oauth_server(tmp_path) as server:
        tokens = await server.tokens(await server.register())
        assert tokens["token_type"] == "Bearer"
        assert tokens["expires_in"] == 3600
        answer = await server.call_mcp(tokens["access_token"])
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["serverInfo"]["name"] == "coding-agent"


async def test_static_token_still_opens_mcp(tmp_path: pathlib.Path) -> None:
    """The static bearer token keeps working beside OAuth."""
    async with oauth_server(tmp_path) as server:
        assert (await server.call_mcp(TOKEN)).status_code == 200


async def test_unknown_token_is_401_invalid_token(tmp_path: pathlib.Path) -> None:
    """A token the server never issued: 401 with ``error="invalid_token"`` and the metadata."""
    async with oauth_server(tmp_path) as server:
        answer = await server.call_mcp("made-up-token")
        assert answer.status_code == 401
        challenge = answer.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge
        assert "resource_metadata=" in challenge


async def test_tokens_are_stored_hashed(tmp_path: pathlib.Path) -> None:
    """Neither the access nor the refresh token appears in the state file."""
    async with oauth_server(tmp_path) as server:
        tokens = await server.tokens(await server.register())
        stored = (server.state_dir / "oauth.json").read_text()
        assert tokens["access_token"] not in stored
        assert tokens["refresh_token"] not in stored


async def test_wrong_code_verifier_is_refused(tmp_path: pathlib.Path) -> None:
    """A code with the wrong PKCE verifier buys nothing (``invalid_grant``)."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        flow = await server.authorize(client)
        answer = await server.exchange(client, flow, code_verifier="x" * 50)
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"


async def test_missing_code_verifier_is_refused(tmp_path: pathlib.Path) -> None:
    """A code without its PKCE verifier is refused."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        flow = await server.authorize(client)
        answer = await server.exchange(client, flow, code_verifier="")
        assert answer.status_code == 400
        assert answer.json()["error"] in ("invalid_request", "invalid_grant")


async def test_wrong_redirect_uri_is_refused(tmp_path: pathlib.Path) -> None:
    """The token request must repeat the authorization request's redirect URI exactly."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        flow = await server.authorize(client)
        answer = await server.exchange(client, flow, redirect_uri="http://127.0.0.1:53682/other")
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"


async def test_wrong_resource_is_refused(tmp_path: pathlib.Path) -> None:
    """A token request naming another resource than the code's: ``invalid_target``."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        flow = await server.authorize(client)
        answer = await server.exchange(client, flow, resource="https://other.example/mcp")
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_target"


async def test_code_reuse_is_refused_and_revokes_its_tokens(tmp_path: pathlib.Path) -> None:
    """A code used twice: the second use is refused and the tokens of the first stop working."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        flow = await server.authorize(client)
        first = await server.exchange(client, flow)
        assert first.status_code == 200
        second = await server.exchange(client, flow)
        assert second.status_code == 400
        assert second.json()["error"] == "invalid_grant"
        assert (await server.call_mcp(first.json()["access_token"])).status_code == 401


async def test_code_of_another_client_is_refused(tmp_path: pathlib.Path) -> None:
    """A code issued to one client cannot be exchanged by another."""
    async with oauth_server(tmp_path) as server:
        owner, thief = await server.register(), await server.register()
        flow = await server.authorize(owner)
        answer = await server.exchange(thief, flow)
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"


async def test_expired_access_token_is_refused(tmp_path: pathlib.Path) -> None:
    """An access token past its lifetime: 401 ``invalid_token``; refreshing brings access back."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        tokens = await server.tokens(client)
        server.clock.now += 3601
        answer = await server.call_mcp(tokens["access_token"])
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
        fresh = await server.refresh(client, tokens["refresh_token"])
        assert fresh.status_code == 200, fresh.text
        assert (await server.call_mcp(fresh.json()["access_token"])).status_code == 200


async def test_expired_code_is_refused(tmp_path: pathlib.Path) -> None:
    """A code older than its minute buys nothing."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        flow = await server.authorize(client)
        server.clock.now += 61
        answer = await server.exchange(client, flow)
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"


async def test_refresh_rotates_and_old_refresh_token_is_refused(tmp_path: pathlib.Path) -> None:
    """A refresh gives a new pair; the old refresh and access tokens stop working."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        tokens = await server.tokens(client)
        fresh = await server.refresh(client, tokens["refresh_token"])
        assert fresh.status_code == 200
        new = fresh.json()
        assert new["refresh_token"] != tokens["refresh_token"]
        assert (await server.call_mcp(tokens["access_token"])).status_code == 401
        assert (await server.call_mcp(new["access_token"])).status_code == 200
        again = await server.refresh(client, tokens["refresh_token"])
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"


async def test_refresh_token_reuse_revokes_the_grant(tmp_path: pathlib.Path) -> None:
    """Reusing a rotated-out refresh token ends the whole grant: the newest tokens die too."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        tokens = await server.tokens(client)
        new = (await server.refresh(client, tokens["refresh_token"])).json()
        assert (await server.refresh(client, tokens["refresh_token"])).status_code == 400
        assert (await server.call_mcp(new["access_token"])).status_code == 401
        assert (await server.refresh(client, new["refresh_token"])).status_code == 400


async def test_revocation_ends_access(tmp_path: pathlib.Path) -> None:
    """Revoking the refresh token (RFC 7009) ends the grant: both tokens stop working."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        tokens = await server.tokens(client)
        answer = await server.http.post(
            f"{server.base}/oauth/revoke",
            data={
                "token": tokens["refresh_token"],
                "token_type_hint": "refresh_token",
                "client_id": client.client_id,
            },
        )
        assert answer.status_code == 200, answer.text
        assert (await server.call_mcp(tokens["access_token"])).status_code == 401
        assert (await server.refresh(client, tokens["refresh_token"])).status_code == 400


async def test_confidential_client_must_send_its_secret(tmp_path: pathlib.Path) -> None:
    """A client registered with a secret must authenticate (HTTP Basic) at the token endpoint."""
    async with oauth_server(tmp_path) as server:
        client = await server.register(token_endpoint_auth_method="client_secret_basic")
        assert client.client_secret is not None
        flow = await server.authorize(client)
        bare = await server.exchange(client, flow)
        assert bare.status_code in (400, 401)
        assert bare.json()["error"] == "invalid_client"
        flow = await server.authorize(client)
        basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
        form = {
            "grant_type": "authorization_code",
            "code": flow.code,
            "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier,
        }
        answer = await server.http.post(
            f"{server.base}/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"}
        )
        assert answer.status_code == 200, answer.text


async def test_grants_survive_a_restart(tmp_path: pathlib.Path) -> None:
    """Clients and grants are on disk: after a restart the tokens still work and refresh."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        tokens = await server.tokens(client)
        await server.restart()
        assert (await server.call_mcp(tokens["access_token"])).status_code == 200
        fresh = await server.refresh(client, tokens["refresh_token"])
        assert fresh.status_code == 200, fresh.text
        assert (await server.call_mcp(fresh.json()["access_token"])).status_code == 200


async def test_access_token_is_bound_to_its_resource(tmp_path: pathlib.Path) -> None:
    """An access token issued for one base URL is refused at another (RFC 8707 audience)."""
    async with oauth_server(tmp_path) as server:
        tokens = await server.tokens(await server.register())
        answer = await server.http.post(
            server.mcp.replace("localhost", "127.0.0.1"),
            json={},
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        assert answer.status_code == 401


async def test_short_lifetimes_come_from_settings(tmp_path: pathlib.Path) -> None:
    """The access lifetime is a setting: ``expires_in`` says it."""
    async with oauth_server(tmp_path, OAuthSettings(access_lifetime_s=120)) as server:
        tokens = await server.tokens(await server.register())
        assert tokens["expires_in"] == 120
