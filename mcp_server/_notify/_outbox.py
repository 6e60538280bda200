"""The outbox's records and the state machine of one delivery, with its retry schedule.

Sans-IO. An :class:`OutboxEntry` is one event and a :class:`Delivery` per target. A delivery is
``pending`` until its target acknowledges it (2xx: ``delivered``), says it is gone for good
(410: ``gone``), refuses it for good (another 4xx but 408 and 429) or it ran out of attempts or
age (``dead``: a dead letter, kept for a person to look at). Each failed attempt sets the next one
after an exponential backoff with jitter (:meth:`RetryPolicy.delay`). An entry whose deliveries
are all settled leaves the outbox: deleted, or kept as a dead letter if any died.
"""

from __future__ import annotations

import datetime
import urllib.parse
from typing import Literal

import attrs

from ._events import NotifyEvent

Format = Literal["json", "ntfy"]
DeliveryState = Literal["pending", "delivered", "gone", "dead"]


@attrs.frozen
class Target:
    """Where events go, and in which format."""

    url: str
    format: Format = "json"

    def redacted(self) -> str:
        """``https://host:port/…``: the path may carry a token (an ntfy topic), so never shown."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or "?"
        shown = f"[{host}]" if ":" in host else host
        port = f":{parts.port}" if parts.port else ""
        prefix = "ntfy+" if self.format == "ntfy" else ""
        return f"{prefix}{parts.scheme}://{shown}{port}/…"


@attrs.frozen
class Delivery:
    """One event's delivery to one target."""

    target: Target
    next_at: datetime.datetime
    state: DeliveryState = "pending"
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: datetime.datetime | None = None


@attrs.frozen
class OutboxEntry:
    """An event and its deliveries, as one outbox file holds them."""

    event: NotifyEvent
    deliveries: tuple[Delivery, ...]

    @property
    def settled(self) -> bool:
        """No delivery is pending any more: the entry leaves the outbox."""
        return all(delivery.state != "pending" for delivery in self.deliveries)

    @property
    def dead(self) -> bool:
        """Some delivery gave up: the settled entry is kept as a dead letter."""
        return any(delivery.state == "dead" for delivery in self.deliveries)

    def delivery(self, url: str) -> Delivery | None:
        """The delivery to ``url``, if the event goes there."""
        return next((d for d in self.deliveries if d.target.url == url), None)


def new_entry(event: NotifyEvent, targets: tuple[Target, ...]) -> OutboxEntry:
    """An event about to be delivered to each of ``targets`` (each once), at once."""
    unique = tuple({target.url: target for target in targets}.values())
    return OutboxEntry(event, tuple(Delivery(target, next_at=event.at) for target in unique))


@attrs.frozen
class RetryPolicy:
    """When to try again, and when to give up."""

    base_s: float = 1.0
    cap_s: float = 600.0
    jitter: float = 0.25
    """Each delay is stretched by up to this fraction, at random: targets that came back are
    not hit by every server's retries in the same second."""
    max_attempts: int = 20
    max_age_s: float = 86_400.0
    timeout_s: float = 10.0
    """One attempt's limit: connecting, sending and the answer."""

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds before the attempt after the ``attempt``-th failed (1 s, 2 s, 4 s … capped);
        ``rand`` in [0, 1) gives the jitter."""
        exponent = min(max(attempt - 1, 0), 62)
        return min(self.cap_s, self.base_s * 2.0**exponent) * (1.0 + self.jitter * rand)


@attrs.frozen
class Result:
    """What one attempt got: an HTTP status, or why there was none."""

    status: int | None = None
    error: str | None = None

    def describe(self) -> str:
        """``HTTP 500``, or the error."""
        return f"HTTP {self.status}" if self.status is not None else (self.error or "no answer")


def verdict(result: Result) -> Literal["delivered", "gone", "retry", "refused"]:
    """What an attempt's result means for its delivery."""
    status = result.status
    if status is None:
        return "retry"
    if 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    if 400 <= status < 500 and status not in (408, 425, 429):
        return "refused"
    return "retry"


def after_attempt(
    entry: OutboxEntry,
    url: str,
    result: Result,
    *,
    now: datetime.datetime,
    policy: RetryPolicy,
    rand: float,
) -> OutboxEntry:
    """The entry once the delivery to ``url`` got ``result`` at ``now``."""

    def settle(delivery: Delivery) -> Delivery:
        if delivery.target.url != url or delivery.state != "pending":
            return delivery
        attempts = delivery.attempts + 1
        done = attrs.evolve(delivery, attempts=attempts, last_attempt_at=now)
        outcome = verdict(result)
        if outcome == "delivered":
            return attrs.evolve(done, state="delivered", last_error=None)
        if outcome == "gone":
            return attrs.evolve(done, state="gone", last_error="target gone (HTTP 410)")
        if outcome == "refused":
            return attrs.evolve(done, state="dead", last_error=f"refused: {result.describe()}")
        next_at = now + datetime.timedelta(seconds=policy.delay(attempts, rand))
        age = (next_at - entry.event.at).total_seconds()
        if attempts >= policy.max_attempts or age > policy.max_age_s:
            why = f"gave up after {attempts} attempts: {result.describe()}"
            return attrs.evolve(done, state="dead", last_error=why)
        return attrs.evolve(done, next_at=next_at, last_error=result.describe())

    return attrs.evolve(entry, deliveries=tuple(settle(d) for d in entry.deliveries))


def drop_gone(entry: OutboxEntry, url: str, now: datetime.datetime) -> OutboxEntry:
    """The entry with its pending delivery to ``url`` settled ``gone`` (the target said 410)."""
    deliveries = tuple(
        attrs.evolve(d, state="gone", last_error="target gone (HTTP 410)", last_attempt_at=now)
        if d.target.url == url and d.state == "pending"
        else d
        for d in entry.deliveries
    )
    return attrs.evolve(entry, deliveries=deliveries)
