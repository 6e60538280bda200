"""The dashboard's page of OAuth clients: who holds a grant of the built-in authorization
server, and a Revoke button per client (CSRF and exact origin, like every dashboard action)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from quart import Blueprint, Response, request

from ._base import notify, page, see_other

if TYPE_CHECKING:
    from mcp_server._oauth import OAuthService


def register(blueprint: Blueprint, oauth: OAuthService) -> None:
    """``GET /clients`` and ``POST /clients/revoke`` over ``oauth``."""

    @blueprint.get("/clients")
    async def clients_page() -> Response:
        listed = [
            (
                client,
                datetime.datetime.fromtimestamp(client.first_granted_at, datetime.UTC),
            )
            for client in oauth.granted()
        ]
        return await page("clients.html", clients=listed)

    @blueprint.post("/clients/revoke")
    async def revoke_client() -> Response:
        form = await request.form
        client_id = form.get("client_id", "")
        ended = await oauth.revoke_client(client_id) if client_id else 0
        if ended:
            notify("ok", f"revoked {ended} grant(s) of {client_id}: its tokens no longer work")
        else:
            notify("error", f"no grant of client {client_id[:80]!r}: nothing revoked")
        return see_other("/clients")
