"""The dashboard's ``/clients`` page: the clients holding a grant, and Revoke (CSRF and exact
origin, like the dashboard's other actions)."""

from __future__ import annotations

import pathlib

from _support.dashboard import TOKEN, csrf_of, dashboard_server
from _support.oauth import REDIRECT, pkce
from _support.oauth import hidden_fields as consent_fields

from mcp_server._oauth import OAuthService

ACCEPT = "application/json, text/event-stream"


async def test_dashboard_lists_granted_clients_and_revokes(tmp_path: pathlib.Path) -> None:
    """``/clients`` lists a granted client; Revoke ends its access token at once."""
    state = tmp_path / "state"
    state.mkdir()
    oauth = OAuthService(state, TOKEN)
    await oauth.load()
    async with dashboard_server(tmp_path, oauth=oauth) as web:
        http = web.browser()
        registered = await http.post(
            "/oauth/register",
            json={
                "client_name": "Phone app",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
            },
        )
        client_id = registered.json()["client_id"]
        verifier, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s",
            "resource": f"{web.base}/mcp",
        }
        page = await http.get("/oauth/authorize", params=params)
        fields = {**consent_fields(page.text), "decision": "allow", "credential": TOKEN}
        allowed = await http.post("/oauth/authorize", data=fields, headers={"Origin": web.base})
        code = allowed.headers["location"].split("code=")[1].split("&")[0]
        tokens = (
            await http.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "client_id": client_id,
                    "code_verifier": verifier,
                },
            )
        ).json()
        mcp_headers = {"Authorization": f"Bearer {tokens['access_token']}", "Accept": ACCEPT}
        probe = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        assert (await http.post("/mcp", json=probe, headers=mcp_headers)).status_code != 401

        browser = await web.logged_in()
        listing = await browser.get("/clients")
        assert listing.status_code == 200
        assert "Phone app" in listing.text
        assert client_id in listing.text
        assert 'id="nav-clients"' in listing.text

        forged = await browser.post(
            "/clients/revoke",
            data={"csrf": "wrong", "client_id": client_id},
            headers={"Origin": web.base},
        )
        assert forged.status_code == 403
        other_origin = await browser.post(
            "/clients/revoke",
            data={"csrf": csrf_of(listing.text), "client_id": client_id},
            headers={"Origin": "http://localhost:1"},
        )
        assert other_origin.status_code == 403
        assert (await http.post("/mcp", json=probe, headers=mcp_headers)).status_code != 401

        revoked = await web.post_form(browser, "/clients/revoke", "/clients", client_id=client_id)
        assert revoked.status_code == 303
        after = await browser.get("/clients")
        assert "revoked 1 grant(s)" in after.text
        assert 'id="no-clients"' in after.text
        assert (await http.post("/mcp", json=probe, headers=mcp_headers)).status_code == 401
