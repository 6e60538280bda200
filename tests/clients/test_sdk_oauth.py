"""The OAuth flow end to end with each TypeScript SDK's own OAuth client provider machinery.

No token at first: the SDK finds the authorization server through the 401 and the metadata,
registers itself (RFC 7591), sends the owner to the consent page with PKCE (a scripted browser
fills the form with the server's bearer token and allows), swaps the code for tokens, calls a
tool; an access token the server no longer takes makes it refresh (the refresh token rotates);
after both tokens are revoked the old access token gets 401, the refresh is refused and the SDK
has to ask the owner again.
"""

from __future__ import annotations

import pathlib

import pytest
import trio
from _support.agent_up import coding_agent_up
from _support.mcp_clients import SDK_V1, SDK_V2, running_script, sdk_script, stand_in_setup

pytestmark = pytest.mark.real_clients

CLIENTS = {
    "v1-legacy": (SDK_V1, "sdk_v1.mjs", "legacy"),
    "v2-legacy": (SDK_V2, "sdk_v2.mjs", "legacy"),
    "v2-modern": (SDK_V2, "sdk_v2.mjs", "modern"),
}


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_sdk_oauth_register_authorize_token_refresh_revoke(
    tmp_path: pathlib.Path, client: str
) -> None:
    """A client that knows only OAuth connects through the consent page and runs a tool."""
    pin, script, mode = CLIENTS[client]
    argv = await trio.to_thread.run_sync(sdk_script, pin, script, tmp_path / "script")
    setup = stand_in_setup(tmp_path)
    async with coding_agent_up(setup.state, setup.root, setup.env) as up:
        env = {"MCP_URL": up.url, "MCP_TOKEN": up.token, "MCP_MODE": mode}
        async with running_script([*argv, "oauth"], tmp_path / "client", env) as run:
            await run.rest()
    assert run.process.returncode == 0, run.report()
    steps = run.by_step()
    base = up.url.removesuffix("/mcp")

    asked = steps["unauthorized"]
    assert asked["registered"] is True
    assert asked["authorizationEndpoint"] == f"{base}/oauth/authorize"
    query = asked["authorization"]
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) >= 43
    assert query["resource"] == up.url
    consent = asked["consent"]
    assert consent["pageStatus"] == 200
    assert (consent["formMethod"] or "").lower() == "post"
    assert {"credential", "decision"} <= set(consent["fields"])
    assert consent["postStatus"] in {302, 303}
    assert consent["redirectedTo"] == query["redirect_uri"]

    token = steps["token"]
    assert token["tokenType"].lower() == "bearer"
    assert token["hasRefresh"] is True
    assert token["stateEchoed"] is True

    assert steps["check_status"]["isError"] is False
    assert steps["check_status"]["structured"]["status"] == "success"

    refreshed = steps["refreshed"]
    assert refreshed["isError"] is False
    assert refreshed["accessChanged"] is True
    assert refreshed["refreshRotated"] is True
    assert refreshed["consents"] == 1

    revoked = steps["revoke"]
    assert (revoked["accessStatus"], revoked["refreshStatus"]) == (200, 200)
    assert revoked["oldAccessToken"] == 401
    # The refresh is refused: the SDK forgets the tokens and asks for a new authorization.
    after = steps["after_revoke"]
    assert (after["rejected"], after["name"]) == (True, "UnauthorizedError"), after
    assert "tokens" in after["invalidated"] or "all" in after["invalidated"], after
    assert after["consents"] == 2, after
