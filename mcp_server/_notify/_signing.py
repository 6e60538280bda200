"""Signing deliveries the way GitHub and Stripe do, and verifying them as a receiver would.

Sans-IO. The signature is ``v1=`` and the hex HMAC-SHA256, keyed with the webhook secret, of
``"<timestamp>.<body>"``: the timestamp header is covered, so a captured delivery replayed later
fails a receiver's tolerance window (:func:`verify`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

EVENT_HEADER = "X-Coding-Agent-Event"
DELIVERY_HEADER = "X-Coding-Agent-Delivery"
TIMESTAMP_HEADER = "X-Coding-Agent-Timestamp"
SIGNATURE_HEADER = "X-Coding-Agent-Signature"

DEFAULT_TOLERANCE_S = 300
"""How old a delivery a receiver should accept (its clock against the server's)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex>``: HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def signed_headers(
    secret: str, event_type: str, delivery_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The four headers every delivery carries."""
    return {
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when ``body`` was signed with ``secret`` less than ``tolerance_s`` from ``now``.

    ``headers`` must look names up case-insensitively (as every HTTP framework's do). This is
    the function docs/notifications.md gives receivers to copy.
    """
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = signature(secret, int(timestamp), body)
    given = headers.get(SIGNATURE_HEADER, "")
    return any(hmac.compare_digest(expected, part.strip()) for part in given.split(","))
