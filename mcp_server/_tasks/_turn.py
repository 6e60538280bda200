"""One turn's run in flight: the daemon's request for it, how to stop it, and (live) how to
reach its agent while it works.

:class:`RunInFlight` is the runner's handle on a run (its cancel scope, when it started and
ended, why the server stopped it); a live turn adds a :class:`LiveTurn`, the send side of the
daemon's stream (decisions, steering, interrupts) and what was sent on it.
"""

from __future__ import annotations

import collections
from typing import Protocol

import attrs
import trio

from host_daemon import DaemonError, InputAccepted, PermissionDecision, RunRequest, RunStarted

from ._errors import RunNotStarted
from ._model import RunOutcome, Task

STEER_TIMEOUT_S = 10.0
"""How long steering waits for the daemon's ``input_accepted``."""


def run_request(task: Task, live_idle_s: float) -> RunRequest:
    """What the daemon is asked for the task's latest turn."""
    options = task.options
    return RunRequest(
        agent=task.agent,
        prompt=task.turns[-1].instructions,
        cwd=task.cwd,
        resume_session_id=task.session_id if task.runs > 1 else None,
        model=options.model,
        max_turns=options.max_turns,
        max_budget_usd=options.max_budget_usd,
        permission_mode=options.permission_mode,
        timeout_s=options.timeout_s,
        worktree=task.id if task.has_open_worktree else None,
        live=task.live,
        session_key=task.id if task.live else None,
        idle_timeout_s=live_idle_s if task.live else None,
        approval_timeout_s=options.approval_timeout_s,
        allow_rules=None if options.allow_rules is None else list(options.allow_rules),
        deny_rules=list(options.deny_rules),
        granted_rules=list(task.granted_rules),
        run_id=task.run_id,
    )


class RunControl(Protocol):
    """The send side of a live run's stream (``host_daemon.RunStream``)."""

    async def steer(self, text: str) -> None: ...

    async def decide(self, decision: PermissionDecision) -> None: ...

    async def interrupt(self) -> None: ...


@attrs.define(eq=False)
class LiveTurn:
    """One live turn in flight: how to reach its agent, and what was sent to it."""

    control: RunControl
    started: RunStarted
    deciding: dict[str, str] = attrs.field(factory=dict)
    """Request id -> who sent a decision the daemon has not confirmed yet."""
    _steers: collections.deque[_Answer] = attrs.field(factory=collections.deque)
    ended: bool = False

    @property
    def steerable(self) -> bool:
        return self.started.live and self.started.steerable and not self.ended

    async def steer(self, text: str) -> InputAccepted:
        """Send ``text`` into the running turn; the daemon's answer (or why there is none)."""
        answer = _Answer()
        self._steers.append(answer)
        try:
            await self.control.steer(text)
        except DaemonError:
            self._steers.remove(answer)
            raise
        with trio.move_on_after(STEER_TIMEOUT_S):
            await answer.done.wait()
        if answer.value is None:
            return InputAccepted(False, f"the daemon did not answer within {STEER_TIMEOUT_S:g} s")
        return answer.value

    def accepted(self, value: InputAccepted) -> None:
        """The daemon's answer to the oldest steer not yet answered."""
        if self._steers:
            self._steers.popleft().set(value)

    def end(self) -> None:
        """The turn is over: steers still waiting learn that they missed it."""
        self.ended = True
        while self._steers:
            self._steers.popleft().set(InputAccepted(False, "the turn ended first"))


@attrs.define(eq=False)
class _Answer:
    done: trio.Event = attrs.field(factory=trio.Event)
    value: InputAccepted | None = None

    def set(self, value: InputAccepted) -> None:
        self.value = value
        self.done.set()


@attrs.define(eq=False)
class RunInFlight:
    """One turn's run while it is in flight: how to stop it, and how it started and ended."""

    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    started: trio.Event = attrs.field(factory=trio.Event)
    done: trio.Event = attrs.field(factory=trio.Event)
    stop_reason: RunOutcome | None = None
    stop_message: str | None = None  # why, when the server stopped the run (not the client)
    start_error: tuple[str, str] | None = None  # (code, message) when the daemon refused
    control: LiveTurn | None = None  # a live turn's channel to its agent, once started
    asked_to_stop: bool = False  # interrupt_task: the turn ends, the task waits for the next
    task: Task | None = None  # its record when the run was begun (the project gate reads it)
    requeued: str | None = None  # why the daemon refused to start it (busy): queued again
    daemon_seq: int = 0  # the last frame of the run recorded (a detachable run's frames count)
    detaching: bool = False  # the server stops following it: no cancel, its end not recorded
    gone: bool = False  # the daemon no longer has the run (or cannot be reached): nothing to cancel
    reattached: bool = False  # its stream was lost and attached again (a restart, a blip)

    def failed(self, code: str, message: str) -> str:
        """Note why the run failed (a start error if it never started); returns ``message``."""
        if not self.started.is_set():
            self.start_error = (code, message)
        return message

    async def wait_started(self, task_id: str) -> None:
        await self.started.wait()
        if self.start_error is not None or self.requeued is not None:
            await self.done.wait()
        if self.start_error is not None:
            raise RunNotStarted(task_id, *self.start_error)
