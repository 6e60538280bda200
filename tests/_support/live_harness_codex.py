"""A small trio harness that runs the real ``codex app-server`` under ``CodexLiveDriver``.

No daemon: the harness spawns the CLI in its own process group (``start_new_session``) with
stdin/stdout pipes, feeds every stdout line to the driver, writes the driver's writes, and kills
the whole group when the block ends (or when the driver asks ``end_process``). It keeps what the
driver produced (events, asks, finished turns) for the test, and a transcript of the session: the
driver calls made (``{"do": ...}``), every line Codex printed (``{"codex": line}``) and every line
written to it (``{"wrote": line}``), in order, which ``tests/host_daemon/fixtures`` keeps as
``live_codex_*.jsonl`` and ``test_daemon_live_codex`` replays without the CLI.

Usage::

    async with open_live_codex(executable, request, env=env) as live:
        await live.start("make f.txt")
        ask = await live.next_ask()
        await live.decide(ask.request_id, "allow")
        finished = await live.turn_finished()
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from host_daemon._live_codex import CODEX_LIVE, CodexLiveDriver
from host_daemon._live_driver import DriverOutput, PermissionAsk
from host_daemon._records import AgentEvent, ApprovalBehavior, RunFinished, RunRequest

__all__ = ["LiveCodex", "open_live_codex"]


@attrs.define(eq=False)
class LiveCodex:
    """One live ``codex app-server`` process and its driver (see the module docstring)."""

    process: trio.Process
    driver: CodexLiveDriver
    argv: list[str]
    events: list[AgentEvent] = attrs.field(factory=list)
    asks: list[PermissionAsk] = attrs.field(factory=list)
    finished: list[RunFinished] = attrs.field(factory=list)
    transcript: list[dict[str, Any]] = attrs.field(factory=list)
    ended_process: bool = False
    exit_finished: RunFinished | None = None
    _write_lock: trio.Lock = attrs.field(factory=trio.Lock)
    _changed: trio.Event = attrs.field(factory=trio.Event)
    _asks_taken: int = 0
    _turns_taken: int = 0
    _stdout_done: trio.Event = attrs.field(factory=trio.Event)

    # -- what the test does ---------------------------------------------------------------------

    async def start(self, prompt: str) -> None:
        """The first turn (the handshake goes first)."""
        await self._do({"do": "start", "prompt": prompt}, self.driver.start(prompt))

    async def prompt(self, text: str) -> None:
        """The next turn in the same thread."""
        await self._do({"do": "prompt", "text": text}, self.driver.prompt(text))

    async def steer(self, text: str) -> None:
        """More input into the running turn."""
        await self._do({"do": "steer", "text": text}, self.driver.steer(text))

    async def decide(
        self, request_id: str, behavior: ApprovalBehavior, message: str | None = None
    ) -> None:
        """Answer a permission request."""
        step = {"do": "decide", "request_id": request_id, "behavior": behavior, "message": message}
        await self._do(step, self.driver.decide(request_id, behavior, message=message))

    async def interrupt(self) -> None:
        """Stop the running turn."""
        await self._do({"do": "interrupt"}, self.driver.interrupt())

    async def close(self) -> None:
        """End the session politely (the driver closes stdin)."""
        await self._do({"do": "close"}, self.driver.close())

    async def next_ask(self) -> PermissionAsk:
        """The next permission request not yet taken, waiting for it."""
        while len(self.asks) <= self._asks_taken:
            await self._wait_change("a permission request")
        self._asks_taken += 1
        return self.asks[self._asks_taken - 1]

    async def turn_finished(self) -> RunFinished:
        """The next turn's ``RunFinished`` not yet taken, waiting for it."""
        while len(self.finished) <= self._turns_taken:
            await self._wait_change("the end of the turn")
        self._turns_taken += 1
        return self.finished[self._turns_taken - 1]

    async def wait_for_event(self, kind: str, **fields: Any) -> AgentEvent:
        """The first event of ``kind`` whose fields equal ``fields``, waiting for it."""
        while True:
            for event in self.events:
                if event.kind == kind and all(getattr(event, k) == v for k, v in fields.items()):
                    return event
            await self._wait_change(f"a {kind} event")

    async def wait_exited(self) -> int:
        """The process's exit status, once its stdout ended and it exited."""
        await self._stdout_done.wait()
        return await self.process.wait()

    # -- plumbing -------------------------------------------------------------------------------

    async def _wait_change(self, what: str) -> None:
        if self._stdout_done.is_set():
            raise AssertionError(f"codex exited while the test waited for {what}")
        await self._changed.wait()

    def _note(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _do(self, step: dict[str, Any], out: DriverOutput) -> None:
        self.transcript.append(step)
        await self._apply(out)

    async def _apply(self, out: DriverOutput) -> None:
        self.events.extend(out.events)
        self.asks.extend(out.asks)
        if out.turn_finished is not None:
            self.finished.append(out.turn_finished)
        async with self._write_lock:
            for line in out.writes:
                self.transcript.append({"wrote": line.decode()})
                if self.process.stdin is not None:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await self.process.stdin.send_all(line)
            if out.close_stdin and self.process.stdin is not None:
                await self.process.stdin.aclose()
        if out.end_process:
            self.ended_process = True
            _kill_group(self.process.pid)
        self._note()

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                line = raw.decode("utf-8", errors="replace")
                self.transcript.append({"codex": line})
                await self._apply(self.driver.feed(line, truncated=False))
        status = await self.process.wait()
        code = status if status >= 0 else None
        sig = -status if status < 0 else None
        reason = "exited" if not self.ended_process else "killed"
        self.exit_finished = self.driver.finish(code, sig, reason=reason)
        self._stdout_done.set()
        self._note()

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        buffer = b""
        async for chunk in self.process.stderr:
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                self.driver.note_stderr(raw.decode("utf-8", errors="replace"))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@asynccontextmanager
async def open_live_codex(
    executable: str,
    request: RunRequest,
    *,
    env: Mapping[str, str],
    permission_mode: str = "workspace-write",
) -> AsyncIterator[LiveCodex]:
    """Spawn ``codex app-server`` for ``request`` (cwd ``request.cwd``); kill its group after."""
    argv = CODEX_LIVE.live_argv(executable, request, permission_mode)
    process = await trio.lowlevel.open_process(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=request.cwd,
        env=dict(env),
        start_new_session=True,
    )
    live = LiveCodex(process, CODEX_LIVE.new_driver(request), argv)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(live._read_stdout)
            nursery.start_soon(live._read_stderr)
            try:
                yield live
            finally:
                _kill_group(process.pid)
    finally:
        _kill_group(process.pid)
        with trio.move_on_after(10) as cleanup:
            cleanup.shield = True
            await process.wait()
