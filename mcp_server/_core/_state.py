"""Signed, opaque tokens: 2026-07-28 ``requestState`` and pagination cursors.

The client echoes them back, so they are attacker-controlled: each is ``payload.mac`` with an
HMAC-SHA256 over the payload, checked in constant time before the payload is trusted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson

from ._errors import InvalidParams


class Signer:
    """Signs and verifies small JSON payloads with one process-wide key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, payload: Any) -> str:
        """An opaque token carrying ``payload``."""
        body = base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=")
        mac = hmac.new(self._key, body, hashlib.sha256).digest()
        return (body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()

    def verify(self, token: Any, what: str) -> Any:
        """The payload of a token this signer made; ``InvalidParams`` otherwise."""
        if type(token) is not str or token.count(".") != 1:
            raise InvalidParams(f"invalid {what}")
        body, _, mac = token.encode().partition(b".")
        expected = base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest())
        if not hmac.compare_digest(expected.rstrip(b"="), mac):
            raise InvalidParams(f"invalid {what}: integrity check failed")
        try:
            return orjson.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            raise InvalidParams(f"invalid {what}") from None


STATE_TTL_S = 15 * 60.0


def sign_state(signer: Signer, method: str, name: str, answers: dict[str, Any]) -> str:
    """A ``requestState`` binding earlier answers to one method and target."""
    return signer.sign({"m": method, "n": name, "a": answers, "t": int(time.time())})


def open_state(signer: Signer, token: Any, method: str, name: str) -> dict[str, Any]:
    """The answers carried by a ``requestState``; rejects tampered, foreign or stale states."""
    payload = signer.verify(token, "requestState")
    if (
        type(payload) is not dict
        or payload.get("m") != method
        or payload.get("n") != name
        or type(payload.get("a")) is not dict
        or type(payload.get("t")) is not int
    ):
        raise InvalidParams("invalid requestState: issued for another request")
    if time.time() - payload["t"] > STATE_TTL_S:
        raise InvalidParams("invalid requestState: expired")
    answers: dict[str, Any] = payload["a"]
    return answers
