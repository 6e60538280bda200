"""The authorization server's books in memory (sans-IO): clients, grants and the indexes that
find a grant from a token hash; every change marks the books dirty for the service to write.

Redirect URIs are checked here too (:func:`redirect_uri_problem`, :func:`redirect_uri_matches`):
exact string match, except that a loopback ``http`` URI matches on any port (RFC 8252 §7.3:
a native client listens on whatever port it gets).
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

import attrs

from ._records import ClientRecord, GrantRecord, OAuthState

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_REDIRECT_URI: Final = 2000


def _is_loopback(hostname: str) -> bool:
    if hostname in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def redirect_uri_problem(uri: object) -> str | None:  # noqa: PLR0911 (one answer per rule)
    """Why ``uri`` cannot be a registered redirect URI, or None when it can: ``https://…``, or
    ``http://`` on a loopback address (native clients), absolute, without a fragment."""
    if not isinstance(uri, str):
        return f"expected a string, got {type(uri).__name__}"
    if len(uri) > MAX_REDIRECT_URI:
        return f"expected at most {MAX_REDIRECT_URI} characters, got {len(uri)}"
    try:
        parts = urlsplit(uri)
        hostname = parts.hostname
        parts.port  # noqa: B018 (parsing the port raises ValueError when it is malformed)
    except ValueError as exc:
        return f"not a URL ({exc}): {uri!r}"
    if parts.fragment or "#" in uri:
        return f"a redirect URI must not have a fragment: {uri!r}"
    if parts.scheme == "https" and hostname:
        return None
    if parts.scheme == "http" and hostname and _is_loopback(hostname):
        return None
    return (
        "expected https://HOST/… or, for a native client, http://127.0.0.1|[::1]|localhost"
        f"[:PORT]/…, got {uri!r}"
    )


def redirect_uri_matches(registered: tuple[str, ...], candidate: str) -> bool:
    """Whether ``candidate`` is one of ``registered`` exactly, or a loopback ``http`` one of them
    on another port."""
    if candidate in registered:
        return True
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "http" or not parts.hostname or not _is_loopback(parts.hostname):
        return False
    del port
    for uri in registered:
        known = urlsplit(uri)
        if (
            known.scheme == "http"
            and known.hostname == parts.hostname
            and known.path == parts.path
            and known.query == parts.query
        ):
            return True
    return False


@attrs.define(eq=False)
class OAuthBook:
    """Clients and grants, indexed by client id, grant id and token hash."""

    clients: dict[str, ClientRecord] = attrs.field(factory=dict)
    grants: dict[str, GrantRecord] = attrs.field(factory=dict)
    dirty: bool = False
    _by_access: dict[str, str] = attrs.field(factory=dict, init=False)
    _by_refresh: dict[str, str] = attrs.field(factory=dict, init=False)
    _by_retired: dict[str, str] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        for grant in self.grants.values():
            self._index(grant)

    @classmethod
    def from_state(cls, state: OAuthState) -> OAuthBook:
        return cls(
            {client.client_id: client for client in state.clients},
            {grant.grant_id: grant for grant in state.grants},
        )

    def to_state(self) -> OAuthState:
        return OAuthState(clients=tuple(self.clients.values()), grants=tuple(self.grants.values()))

    def _index(self, grant: GrantRecord) -> None:
        self._by_access[grant.access_hash] = grant.grant_id
        self._by_refresh[grant.refresh_hash] = grant.grant_id
        for retired in grant.retired_refresh_hashes:
            self._by_retired[retired] = grant.grant_id

    def _unindex(self, grant: GrantRecord) -> None:
        self._by_access.pop(grant.access_hash, None)
        self._by_refresh.pop(grant.refresh_hash, None)
        for retired in grant.retired_refresh_hashes:
            self._by_retired.pop(retired, None)

    # -- clients --------------------------------------------------------------------------------

    def add_client(self, client: ClientRecord) -> None:
        self.clients[client.client_id] = client
        self.dirty = True

    def granted_client_ids(self) -> set[str]:
        return {grant.client_id for grant in self.grants.values()}

    def prune_clients(self, now: float, unused_after_s: float, cap: int) -> None:
        """Forget clients registered over ``unused_after_s`` ago that never got a grant, then
        the oldest never-granted ones while there are more than ``cap`` clients."""
        granted = self.granted_client_ids()
        idle = sorted(
            (client for client in self.clients.values() if client.client_id not in granted),
            key=lambda client: client.registered_at,
        )
        for client in idle:
            if now - client.registered_at > unused_after_s or len(self.clients) > cap:
                del self.clients[client.client_id]
                self.dirty = True

    # -- grants ---------------------------------------------------------------------------------

    def put_grant(self, grant: GrantRecord) -> None:
        """Add ``grant``, or replace the grant of its id (a rotation)."""
        old = self.grants.get(grant.grant_id)
        if old is not None:
            self._unindex(old)
        self.grants[grant.grant_id] = grant
        self._index(grant)
        self.dirty = True

    def remove_grant(self, grant_id: str) -> bool:
        grant = self.grants.pop(grant_id, None)
        if grant is None:
            return False
        self._unindex(grant)
        self.dirty = True
        return True

    def revoke_client(self, client_id: str) -> int:
        """Remove every grant of ``client_id``; how many there were."""
        doomed = [grant.grant_id for grant in self.grants.values() if grant.client_id == client_id]
        for grant_id in doomed:
            self.remove_grant(grant_id)
        return len(doomed)

    def by_access(self, access_hash: str) -> GrantRecord | None:
        grant_id = self._by_access.get(access_hash)
        return None if grant_id is None else self.grants.get(grant_id)

    def by_refresh(self, refresh_hash: str) -> GrantRecord | None:
        grant_id = self._by_refresh.get(refresh_hash)
        return None if grant_id is None else self.grants.get(grant_id)

    def by_retired_refresh(self, refresh_hash: str) -> GrantRecord | None:
        grant_id = self._by_retired.get(refresh_hash)
        return None if grant_id is None else self.grants.get(grant_id)

    def expire(self, now: float) -> None:
        """Drop grants whose refresh token has expired (their access token has too)."""
        for grant in list(self.grants.values()):
            if grant.refresh_expires_at <= now and grant.access_expires_at <= now:
                self.remove_grant(grant.grant_id)
