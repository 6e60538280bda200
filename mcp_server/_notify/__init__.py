"""Notifications: webhooks told when a task completes, fails, waits, needs a decision or is
limited, from a durable outbox, signed, retried with backoff (see docs/notifications.md).

Sans-IO: the events (``_events``), signing (``_signing``), the outbox's records, delivery state
machine and retry schedule (``_outbox``), the settings (``_settings``). Adapters: the outbox on
disk (``_disk``) and the notifier, the runner's listener with its delivery lanes (``_notifier``).
"""

from ._events import TRIGGERS, NotifyEvent, change_key, event_for, json_body, ntfy_request
from ._notifier import Notifier
from ._outbox import OutboxEntry, Result, RetryPolicy, Target, after_attempt, new_entry, verdict
from ._settings import (
    SECRET_FILE,
    NotifyConfig,
    NotifyConfigError,
    NotifyUrlRefused,
    check_notify_url,
    notify_config,
    parse_target,
)
from ._signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signed_headers,
    verify,
)

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SECRET_FILE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TRIGGERS",
    "Notifier",
    "NotifyConfig",
    "NotifyConfigError",
    "NotifyEvent",
    "NotifyUrlRefused",
    "OutboxEntry",
    "Result",
    "RetryPolicy",
    "Target",
    "after_attempt",
    "change_key",
    "check_notify_url",
    "event_for",
    "json_body",
    "new_entry",
    "notify_config",
    "ntfy_request",
    "parse_target",
    "signature",
    "signed_headers",
    "verdict",
    "verify",
]
