"""Refusals before a request reaches MCP: Host, Origin, bearer auth, media types, body bounds."""

from __future__ import annotations

import hmac

import attrs
import trio

from .._core import InvalidRequest, clip
from ._asgi import HttpError, Receive, Scope
from ._authority import HostFence
from ._settings import AccessTokenCheck, HttpSettings


@attrs.frozen
class RequestGuard:
    """Checks every ``/mcp`` request in the order that keeps connections usable."""

    fence: HostFence
    token: bytes | None
    body_timeout_s: float
    max_body_bytes: int
    access_tokens: AccessTokenCheck | None = None

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> RequestGuard:
        """The guard ``settings`` describe."""
        token = settings.auth_token.encode() if settings.auth_token else None
        return cls(
            HostFence.from_settings(settings),
            token,
            settings.body_timeout_s,
            settings.max_body_bytes,
            settings.access_tokens,
        )

    def check(self, scope: Scope, headers: dict[bytes, bytes]) -> None:
        """Host, Origin and bearer token; refused before any body is read."""
        host_header = headers.get(b"host", b"").decode("latin-1")
        host = self.fence.allowed_host(host_header)
        if host is None:
            raise HttpError(421, InvalidRequest(self.fence.refusal(host_header)))
        origin = headers.get(b"origin")
        if origin is not None and not self.fence.allows_origin(origin.decode("latin-1")):
            raise HttpError(
                403,
                InvalidRequest(
                    "Origin not allowed: expected http(s)://HOST[:PORT] naming this server, "
                    f"got {clip(origin.decode('latin-1'))!r}",
                ),
            )
        if self.token is not None:
            auth = headers.get(b"authorization", b"")
            scheme, _, token = auth.partition(b" ")
            base = self.fence.base_url(scope.get("scheme", "http"), host)
            presented = token.strip() if scheme.lower() == b"bearer" else None
            if presented is None or not self._accepts(self.token, presented, f"{base}/mcp"):
                metadata = f"{base}/.well-known/oauth-protected-resource/mcp"
                challenge = f'Bearer resource_metadata="{metadata}"'
                if self.access_tokens is not None:
                    challenge += ', scope="mcp"'
                if auth:
                    challenge += ', error="invalid_token"'
                raise HttpError(
                    401,
                    InvalidRequest("Unauthorized"),
                    [(b"www-authenticate", challenge.encode())],
                )

    def _accepts(self, static: bytes, token: bytes, resource: str) -> bool:
        """The static bearer token, or a live OAuth access token for ``resource``."""
        if hmac.compare_digest(token, static):
            return True
        return self.access_tokens is not None and self.access_tokens(
            token.decode("latin-1"), resource
        )

    def check_post(self, headers: dict[bytes, bytes]) -> None:
        """A POST must accept JSON and SSE and send JSON."""
        accept = headers.get(b"accept", b"")
        if not (b"application/json" in accept or b"*/*" in accept) or not (
            b"text/event-stream" in accept or b"*/*" in accept
        ):
            raise HttpError(
                406,
                InvalidRequest("Accept must list application/json and text/event-stream"),
            )
        content_type = headers.get(b"content-type", b"")
        if not content_type.split(b";")[0].strip().lower() == b"application/json":
            raise HttpError(415, InvalidRequest("Content-Type must be application/json"))

    async def read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        """The body, within ``body_timeout_s`` of the headers, else ``408`` and a closed connection.

        Hypercorn has no read timeout once the headers are in: a body that stops coming would
        hold its connection forever.
        """
        with trio.move_on_after(self.body_timeout_s):
            return await self._read_body(receive, headers)
        timeout = self.body_timeout_s
        raise HttpError(
            408,
            InvalidRequest(f"Request body not received within {timeout:g} s"),
            [(b"connection", b"close")],
        )

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        limit = self.max_body_bytes
        length = headers.get(b"content-length")
        too_large = HttpError(
            413,
            InvalidRequest("Request body too large"),
            [(b"connection", b"close")],
        )
        if length is not None and length.isdigit() and int(length) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                raise HttpError(400)
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            # Wait for the closing event even when all declared bytes are here: until Hypercorn
            # has parsed the request's end, answering would make it close the connection.
            if not event.get("more_body", False):
                return b"".join(chunks)
