"""Server notifications: what a legacy session or a 2026-07-28 listen stream is sent, and when.

The transport fans registry and task events out; this module decides who wants each event and
renders the notification, so the transport only moves bytes.
"""

from __future__ import annotations

from typing import Final

import attrs

from ._context import LOG_LEVELS, SessionState
from ._errors import InvalidParams
from ._jsonrpc import RequestId, notification_message
from ._mcp_tasks import McpTaskRecord
from ._registry import JSON, ListChanged, LogMessage, RegistryEvent, ResourceUpdated
from ._schema import validate
from ._versions import META_SUBSCRIPTION

_MAX_URI_CHARS: Final = 2048
_MAX_TASK_ID_CHARS: Final = 256
LIST_NOTIFICATIONS: Final = {
    "tools": "notifications/tools/list_changed",
    "resources": "notifications/resources/list_changed",
    "prompts": "notifications/prompts/list_changed",
}
LISTEN_FLAGS: Final = {
    "tools": "toolsListChanged",
    "resources": "resourcesListChanged",
    "prompts": "promptsListChanged",
}


def session_notification(event: RegistryEvent) -> JSON:
    """The notification a legacy session is sent for ``event``."""
    if isinstance(event, ListChanged):
        return notification_message(LIST_NOTIFICATIONS[event.kind], {})
    if isinstance(event, LogMessage):
        return notification_message("notifications/message", _log_params(event))
    return notification_message("notifications/resources/updated", {"uri": event.uri})


def _log_params(event: LogMessage) -> JSON:
    params: JSON = {"level": event.level, "data": event.data}
    if event.logger is not None:
        params["logger"] = event.logger
    return params


def session_wants(state: SessionState, event: RegistryEvent) -> bool:
    """True when a legacy session is told about ``event``: a list change once initialized, a
    resource's update when subscribed to it, a log message when its level lets it through (or,
    with no level set, when subscribed to the resource it concerns)."""
    if isinstance(event, ListChanged):
        return state.initialized
    if isinstance(event, LogMessage):
        if not state.initialized:
            return False
        if state.log_level is not None:
            return LOG_LEVELS[event.level] >= LOG_LEVELS[state.log_level]
        return event.about is not None and event.about in state.subscriptions
    return event.uri in state.subscriptions


@attrs.frozen
class ListenFilter:
    """A 2026-07-28 ``subscriptions/listen`` stream's filter."""

    rid: RequestId
    lists: frozenset[str]
    uris: frozenset[str]
    task_ids: frozenset[str] | None

    def on_registry(self, event: RegistryEvent) -> JSON | None:
        """The notification this stream is sent for ``event``, if it asked for it."""
        if isinstance(event, ListChanged):
            if event.kind not in self.lists:
                return None
            return notification_message(LIST_NOTIFICATIONS[event.kind], subscription_meta(self.rid))
        if isinstance(event, ResourceUpdated) and event.uri in self.uris:
            params = {"uri": event.uri, **subscription_meta(self.rid)}
            return notification_message("notifications/resources/updated", params)
        if isinstance(event, LogMessage) and event.about in self.uris:
            params = {**_log_params(event), **subscription_meta(self.rid)}
            return notification_message("notifications/message", params)
        return None

    def on_task(self, record: McpTaskRecord) -> JSON | None:
        """The ``notifications/tasks`` message for ``record``, if this stream asked for it."""
        if self.task_ids is None or record.task_id not in self.task_ids:
            return None
        params = {**record.modern_json(inline=True), **subscription_meta(self.rid)}
        return notification_message("notifications/tasks", params)

    def acknowledgement(self) -> JSON:
        """The first event: what this stream will carry."""
        honoured: JSON = {LISTEN_FLAGS[kind]: True for kind in sorted(self.lists)}
        if self.uris:
            honoured["resourceSubscriptions"] = sorted(self.uris)
        if self.task_ids is not None:
            honoured["taskIds"] = sorted(self.task_ids)
        ack = {"notifications": honoured, **subscription_meta(self.rid)}
        return notification_message("notifications/subscriptions/acknowledged", ack)


def listen_filter_schema(max_entries: int) -> JSON:
    """What ``subscriptions/listen`` may ask for: flags, and bounded lists of bounded strings."""

    def strings(max_chars: int) -> JSON:
        items = {"type": "string", "maxLength": max_chars}
        return {"type": ["array", "null"], "maxItems": max_entries, "items": items}

    flags: JSON = {flag: {"type": ["boolean", "null"]} for flag in LISTEN_FLAGS.values()}
    return {
        "type": "object",
        "properties": {
            **flags,
            "resourceSubscriptions": strings(_MAX_URI_CHARS),
            "taskIds": strings(_MAX_TASK_ID_CHARS),
        },
    }


def read_listen_filter(schema: JSON, rid: RequestId, params: JSON) -> ListenFilter:
    """The filter a ``subscriptions/listen`` request asks for; ``InvalidParams`` when malformed."""
    wanted = params.get("notifications")
    error = validate(schema, wanted, "$.params.notifications")
    if error is not None or type(wanted) is not dict:
        raise InvalidParams(error or "expected object @ $.params.notifications")
    task_ids = wanted.get("taskIds")
    return ListenFilter(
        rid=rid,
        lists=frozenset(kind for kind, flag in LISTEN_FLAGS.items() if wanted.get(flag) is True),
        uris=frozenset(wanted.get("resourceSubscriptions") or []),
        task_ids=frozenset(task_ids) if task_ids is not None else None,
    )


def subscription_meta(rid: RequestId) -> JSON:
    """The ``_meta`` that ties a notification to its listen stream."""
    return {"_meta": {META_SUBSCRIPTION: rid}}
