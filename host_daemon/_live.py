"""Live sessions: agent processes kept alive between turns, owned by the daemon.

A ``LiveSession`` is one agent process (its own process group, a stdin pipe) and its driver
(``_live_driver``), keyed by the client's ``session_key``. ``LiveSessions`` owns them all in one
nursery started by ``serve_daemon``: a session outlives the connections of its turns, never the
daemon.

A turn is one connection (``_live_turn``): the prompt goes to the session (spawned or resumed if
needed), the session's output pump turns what the agent prints into frames for that turn's
client, and the turn ends when the driver says so. Between turns the session is idle; after
``min(request.idle_timeout_s, --live-idle-s)`` idle it is closed politely (stdin closed, the
group killed after the kill grace) and the next turn resumes the conversation by session id.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Final

import attrs
import trio

from ._config import DaemonConfig
from ._live_adapters import LIVE_ADAPTERS
from ._live_driver import DriverOutput, DriverRefused, LiveDriver, PermissionAsk
from ._live_permissions import LiveTurn, PendingAsk, resolved_frame
from ._output import OutputLine
from ._parsers import Reason
from ._plan import RequestError, RunPlan
from ._process import ExitStatus, GroupProcess, StdinClosed, spawn_group
from ._protocol import encode_frame
from ._records import (
    AgentEvent,
    ApprovalBehavior,
    DecidedBy,
    PermissionRequest,
    RunFinished,
)
from ._rules import Policy, Verdict

__all__ = ["LiveSession", "LiveSessions", "approval_timeout"]

log = logging.getLogger("host_daemon")

#: Output lines taken from a live agent at once (see ``_server._SEND_BATCH_BYTES``).
_SEND_BATCH_BYTES: Final = 256 * 1024


def _fields(**fields: object) -> dict[str, Any]:
    return {"fields": fields}


class LiveSession:
    """One live agent process and its driver; see the module docstring."""

    def __init__(self, owner: LiveSessions, key: str, plan: RunPlan, driver: LiveDriver) -> None:
        self.owner = owner
        self.key = key
        self.agent = plan.request.agent
        self.cwd = plan.directory.path
        self.argv = plan.argv
        self.driver = driver
        self.pid = 0
        self.proc: GroupProcess | None = None
        self.turn: LiveTurn | None = None
        #: Rules a person allowed for the rest of the session (``remember_rule``).
        self.remembered: list[str] = []
        self.request = plan.request
        self.idle_since = trio.current_time()
        self.idle_timeout_s = owner.config.live_idle_s
        self._scope = trio.CancelScope()
        self._idle_scope: trio.CancelScope | None = None
        self._ended = trio.Event()
        self.closed = False
        #: A turn's connection holds the session (from ``session_for`` to the turn's end).
        self.claimed = False
        #: The session is ending (closing politely, or its agent's output ended).
        self.closing = False
        #: Why the daemon ended the process (None: it exited by itself).
        self._kill_reason: Reason | None = None
        self._interrupted_by_end = False
        #: Prefixes the driver's request ids in what the client sees: a CLI's own ids restart
        #: with each process (Codex counts from 0, Gemini's are ``acp-<n>``), the client's must
        #: stay unique for the key across processes (one prefix per spawn, see ``client_ask``).
        self.id_prefix = f"{owner.next_spawn()}."
        #: An interrupt was asked in the turn running now.
        self._interrupt_requested = False
        #: The driver's end of the turn that came with ``end_process``.
        self._final: RunFinished | None = None

    # -- state --------------------------------------------------------------------------------

    @property
    def in_turn(self) -> bool:
        """A turn runs, or a turn's connection has claimed the session and is starting it."""
        return self.turn is not None or self.claimed

    def compatible(self, plan: RunPlan) -> bool:
        """Whether the next turn of ``plan`` can go to this process (same agent, place, talk)."""
        resume = plan.request.resume_session_id
        return (
            not self.closed
            and not self.closing
            and self.agent == plan.request.agent
            and self.cwd == plan.directory.path
            and (resume is None or resume == self.driver.session_id)
        )

    def _set_idle_deadline(self) -> None:
        if self._idle_scope is not None:
            idle = self.turn is None
            deadline = self.idle_since + self.idle_timeout_s if idle else math.inf
            self._idle_scope.deadline = deadline

    # -- the session's own task ---------------------------------------------------------------

    async def main(self, plan: RunPlan, task_status: trio.TaskStatus[None]) -> None:
        """Spawn the agent, pump its output until it ends, then report to a turn in flight."""
        status: ExitStatus | None = None
        config = self.owner.config
        try:
            with self._scope:
                async with spawn_group(
                    plan.argv,
                    cwd=plan.directory.fd,
                    env=self.owner.env,
                    kill_grace=config.kill_grace_s,
                    max_output_bytes=config.max_output_bytes,
                    max_line_bytes=config.max_line_bytes,
                    stdin=True,
                ) as proc:
                    self.proc = proc
                    self.pid = proc.pid
                    task_status.started()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._watch_idle)
                        await self._pump(proc)
                        self.closing = True
                        status = await proc.wait()
                        nursery.cancel_scope.cancel()
        finally:
            self.closed = True
            self.owner._forget(self)
            self._ended.set()
            self._report_end(status)

    def _report_end(self, status: ExitStatus | None) -> None:
        turn = self.turn
        reason: Reason = "exited" if status is not None else (self._kill_reason or "killed")
        finished = self.driver.finish(
            None if status is None else status.exit_code,
            None if status is None else status.signal,
            reason=reason,
        )
        log.info(
            "live session ended",
            extra=_fields(key=self.key, pid=self.pid, reason=reason, in_turn=turn is not None),
        )
        if turn is None:
            return
        if self._final is not None:
            finished = self._final
        elif self._interrupted_by_end:
            finished = attrs.evolve(
                finished, outcome="interrupted", error="the turn was interrupted"
            )
        self.turn = None
        capped = self.proc is not None and self.proc.output_capped
        turn.finish(
            attrs.evolve(
                finished, session_open=False, output_truncated=finished.output_truncated or capped
            )
        )

    async def _watch_idle(self) -> None:
        while True:
            with trio.CancelScope() as scope:
                self._idle_scope = scope
                self._set_idle_deadline()
                await trio.sleep_forever()
            if self.turn is None and trio.current_time() >= self.idle_since + self.idle_timeout_s:
                log.info(
                    "live session idle, closing",
                    extra=_fields(key=self.key, idle_s=self.idle_timeout_s),
                )
                # From inside the session's own tasks: never wait here for the session's end.
                if not await self._say_goodbye():
                    self.cancel("killed")
                return

    async def _pump(self, proc: GroupProcess) -> None:
        while batch := await proc.next_batch(_SEND_BATCH_BYTES):
            frames = bytearray()
            for line in batch:
                frames = await self._line(line, frames)
            await self._flush(frames)
            if proc.output_capped:  # nothing more of it can be read: no turn could end
                log.warning("live session output limit reached", extra=_fields(key=self.key))
                self.cancel("killed")
                return

    async def _line(self, line: OutputLine, frames: bytearray) -> bytearray:
        text = line.data.decode("utf-8", errors="replace").rstrip("\r\n")
        if line.stream == "stderr":
            self.driver.note_stderr(text)
            event = AgentEvent(kind="stderr", raw=text, text=text, truncated=line.truncated)
            return self._add(frames, [event])
        out = self.driver.feed(text, truncated=line.truncated)
        return await self.apply(out, frames)

    def _add(self, frames: bytearray, messages: list[Any]) -> bytearray:
        if self.turn is not None:
            for message in messages:
                frames += encode_frame(message)
        return frames

    async def _flush(self, frames: bytearray) -> bytearray:
        if self.turn is not None and frames:
            await self.turn.send(frames)
        return bytearray()

    async def apply(self, out: DriverOutput, frames: bytearray | None = None) -> bytearray:
        """Carry out one driver step: frames to the turn, asks resolved, lines to the agent."""
        frames = self._add(bytearray() if frames is None else frames, list(out.events))
        for ask in out.asks:
            frames = await self._ask(ask, frames)
        if out.writes or out.close_stdin or out.end_process or out.turn_finished:
            frames = await self._flush(frames)
        await self._write(out.writes)
        if out.close_stdin and self.proc is not None:
            await self.proc.close_stdin()
        if out.end_process:
            # The turn's end is reported when the group is gone (``_report_end``): the
            # driver's own end if it gave one, else ``interrupted`` after an interrupt.
            self._final = out.turn_finished
            self._interrupted_by_end = self._interrupt_requested
            self.cancel("killed")
        if out.turn_finished is not None and self.turn is not None and not out.end_process:
            turn, self.turn = self.turn, None
            self.idle_since = trio.current_time()
            self._set_idle_deadline()
            turn.finish(out.turn_finished)
        return frames

    async def _write(self, writes: list[bytes]) -> None:
        if self.proc is None:
            return
        for data in writes:
            try:
                await self.proc.write_stdin(data)
            except StdinClosed as exc:
                log.warning("live session stdin gone", extra=_fields(key=self.key, error=str(exc)))
                return

    # -- permission requests ------------------------------------------------------------------

    def client_ask(self, ask: PermissionAsk) -> PermissionAsk:
        """``ask`` as the client sees it: its request id made unique across the key's spawns."""
        return attrs.evolve(ask, request_id=self.id_prefix + ask.request_id)

    def _driver_id(self, client_id: str) -> str:
        return client_id.removeprefix(self.id_prefix)

    async def _ask(self, driver_ask: PermissionAsk, frames: bytearray) -> bytearray:
        ask = self.client_ask(driver_ask)
        request = self.request
        verdict = self.owner.policy.decide(
            ask.tool_name,
            ask.input,
            self.cwd,
            task_allow=request.allow_rules,
            task_deny=request.deny_rules,
            granted=[*request.granted_rules, *self.remembered],
        )
        turn = self.turn
        if verdict is None and turn is None:  # nobody to ask: the agent asked between turns
            verdict = Verdict("deny", "", "no turn is running: denied by the daemon")
        if verdict is not None:
            out = self.driver.decide(
                driver_ask.request_id, verdict.behavior, message=verdict.message
            )
            by: DecidedBy = "policy" if verdict.rule else "closed"
            resolved = resolved_frame(
                ask, verdict.behavior, by, message=verdict.message, rule=verdict.rule or None
            )
            frames = await self._flush(self._add(frames, [resolved]))
            await self._write(out.writes)
            return frames
        assert turn is not None  # noqa: S101 -- both None is handled above
        timeout = turn.approval_timeout_s
        scope = trio.CancelScope()
        turn.pending[ask.request_id] = PendingAsk(ask, scope)
        turn.nursery.start_soon(self._approval_timer, turn, ask, scope, timeout)
        return self._add(
            frames,
            [
                PermissionRequest(
                    request_id=ask.request_id,
                    tool_name=ask.tool_name,
                    input=ask.input,
                    timeout_s=timeout,
                    description=ask.description,
                    suggestions=ask.suggestions,
                    tool_use_id=ask.tool_use_id,
                    agent_tool_name=ask.agent_tool_name,
                )
            ],
        )

    async def _approval_timer(
        self, turn: LiveTurn, ask: PermissionAsk, scope: trio.CancelScope, timeout: float
    ) -> None:
        with scope:
            await trio.sleep(timeout)
            if turn.pending.pop(ask.request_id, None) is None:
                return
            message = f"no decision within {timeout:g} s: denied by the daemon"
            log.info(
                "permission request timed out",
                extra=_fields(key=self.key, request_id=ask.request_id, tool=ask.tool_name),
            )
            await self._resolve(turn, ask, "deny", "timeout", message=message)

    async def _resolve(
        self,
        turn: LiveTurn,
        ask: PermissionAsk,
        behavior: ApprovalBehavior,
        decided_by: DecidedBy,
        *,
        message: str | None = None,
        updated_input: dict[str, Any] | None = None,
        rule: str | None = None,
        decider: str | None = None,
    ) -> None:
        try:
            out = self.driver.decide(
                self._driver_id(ask.request_id),
                behavior,
                message=message,
                updated_input=updated_input,
            )
        except DriverRefused as exc:
            # The agent withdrew the request (Codex's ``serverRequest/resolved``): it is closed.
            log.warning("decision refused", extra=_fields(key=self.key, error=exc.message))
            closed = resolved_frame(ask, "deny", "closed", message="the agent withdrew it")
            await turn.send(encode_frame(closed))
            return
        resolved = resolved_frame(
            ask, behavior, decided_by, message=message, rule=rule, decider=decider
        )
        await turn.send(encode_frame(resolved))
        await self._write(out.writes)

    async def decide(
        self,
        request_id: str,
        behavior: ApprovalBehavior,
        *,
        message: str | None,
        updated_input: dict[str, Any] | None,
        remember_rule: str | None,
        decider: str | None,
    ) -> None:
        """The client's answer to a pending request; one that is not pending is logged only."""
        turn = self.turn
        pending = None if turn is None else turn.pending.pop(request_id, None)
        if turn is None or pending is None:
            log.info(
                "decision for a request that is not pending, ignored",
                extra=_fields(key=self.key, request_id=request_id),
            )
            return
        pending.timer.cancel()
        if remember_rule is not None and behavior == "allow":
            self.remembered.append(remember_rule)
        await self._resolve(
            turn,
            pending.ask,
            behavior,
            "client",
            message=message,
            updated_input=updated_input,
            rule=remember_rule,
            decider=decider,
        )

    # -- turns ----------------------------------------------------------------------------------

    async def begin(self, turn: LiveTurn, prompt: str, *, first: bool) -> None:
        """Start a turn: the prompt to the agent (the first one after the spawn, or the next)."""
        self.turn = turn
        self._interrupt_requested = False
        self._set_idle_deadline()
        out = self.driver.start(prompt) if first else self.driver.prompt(prompt)
        await self.apply(out)

    async def steer(self, text: str) -> str | None:
        """Steer the running turn: None when it reached the agent, else why not."""
        if self.turn is None:
            return "no turn is running"
        try:
            out = self.driver.steer(text)
        except DriverRefused as exc:
            return exc.message
        await self.apply(out)
        return None

    async def interrupt(self) -> None:
        """Stop the running turn (it ends ``interrupted``); the session stays unless the driver
        ends the process."""
        turn = self.turn
        if turn is None:
            return
        try:
            out = self.driver.interrupt()
        except DriverRefused as exc:
            log.info("interrupt refused", extra=_fields(key=self.key, error=exc.message))
            return
        self._interrupt_requested = True
        # The agent withdraws its open requests with the turn (Gemini's driver even answers
        # them itself): none can be decided any more, they are resolved ``closed`` now.
        for pending in turn.pending.values():
            pending.timer.cancel()
        await turn.send(turn.closing_frames())
        await self.apply(out)

    # -- ending -------------------------------------------------------------------------------

    def cancel(self, reason: Reason) -> None:
        """Start ending the process group (``kill`` waits for the end)."""
        if self._kill_reason is None:
            self._kill_reason = reason
        self._scope.cancel()

    async def kill(self, reason: Reason) -> None:
        """End the process group now; a turn in flight ends with ``reason``."""
        with trio.CancelScope(shield=True):
            if self._kill_reason is None:
                self._kill_reason = reason
            self._scope.cancel()
            await self._ended.wait()

    async def close(self, reason: Reason = "killed") -> None:
        """End politely: the driver's close (stdin closed), the kill grace, then the group."""
        with trio.CancelScope(shield=True):
            if self.closed:
                await self._ended.wait()
                return
            if self.turn is not None:
                await self.kill(reason)
                return
            if await self._say_goodbye():
                with trio.move_on_after(self.owner.config.kill_grace_s):
                    await self._ended.wait()  # its output ends, its stragglers are ended
            await self.kill(reason)

    async def _say_goodbye(self) -> bool:
        """The driver's polite end, then up to the kill grace for the agent to exit: whether
        it did."""
        self.closing = True
        try:
            out = self.driver.close()
        except DriverRefused:
            out = DriverOutput(close_stdin=True)
        await self.apply(out)
        if self.proc is None:
            return False
        with trio.move_on_after(self.owner.config.kill_grace_s):
            await self.proc.wait()
            return True
        return False


