"""One request's protocol context and the ``RequestContext`` a handler sees.

``Envelope`` is what the dispatcher knows of a request (era, version, capabilities, log level,
progress token); ``HandlerContext`` turns a handler's progress, logs and input asks into
messages through the ``Peer`` the transport passes in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

import attrs

from . import _versions as v
from ._concurrency import McpEvent, McpTaskGroup
from ._errors import MissingCapability
from ._jsonrpc import RequestId
from ._mcp_tasks import McpTaskRecord
from ._registry import JSON, LogLevel

LOG_LEVELS: Final[dict[str, int]] = {
    name: rank
    for rank, name in enumerate(
        ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
    )
}


class Peer(Protocol):
    """What the transport offers one request: related messages on its response stream."""

    async def notify(self, method: str, params: JSON) -> None:
        """Send a notification related to the request."""

    async def request(self, method: str, params: JSON) -> JSON:
        """Send a server→client request and await its result (legacy sessions only)."""

    def close_stream(self) -> None:
        """End the request's SSE response early; the client resumes it with GET."""


@attrs.define(eq=False)
class SessionState:
    """A legacy session's protocol state; the transport owns its streams."""

    session_id: str
    version: str
    client_capabilities: JSON
    client_info: JSON
    log_level: LogLevel | None = None
    subscriptions: set[str] = attrs.field(factory=set)
    initialized: bool = False
    peer: Peer | None = None
    """The standalone (GET) stream: task notifications and requests made outside a request."""


@attrs.frozen
class Envelope:
    """One request's protocol context."""

    era: v.Era
    version: str
    client_capabilities: JSON
    log_level: LogLevel | None
    progress_token: str | int | None
    session: SessionState | None = None
    input_responses: JSON | None = None
    request_state: Any = None


class NeedInput(Exception):
    """A modern-leg handler needs client input: the call ends with ``input_required``."""

    def __init__(self, requests: dict[str, JSON]) -> None:
        super().__init__("input required")
        self.requests = requests


_DEFAULT_KEYS: Final = {
    "elicitation/create": "elicit",
    "sampling/createMessage": "sample",
    "roots/list": "roots",
}
_CAPABILITY_OF: Final = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}


PRE_TASK_WINDOW_S: Final = 0.05
"""How long a 2026-07-28 task call waits for ``ask(..., before_task=True)`` (a timing rule).

The call answers as soon as the handler decides: it asks ``before_task`` input (missing answers
end the call ``input_required``, no task is created), or it reports progress, logs, asks
ordinary input or returns (the task is announced). A handler that does none of these within
the window gets its task announced at the window's end; a ``before_task`` ask after that is
treated as ordinary input asked by the running task. So a handler that needs input before its
task must ask it first, before any slow work. Waiting without a bound instead would hold every
silent long-running call until it finished, which is what a task exists to avoid.
"""


@attrs.define(eq=False)
class PreTask:
    """A 2026-07-28 task call not yet answered: its handler may still ask for pre-task input."""

    group: McpTaskGroup
    decided: McpEvent = attrs.field(
        default=attrs.Factory(lambda self: self.group.event(), takes_self=True)
    )
    need: dict[str, JSON] | None = None


