"""Dashboard logins as plain records (sans-IO): sessions with an idle expiry and a cap, and the
throttle on failed logins.

A person types the MCP bearer token once on ``/login``; the server keeps a random session id
(the cookie's value) with a CSRF token bound to it, in memory only: a restart logs everyone out.
Time comes from the caller (a monotonic clock), so tests move it.
"""

from __future__ import annotations

import hmac
import secrets
from collections import deque

import attrs

SESSION_ID_BYTES = 32
CSRF_BYTES = 32


@attrs.define(eq=False)
class LoginSession:
    """One browser's login: its CSRF token, when it was last used, and a one-shot notice."""

    csrf: str = attrs.field(repr=False)
    last_seen: float
    notice: tuple[str, str] | None = None
    """(kind, text) shown once on the next page: what an action did, or why it was refused."""

    def csrf_matches(self, candidate: str) -> bool:
        """Whether a form's CSRF field is this session's token (constant-time)."""
        return hmac.compare_digest(candidate.encode(), self.csrf.encode())


@attrs.define(eq=False)
class LoginSessions:
    """The logged-in browsers: at most ``max_sessions`` (the idlest goes first), each forgotten
    after ``idle_s`` without a request."""

    idle_s: float
    max_sessions: int
    _sessions: dict[str, LoginSession] = attrs.field(factory=dict, init=False)

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, now: float) -> tuple[str, LoginSession]:
        """A new session: its id (the cookie's value, never shown in a page) and record."""
        self.expire(now)
        while len(self._sessions) >= self.max_sessions:
            idlest = min(self._sessions, key=lambda sid: self._sessions[sid].last_seen)
            del self._sessions[idlest]
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        session = LoginSession(csrf=secrets.token_urlsafe(CSRF_BYTES), last_seen=now)
        self._sessions[session_id] = session
        return session_id, session

    def find(self, session_id: str | None, now: float) -> LoginSession | None:
        """The live session with this id, its idle clock restarted; None if unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if now - session.last_seen > self.idle_s:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        return session

    def close(self, session_id: str | None) -> None:
        """Forget a session (logout); an unknown id is already gone."""
        if session_id:
            self._sessions.pop(session_id, None)

    def expire(self, now: float) -> None:
        """Forget every session idle longer than ``idle_s``."""
        for session_id, session in list(self._sessions.items()):
            if now - session.last_seen > self.idle_s:
                del self._sessions[session_id]


@attrs.define(eq=False)
class LoginThrottle:
    """Failed logins allowed per client in a sliding window, and in all (a tunnel makes every
    client one address); past either, logins are refused until the window has moved on."""

    per_client: int
    overall: int
    window_s: float
    _failures: dict[str, deque[float]] = attrs.field(factory=dict, init=False)
    _all: deque[float] = attrs.field(factory=deque, init=False)

    def _trim(self, times: deque[float], now: float) -> None:
        while times and now - times[0] >= self.window_s:
            times.popleft()

    def retry_after(self, client: str, now: float) -> float | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        self._trim(self._all, now)
        times = self._failures.get(client)
        if times is not None:
            self._trim(times, now)
            if not times:
                del self._failures[client]
        waits = []
        if times is not None and len(times) >= self.per_client:
            waits.append(times[0] + self.window_s - now)
        if len(self._all) >= self.overall:
            waits.append(self._all[0] + self.window_s - now)
        return max(waits) if waits else None

    def failed(self, client: str, now: float) -> None:
        """Count one failed login of ``client`` (clients quiet for a window are forgotten)."""
        if len(self._failures) > 2 * self.overall:
            for name, times in list(self._failures.items()):
                if not times or now - times[-1] >= self.window_s:
                    del self._failures[name]
        self._failures.setdefault(client, deque()).append(now)
        self._all.append(now)
