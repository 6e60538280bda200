"""A live driver on a real CLI process, without the daemon: for tests and fixture recordings.

    async with open_live_process(argv, driver, cwd=..., env=...) as live:
        await live.start("prompt")
        ask = await live.next_ask()
        await live.decide(ask.request_id, "allow")
        finished = await live.turn_finished()

The CLI runs in its own session and process group with stdin and stdout as pipes; what it prints
is fed to the driver line by line, and what the driver wants written is written, in order (one
lock). Leaving the block kills the whole process group and reaps the leader. ``transcript`` holds
every line both ways, and every call made on the driver, in order: ``{"call": name, ...}``,
``{"client": message}`` (written) and ``{"agent": message}`` (read).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import orjson
import trio

from host_daemon._live_driver import DriverOutput, LiveDriver, PermissionAsk
from host_daemon._records import AgentEvent, ApprovalBehavior, RunFinished

__all__ = ["LiveProcess", "open_live_process"]

_DEADLINE_S = 120.0


class LiveProcess:
    """One CLI process and its driver; see the module docstring."""

    def __init__(self, process: trio.Process, driver: LiveDriver) -> None:
        self.process = process
        self.driver = driver
        self.events: list[AgentEvent] = []
        self.asks: list[PermissionAsk] = []
        self.finished: list[RunFinished] = []
        self.stderr: list[str] = []
        self.transcript: list[dict[str, Any]] = []
        self.stdin_closed = False
        self._asks_taken = 0
        self._turns_taken = 0
        self._lock = trio.Lock()
        self._changed = trio.Event()
        self.exited = trio.Event()

    # -- calls on the driver ----------------------------------------------------------------------

    async def start(self, prompt: str) -> None:
        await self._apply("start", lambda: self.driver.start(prompt), prompt=prompt)

    async def prompt(self, text: str) -> None:
        await self._apply("prompt", lambda: self.driver.prompt(text), text=text)

    async def decide(
        self, request_id: str, behavior: ApprovalBehavior, message: str | None = None
    ) -> None:
        await self._apply(
            "decide",
            lambda: self.driver.decide(request_id, behavior, message=message),
            request_id=request_id,
            behavior=behavior,
            message=message,
        )

    async def interrupt(self) -> None:
        await self._apply("interrupt", self.driver.interrupt)

    async def close(self) -> None:
        await self._apply("close", self.driver.close)

    # -- waiting ----------------------------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait for ``condition`` (re-checked at each line or exit); fail after the deadline."""
        with trio.move_on_after(_DEADLINE_S):
            while not condition():
                await self._changed.wait()
            return
        tail = "\n".join(self.stderr[-10:])
        raise AssertionError(f"timed out waiting for {what}; stderr:\n{tail}")

    async def next_ask(self) -> PermissionAsk:
        """The next permission request the driver reported."""
        await self.wait_until(lambda: len(self.asks) > self._asks_taken, "a permission request")
        self._asks_taken += 1
        return self.asks[self._asks_taken - 1]

    async def turn_finished(self) -> RunFinished:
        """The next turn's end."""
        await self.wait_until(lambda: len(self.finished) > self._turns_taken, "the turn's end")
        self._turns_taken += 1
        return self.finished[self._turns_taken - 1]

    async def wait_exit(self) -> int:
        await self.wait_until(self.exited.is_set, "the process to exit")
        assert self.process.returncode is not None
        return self.process.returncode

    # -- plumbing ---------------------------------------------------------------------------------

    async def _apply(self, call: str, step: Callable[[], DriverOutput], **args: Any) -> None:
        self.transcript.append({"call": call, **args})
        await self._handle(step())

    async def _handle(self, output: DriverOutput) -> None:
        self.events += output.events
        self.asks += output.asks
        async with self._lock:
            for data in output.writes:
                self.transcript.append({"client": orjson.loads(data)})
                if not self.stdin_closed:
                    await self.process.stdin.send_all(data)  # type: ignore[union-attr]
            if output.close_stdin and not self.stdin_closed:
                self.stdin_closed = True
                await self.process.stdin.aclose()  # type: ignore[union-attr]
        if output.turn_finished is not None:
            self.finished.append(output.turn_finished)
        if output.end_process:
            _kill_group(self.process.pid)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _read_stdout(self) -> None:
        async for line in _lines(self.process.stdout):  # type: ignore[arg-type]
            with contextlib.suppress(orjson.JSONDecodeError):
                self.transcript.append({"agent": orjson.loads(line)})
            await self._handle(self.driver.feed(line, truncated=False))

    async def _read_stderr(self) -> None:
        async for line in _lines(self.process.stderr):  # type: ignore[arg-type]
            self.stderr.append(line)
            self.driver.note_stderr(line)

    async def _wait(self) -> None:
        await self.process.wait()
        self.exited.set()
        self._notify()


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")
    if buffer:
        yield buffer.decode(errors="replace")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def open_live_process(
    argv: Sequence[str], driver: LiveDriver, *, cwd: str, env: Mapping[str, str]
) -> AsyncIterator[LiveProcess]:
    """Run ``argv`` with ``driver`` for the block; then kill its process group and reap it."""
    process = await trio.lowlevel.open_process(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    live = LiveProcess(process, driver)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(live._read_stdout)
            nursery.start_soon(live._read_stderr)
            nursery.start_soon(live._wait)
            yield live
            nursery.cancel_scope.cancel()
    finally:
        _kill_group(process.pid)
        with trio.CancelScope(shield=True):
            await process.wait()
