"""Settings of the Streamable HTTP transport."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import attrs

AccessTokenCheck = Callable[[str, str], bool]
"""``(token, resource) -> bool``: whether a bearer token is a live OAuth access token for the
resource (``<base>/mcp``)."""


@attrs.frozen
class HttpSettings:
    """How ``serve()`` listens, authenticates and bounds its resources.

    ``auth_token=None`` turns bearer auth off (tests and the conformance server only).
    ``access_tokens`` (with ``auth_token``) also lets in OAuth access tokens.
    ``public_urls`` are extra origins/hosts allowed besides the localhost names (e.g. a tunnel).
    ``sse_responses`` answers every request with an SSE stream; otherwise a request answers with
    plain JSON unless it sends notifications or requests before its result.
    """

    host: str = "127.0.0.1"
    port: int = 3000
    auth_token: str | None = None
    public_urls: tuple[str, ...] = ()
    max_body_bytes: int = 4 * 1024 * 1024
    body_timeout_s: float = 30.0
    """An authenticated POST's body must arrive within this after its headers, or ``408``."""
    max_connections: int = 4096
    """Open connections at once (capped at half the open files limit); more are ``503``."""
    session_idle_timeout_s: float = 30 * 60.0
    max_sessions: int = 1000
    max_listens: int = 256
    """Open 2026-07-28 ``subscriptions/listen`` streams at a time (they have no session)."""
    max_listen_filter: int = 256
    """Entries a listen's ``taskIds`` or ``resourceSubscriptions`` may list."""
    max_queued_events: int = 256
    graceful_timeout_s: float = 10.0
    server_name: str = "coding-agent"
    server_version: str = "0.1.0"
    instructions: str | None = None
    sse_responses: bool = False
    sse_retry_ms: int = 1000
    state_secret: bytes | None = None
    """Key that signs 2026-07-28 ``requestState``; random per process when None."""
    state_dir: pathlib.Path | None = None
    """Where legacy sessions are kept across restarts (``sessions/``, ``quarantine/``); None
    keeps them in memory only."""
    access_tokens: AccessTokenCheck | None = attrs.field(default=None, eq=False, repr=False)
    """The built-in authorization server's token check: ``/mcp`` then also takes its access
    tokens, and the protected-resource metadata names this server as the authorization server."""
