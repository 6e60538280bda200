"""A webhook receiver on loopback for the notification tests: Hypercorn serving a bare ASGI app.

Every POST is recorded (path, headers, body, whether its signature verified with the secret the
test gave). What it answers is scripted: ``fail_first`` answers 500 to that many requests,
``hang_first`` leaves that many unanswered until the client gives up, ``refuse`` answers 503 to
everything while set, ``status`` answers a fixed status (410, 400 …). Deliveries are counted by
their ``X-Coding-Agent-Delivery`` id, so a test sees exactly-once-after-dedup.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from mcp_server._notify import DELIVERY_HEADER, verify

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@attrs.frozen
class Received:
    """One request as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int | None

    @property
    def delivery(self) -> str:
        return self.headers.get(DELIVERY_HEADER.lower(), "")


@attrs.define
class Receiver:
    """The receiver's script and what it saw."""

    secret: str
    url: str = ""
    fail_first: int = 0
    hang_first: int = 0
    refuse: bool = False
    status: int = 200
    requests: list[Received] = attrs.field(factory=list)

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        return [r for r in self.requests if r.answered is not None and 200 <= r.answered < 300]

    def delivered_ids(self) -> collections.Counter[str]:
        """Accepted requests per delivery id (each must be 1 after de-duplication)."""
        return collections.Counter(r.delivery for r in self.accepted())

    def unique_accepted(self) -> list[Received]:
        """The first accepted request of each delivery id: what a de-duplicating receiver
        keeps."""
        seen: dict[str, Received] = {}
        for request in self.accepted():
            seen.setdefault(request.delivery, request)
        return list(seen.values())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        verified = verify(self.secret, _Headers(headers), body, time.time())
        answer: int | None
        if self.hang_first > 0:
            self.hang_first -= 1
            answer = None
        elif self.refuse:
            answer = 503
        elif self.fail_first > 0:
            self.fail_first -= 1
            answer = 500
        else:
            answer = self.status
        self.requests.append(Received(scope["path"], headers, body, verified, answer))
        if answer is None:
            await trio.sleep_forever()  # the client's timeout ends it (a hung receiver)
        await send({"type": "http.response.start", "status": answer, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class _Headers(dict[str, str]):
    """Header lookup by any case, as frameworks give receivers."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@contextlib.asynccontextmanager
async def webhook_receiver(
    secret: str, *, port: int = 0, path: str = "/hook", **script: Any
) -> AsyncIterator[Receiver]:
    """Serve a :class:`Receiver` on ``127.0.0.1:port``; its ``url`` names ``path``."""
    receiver = Receiver(secret, **script)
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            _serve,
            receiver,
            config,
            stop,  # type: ignore[arg-type]
        )
        receiver.url = binds[0] + path
        try:
            yield receiver
        finally:
            stop.set()
            nursery.cancel_scope.deadline = trio.current_time() + 5


async def _serve(
    app: Receiver,
    config: Config,
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)  # type: ignore[arg-type]