class LiveSessions:
    """Every live session of the daemon, in one nursery (``run`` is ``serve_daemon``'s task)."""

    def __init__(self, config: DaemonConfig, env: Mapping[str, str]) -> None:
        self.config = config
        self.env = env
        self.policy = Policy.from_texts(config.allow_rules, config.deny_rules)
        self.sessions: dict[str, LiveSession] = {}
        self._nursery: trio.Nursery | None = None
        self._choosing = trio.Lock()
        self._ready = trio.Event()
        self._spawns = 0

    def __len__(self) -> int:
        return len(self.sessions)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the sessions until cancelled (then every group is killed)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def next_spawn(self) -> int:
        """A number for a new session, unique in this daemon (see ``LiveSession.id_prefix``)."""
        self._spawns += 1
        return self._spawns

    def _forget(self, session: LiveSession) -> None:
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]

    async def session_for(self, plan: RunPlan) -> tuple[LiveSession, bool]:
        """The session for ``plan``'s key, claimed for the turn (the caller must ``release``
        it): the idle one that fits (reused), else a new one. One at a time: two turns for a
        new key must not both spawn, nor two new sessions both take the last place."""
        async with self._choosing:
            session, reused = await self._choose(plan)
            session.claimed = True
            return session, reused

    async def _choose(self, plan: RunPlan) -> tuple[LiveSession, bool]:
        key = plan.request.session_key
        assert key is not None  # noqa: S101 -- checked by plan_run
        current = self.sessions.get(key)
        if current is not None:
            if current.in_turn:
                raise RequestError(
                    "busy", f"live session {key!r} is in a turn: steer it or wait for its end"
                )
            if current.compatible(plan):
                current.request = plan.request
                current.idle_timeout_s = _idle_timeout(plan, self.config)
                return current, True
            log.info("live session does not fit the turn, closing", extra=_fields(key=key))
            await current.close()
        await self._make_room()
        return await self._spawn(key, plan), False

    async def _make_room(self) -> None:
        while len(self.sessions) >= self.config.max_live_sessions:
            idle = [session for session in self.sessions.values() if not session.in_turn]
            if not idle:
                raise RequestError(
                    "busy",
                    f"the daemon has {len(self.sessions)} live sessions in turns, its limit",
                )
            oldest = min(idle, key=lambda session: session.idle_since)
            log.info("live sessions full, closing the longest idle", extra=_fields(key=oldest.key))
            await oldest.close()

    async def _spawn(self, key: str, plan: RunPlan) -> LiveSession:
        adapter = LIVE_ADAPTERS[plan.request.agent]
        # The driver names the run's directory to the agent (Codex's thread, Gemini's session):
        # the real one the agent starts in, not the client's spelling (or the project of a
        # worktree run).
        request = attrs.evolve(plan.request, cwd=plan.directory.path)
        session = LiveSession(self, key, plan, adapter.new_driver(request))
        session.idle_timeout_s = _idle_timeout(plan, self.config)
        if self._nursery is None:
            raise RequestError("live_unsupported", "this daemon runs no live sessions")
        try:
            await self._nursery.start(session.main, plan)
        except OSError as exc:
            raise RequestError(
                "spawn_failed", f"cannot start {plan.argv[0]}: {exc.strerror or exc}"
            ) from None
        self.sessions[key] = session
        log.info(
            "live session started",
            extra=_fields(key=key, agent=plan.request.agent, pid=session.pid, cwd=session.cwd),
        )
        return session

    async def close(self, key: str) -> bool:
        """Close session ``key`` (a turn in flight ends ``killed``); whether one was open."""
        session = self.sessions.get(key)
        if session is None:
            return False
        await session.close()
        return True

    async def close_all(self) -> None:
        """Close every session politely, concurrently (shutdown)."""
        async with trio.open_nursery() as nursery:
            for session in list(self.sessions.values()):
                nursery.start_soon(session.close)

    def cancel_all(self) -> None:
        """End every session now, without waiting (``kill_runs``): turns end ``killed``."""
        for session in list(self.sessions.values()):
            session.cancel("killed")


def _idle_timeout(plan: RunPlan, config: DaemonConfig) -> float:
    asked = plan.request.idle_timeout_s
    return config.live_idle_s if asked is None else min(asked, config.live_idle_s)


def approval_timeout(requested: float | None, config: DaemonConfig) -> float:
    """``min(request.approval_timeout_s, --approval-timeout-s)``."""
    limit = config.approval_timeout_s
    return limit if requested is None else min(requested, limit)
