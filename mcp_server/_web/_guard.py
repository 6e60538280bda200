"""The dashboard's fence: Host and Origin as on ``/mcp``, the login cookie, CSRF, the login
throttle and the headers every answer carries.

Checks answer with a :class:`Refusal` (a status and a sentence saying what was expected and
what came); the blueprint turns it into a page.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from mcp_server._core import clip
from mcp_server._http import HostFence, HttpSettings

from ._sessions import LoginSession, LoginSessions, LoginThrottle
from ._settings import DashboardSettings

CSP: Final = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on POSTs.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class Refusal(Exception):
    """A request the dashboard refuses: the status and why."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@attrs.define(eq=False)
class WebGuard:
    """Everything that decides whether a dashboard request may go on."""

    fence: HostFence
    token: bytes = attrs.field(repr=False)
    settings: DashboardSettings
    clock: Callable[[], float]
    sessions: LoginSessions
    throttle: LoginThrottle

    @classmethod
    def build(
        cls, http: HttpSettings, settings: DashboardSettings, clock: Callable[[], float]
    ) -> WebGuard:
        """The guard for a server with ``http``'s token and allowed hosts."""
        if not http.auth_token:
            raise ValueError("the dashboard needs the MCP bearer token (auth_token) to log in with")
        return cls(
            fence=HostFence.from_settings(http),
            token=http.auth_token.encode(),
            settings=settings,
            clock=clock,
            sessions=LoginSessions(settings.session_idle_s, settings.max_sessions),
            throttle=LoginThrottle(
                settings.login_failures_per_client,
                settings.login_failures_overall,
                settings.login_window_s,
            ),
        )

    def check_host(self, host_header: str) -> None:
        """The Host must be one this server answers to (the DNS-rebinding fence)."""
        if self.fence.allowed_host(host_header) is None:
            raise Refusal(421, self.fence.refusal(host_header))

    def check_origin(
        self, origin: str | None, fetch_site: str | None, scheme: str, host_header: str
    ) -> None:
        """A state-changing request must come from this dashboard's own pages: an Origin that
        is exactly this server's (when sent; not merely another loopback port) and, when the
        browser says, ``Sec-Fetch-Site: same-origin`` (or ``none``: typed by the person)."""
        if origin is not None and not self.fence.is_own_origin(origin, scheme, host_header):
            raise Refusal(
                403,
                "Origin not allowed: expected this dashboard's own origin "
                f"({scheme}://{clip(host_header)} or a public URL), got {clip(origin)!r}",
            )
        if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
            raise Refusal(
                403,
                f"{clip(fetch_site)} request refused: expected one from this dashboard's pages",
            )

    def secure(self, scheme: str, host_header: str) -> bool:
        """Whether the cookie must be ``Secure``: the request came over https, or through a
        public https URL (a tunnel terminating TLS in front of us)."""
        host = self.fence.allowed_host(host_header)
        if scheme == "https":
            return True
        return host is not None and self.fence.base_url(scheme, host).startswith("https://")

    def session(self, session_id: str | None) -> LoginSession | None:
        """The live login a cookie names, or None."""
        return self.sessions.find(session_id, self.clock())

    def check_csrf(self, session: LoginSession, candidate: str | None) -> None:
        """A state-changing request must carry its login's CSRF token."""
        if candidate is None or not session.csrf_matches(candidate):
            raise Refusal(
                403,
                "CSRF token missing or wrong: expected the one of this login's pages "
                "(reload the page and try again)",
            )

    def log_in(self, client: str, candidate: str) -> tuple[str, LoginSession]:
        """A new login for the right token; a wrong one counts toward the throttle."""
        now = self.clock()
        wait = self.throttle.retry_after(client, now)
        if wait is not None:
            seconds = max(1, int(wait + 0.999))
            raise Refusal(
                429,
                f"too many wrong tokens: try again in {seconds} s",
                {"Retry-After": str(seconds)},
            )
        if not hmac.compare_digest(candidate.strip().encode(), self.token):
            self.throttle.failed(client, now)
            raise Refusal(401, "wrong token: expected the MCP bearer token (coding-agent token)")
        return self.sessions.open(now)

    def log_out(self, session_id: str | None) -> None:
        self.sessions.close(session_id)


def local_path(target: str | None) -> str:
    """Where to go after logging in: a path on this server, never another site ("/" else)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
