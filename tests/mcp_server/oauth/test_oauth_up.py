"""A client that knows only OAuth, through a tunnel, against a real ``coding-agent up``: it
discovers, registers, gets the owner's consent, and runs a coding task with its access token.

The tunnel is simulated the way it reaches the server: requests to 127.0.0.1 carrying the
public ``Host`` (``TUNNEL_URL``'s), TLS ended in front of us."""

from __future__ import annotations

import os
import pathlib
from urllib.parse import parse_qs, urlsplit

import httpx
from _support.agent_up import base_env, coding_agent_up
from _support.daemon import install_stand_in_agent
from _support.oauth import hidden_fields, pkce
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

PUBLIC = "https://coding.tunnel.example"
CALLBACK = "https://claude.ai/api/mcp/auth_callback"


async def test_oauth_only_client_runs_a_task_through_the_tunnel(tmp_path: pathlib.Path) -> None:
    """Discovery, registration, consent, token, then create_task/wait_task with the token."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "bin").mkdir()
    env = base_env(
        CLAUDE_PATH=install_stand_in_agent(tmp_path / "bin"),
        TUNNEL_ENABLED="true",
        TUNNEL_URL=PUBLIC,
        PYTHONPATH=os.getcwd(),
    )
    async with coding_agent_up(tmp_path / "state", root, env) as up:
        local = up.url.removesuffix("/mcp")
        tunnel = {"Host": "coding.tunnel.example"}
        async with httpx.AsyncClient(base_url=local, headers=tunnel, timeout=30) as web:
            refused = await web.post("/mcp", json={})
            assert refused.status_code == 401
            assert (
                f'resource_metadata="{PUBLIC}/.well-known/' in refused.headers["www-authenticate"]
            )
            resource = (await web.get("/.well-known/oauth-protected-resource/mcp")).json()
            assert resource["resource"] == f"{PUBLIC}/mcp"
            assert resource["authorization_servers"] == [PUBLIC]
            metadata = (await web.get("/.well-known/oauth-authorization-server")).json()
            assert metadata["issuer"] == PUBLIC
            assert metadata["authorization_endpoint"] == f"{PUBLIC}/oauth/authorize"

            registered = await web.post(
                "/oauth/register",
                json={
                    "client_name": "claude.ai",
                    "redirect_uris": [CALLBACK],
                    "token_endpoint_auth_method": "client_secret_post",
                    "grant_types": ["authorization_code", "refresh_token"],
                },
            )
            assert registered.status_code == 201, registered.text
            client = registered.json()
            verifier, challenge = pkce()
            page = await web.get(
                "/oauth/authorize",
                params={
                    "response_type": "code",
                    "client_id": client["client_id"],
                    "redirect_uri": CALLBACK,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                    "state": "phone",
                    "resource": f"{PUBLIC}/mcp",
                },
            )
            assert page.status_code == 200, page.text
            assert "claude.ai" in page.text
            form = {**hidden_fields(page.text), "decision": "allow", "credential": up.token}
            allowed = await web.post("/oauth/authorize", data=form, headers={"Origin": PUBLIC})
            assert allowed.status_code == 302, allowed.text
            location = allowed.headers["location"]
            assert location.startswith(CALLBACK + "?")
            code = parse_qs(urlsplit(location).query)["code"][0]
            tokens = await web.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": CALLBACK,
                    "client_id": client["client_id"],
                    "client_secret": client["client_secret"],
                    "code_verifier": verifier,
                    "resource": f"{PUBLIC}/mcp",
                },
            )
            assert tokens.status_code == 200, tokens.text
            access = tokens.json()["access_token"]

        headers = {"Authorization": f"Bearer {access}", **tunnel}
        http = create_mcp_http_client(headers=headers)
        async with http, Client(streamable_http_client(up.url, http_client=http)) as mcp:
            created = await mcp.call_tool(
                "create_task", {"title": "oauth", "instructions": "say hello"}
            )
            assert not created.is_error, created
            task_id = created.structured_content["result"]["task_id"]
            waited = await mcp.call_tool("wait_task", {"id": task_id, "timeout_s": 30})
            assert not waited.is_error, waited
            assert waited.structured_content["result"]["status"] != "in_progress"