@attrs.define(eq=False)
class HandlerContext:
    """The ``RequestContext`` a handler sees."""

    env: Envelope
    peer: Peer
    rid: RequestId
    task: McpTaskRecord | None = None
    answers: dict[str, Any] = attrs.field(factory=dict)
    pre_task: PreTask | None = None
    committed: McpEvent | None = None
    """Set at the handler's first commit (see :meth:`commit`), for whoever waits to announce."""
    _counter: int = 0
    _last_progress: float | None = None

    @property
    def request_id(self) -> str | int:
        return self.rid

    @property
    def as_task(self) -> bool:
        return self.task is not None

    @property
    def task_id(self) -> str | None:
        return None if self.task is None else self.task.task_id

    @property
    def client_capabilities(self) -> JSON:
        return self.env.client_capabilities

    def report_status(self, message: str) -> None:
        self.commit()
        if self.task is not None:
            self.task.set_message(message)

    def close_sse_stream(self) -> None:
        if self.env.era == "legacy" and self.task is None:
            self.peer.close_stream()

    def commit(self) -> None:
        """The handler is past its pre-task input: the task can be announced."""
        if self.pre_task is not None:
            self.pre_task.decided.set()
            self.pre_task = None
        if self.committed is not None:
            self.committed.set()

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        self.commit()
        if self.env.progress_token is None:
            return
        if self._last_progress is not None and progress < self._last_progress:
            progress = self._last_progress
        self._last_progress = progress
        params: JSON = {"progressToken": self.env.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.peer.notify("notifications/progress", params)

    async def log(self, level: LogLevel, data: Any, logger: str | None = None) -> None:
        self.commit()
        threshold = self.env.session.log_level if self.env.session else self.env.log_level
        if self.env.era == "modern" and threshold is None:
            return
        if threshold is not None and LOG_LEVELS[level] < LOG_LEVELS[threshold]:
            return
        params: JSON = {"level": level, "data": data}
        if logger is not None:
            params["logger"] = logger
        await self.peer.notify("notifications/message", params)

    async def elicit(self, message: str, requested_schema: JSON, *, key: str | None = None) -> JSON:
        params = {"message": message, "requestedSchema": requested_schema}
        return await self._one("elicitation/create", params, key)

    async def sample(self, params: JSON, *, key: str | None = None) -> JSON:
        return await self._one("sampling/createMessage", params, key)

    async def list_roots(self, *, key: str | None = None) -> JSON:
        return await self._one("roots/list", {}, key)

    async def _one(self, method: str, params: JSON, key: str | None) -> JSON:
        if key is None:
            key = f"{_DEFAULT_KEYS[method]}-{self._counter}"
            self._counter += 1
        return (await self.ask({key: (method, params)}))[key]

    async def ask(
        self, requests: Mapping[str, tuple[str, JSON]], *, before_task: bool = False
    ) -> dict[str, JSON]:
        self._check_capabilities(requests)
        pre = self.pre_task
        if pre is not None and before_task:
            missing = {
                key: {"method": method, "params": params}
                for key, (method, params) in requests.items()
                if key not in self.answers
            }
            if missing:
                pre.need = missing
                pre.decided.set()
                await pre.group.park()
            return {key: self.answers[key] for key in requests}
        self.commit()
        if self.task is not None and self.env.era == "modern":
            return await self._ask_parked(requests)
        if self.env.era == "modern":
            missing = {
                key: {"method": method, "params": params}
                for key, (method, params) in requests.items()
                if key not in self.answers
            }
            if missing:
                raise NeedInput(missing)
            return {key: self.answers[key] for key in requests}
        peer = self.peer
        if self.task is not None and self.env.session is not None:
            peer = self.env.session.peer or self.peer
            self.task.set_status("input_required")
        results: dict[str, JSON] = {}
        for key, (method, params) in requests.items():
            results[key] = await peer.request(method, params)
        if self.task is not None:
            self.task.set_status("working")
        return results

    async def _ask_parked(self, requests: Mapping[str, tuple[str, JSON]]) -> dict[str, JSON]:
        task = self.task
        assert task is not None  # noqa: S101 (only called for tasks)
        for key, (method, params) in requests.items():
            if key not in task.input_answers:
                task.input_requests[key] = {"method": method, "params": params}
        if task.input_requests:
            task.set_status("input_required")
        while any(key not in task.input_answers for key in requests):
            await task.input_arrived.wait()
        return {key: task.input_answers.pop(key) for key in requests}

    def _check_capabilities(self, requests: Mapping[str, tuple[str, JSON]]) -> None:
        caps = self.env.client_capabilities
        for method, _ in requests.values():
            capability = _CAPABILITY_OF.get(method)
            if capability is not None and not isinstance(caps.get(capability), dict):
                raise MissingCapability(f"Client does not support {method}", {capability: {}})
