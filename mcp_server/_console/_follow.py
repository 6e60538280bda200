"""Following a task's log: paged ``task://ID/logs/AFTER`` reads, woken by the server.

A follower subscribes to ``task://ID/logs`` and listens on the session's GET stream: each
``notifications/resources/updated`` for it wakes the next read. A missed or absent notification
costs at most ``POLL_S`` (the follower reads again then), so it never hangs on a lost message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from ._client import McpSession
from ._render import ACTIVE

JSON = dict[str, Any]
POLL_S = 5.0
"""The longest a follower waits without a notification before reading again."""


class _Wakeup:
    """Set when the followed resource changed; reset before each read (no change is lost)."""

    def __init__(self) -> None:
        self.event = trio.Event()

    def reset(self) -> None:
        if self.event.is_set():
            self.event = trio.Event()

    async def wait(self, timeout_s: float) -> None:
        with trio.move_on_after(timeout_s):
            await self.event.wait()

    async def watch(self, session: McpSession, uri: str) -> None:
        """Set on every update of ``uri`` the session's GET stream carries."""
        send, receive = trio.open_memory_channel[JSON](64)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.listen, send)
            async with receive:
                async for message in receive:
                    params = message.get("params")
                    if (
                        message.get("method") == "notifications/resources/updated"
                        and isinstance(params, dict)
                        and params.get("uri") == uri
                    ):
                        self.event.set()


async def follow_logs(
    session: McpSession,
    task_id: str,
    emit: Callable[[JSON], None],
    *,
    live: bool,
    after: int = 0,
    on_page: Callable[[JSON], None] = lambda page: None,
) -> JSON:
    """``emit`` every event of the task's log after seq ``after``, in order; with ``live``, go
    on until the task is neither pending nor in progress. Returns the last page read (its
    ``status`` is the task's)."""
    uri = f"task://{task_id}/logs"
    wakeup = _Wakeup()
    failure: Exception | None = None
    page: JSON = {}
    async with trio.open_nursery() as nursery:
        try:
            if live:
                await session.request("resources/subscribe", {"uri": uri})
                nursery.start_soon(wakeup.watch, session, uri)
            while True:
                wakeup.reset()
                page = await session.read_json(f"{uri}/{after}")
                on_page(page)
                for event in page["events"]:
                    emit(event)
                    after = int(event["seq"])
                if page.get("next"):
                    continue
                if not live or page["status"] not in ACTIVE:
                    break
                await wakeup.wait(POLL_S)
        except Exception as exc:  # re-raised below, outside the nursery
            failure = exc
        finally:
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return page
