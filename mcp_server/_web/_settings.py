"""Settings of the dashboard's logins."""

from __future__ import annotations

import attrs


@attrs.frozen
class DashboardSettings:
    """How long a login lasts, how many there may be, and how fast wrong tokens are refused.

    ``session_idle_s``: a login unused this long is forgotten (the browser must log in again).
    ``max_sessions``: logins kept at once; a new one pushes out the idlest.
    ``login_failures_per_client`` / ``login_failures_overall`` wrong tokens within
    ``login_window_s`` (from one address / from all) make further logins wait (``429``).
    """

    session_idle_s: float = 12 * 3600.0
    max_sessions: int = 64
    login_failures_per_client: int = 5
    login_failures_overall: int = 20
    login_window_s: float = 60.0
    cookie_name: str = "coding_agent_session"
