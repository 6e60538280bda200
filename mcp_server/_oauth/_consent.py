"""The consent step (sans-IO): pending consent tickets and the owner's credential check.

A ``GET /oauth/authorize`` that Authlib finds valid gets a ticket: a random value bound to the
request's parameters, carried by the form as its CSRF value. The form's POST is honoured only
with a live ticket, and the request it decides is the one stored with the ticket (the hidden
inputs are there for the client-facing contract, not trusted). A ticket ends with an allow or a
deny; a wrong credential leaves it, and counts toward a throttle (per address and overall).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Final

import attrs

from mcp_server._web._sessions import LoginThrottle

from ._records import check_password

TICKET_BYTES: Final = 32


@attrs.frozen
class ConsentSettings:
    """How long a consent page stays usable, how many may be open, and the wrong-credential
    throttle (per address / overall, within ``window_s``)."""

    ticket_lifetime_s: float = 600.0
    max_tickets: int = 256
    failures_per_client: int = 5
    failures_overall: int = 20
    window_s: float = 60.0


@attrs.frozen
class PendingConsent:
    """One consent page's request: its parameters (as Authlib validated them) and when."""

    params: tuple[tuple[str, str], ...]
    created: float
    client_id: str


class CredentialRefused(Exception):
    """A wrong or throttled credential: the status, why, and the seconds to wait (throttled)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@attrs.define(eq=False)
class ConsentDesk:
    """Open consent pages and the check of the owner's credential."""

    static_token: str | None = attrs.field(repr=False)
    settings: ConsentSettings
    clock: Callable[[], float]
    _tickets: dict[str, PendingConsent] = attrs.field(factory=dict, init=False)
    _throttle: LoginThrottle = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        settings = self.settings
        self._throttle = LoginThrottle(
            settings.failures_per_client, settings.failures_overall, settings.window_s
        )

    def open(self, params: tuple[tuple[str, str], ...], client_id: str) -> str:
        """A ticket for a validated authorization request (the oldest go past the cap)."""
        now = self.clock()
        self._expire(now)
        while len(self._tickets) >= self.settings.max_tickets:
            del self._tickets[next(iter(self._tickets))]
        ticket = secrets.token_urlsafe(TICKET_BYTES)
        self._tickets[ticket] = PendingConsent(params, now, client_id)
        return ticket

    def find(self, ticket: str) -> PendingConsent | None:
        """The live consent ``ticket`` names, or None."""
        self._expire(self.clock())
        for known, pending in self._tickets.items():
            if hmac.compare_digest(known.encode(), ticket.encode()):
                return pending
        return None

    def close(self, ticket: str) -> None:
        self._tickets.pop(ticket, None)

    def _expire(self, now: float) -> None:
        for ticket, pending in list(self._tickets.items()):
            if now - pending.created > self.settings.ticket_lifetime_s:
                del self._tickets[ticket]

    def check_credential(self, client: str, candidate: str, password_hash: str | None) -> None:
        """Accept the server's bearer token or the owner's password; else :class:`CredentialRefused`
        (401 wrong, 429 while throttled)."""
        now = self.clock()
        wait = self._throttle.retry_after(client, now)
        if wait is not None:
            seconds = max(1, int(wait + 0.999))
            raise CredentialRefused(
                429, f"too many wrong credentials: try again in {seconds} s", seconds
            )
        candidate = candidate.strip()
        token_ok = bool(self.static_token) and hmac.compare_digest(
            candidate.encode(), (self.static_token or "").encode()
        )
        password_ok = password_hash is not None and check_password(password_hash, candidate)
        if not (candidate and (token_ok or password_ok)):
            self._throttle.failed(client, now)
            raise CredentialRefused(
                401,
                "wrong credential: expected the server's bearer token (coding-agent token) "
                "or the owner's password (coding-agent oauth password)",
            )
