"""One live turn on one connection: the prompt in, the session's frames out, the client's answers.

The connection carries the turn: ``run_started``, the agent's events and permission frames (sent
by the session's output pump), one ``run_finished``. Meanwhile the client may send
``permission_decision``, ``turn_input`` and ``interrupt`` frames, read here. A client that goes
away mid-turn, a turn timeout or ``kill_runs`` end the whole session (its process group), as a
non-live run's end would.

A detachable turn (``run_id``) sends through its ``DetachableRun`` instead, and its client's
frames come from whichever stream is attached (``_detach``), through ``handle_control``; a
permission request pending while no stream is attached stays pending (it is replayed).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio

from ._connection import FramedStream, FrameSink
from ._detach import DetachableRun
from ._live import LiveSession, LiveSessions, approval_timeout
from ._live_permissions import LiveTurn
from ._parsers import Reason
from ._plan import RunPlan
from ._protocol import Message, ProtocolViolation, encode_frame
from ._records import (
    InputAccepted,
    Interrupt,
    PermissionDecision,
    RunFinished,
    RunStarted,
    TurnInput,
)

__all__ = ["ActiveTurn", "handle_control", "run_live_turn"]

log = logging.getLogger("host_daemon")


def _fields(**fields: object) -> dict[str, Any]:
    return {"fields": fields}


class ActiveTurn(Protocol):
    """The server's record of a run in flight (``_server._ActiveRun``)."""

    scope: trio.CancelScope
    reason: Reason
    client_gone: bool
    end_message: str | None


async def run_live_turn(
    sessions: LiveSessions,
    sink: FrameSink,
    plan: RunPlan,
    active: ActiveTurn,
    *,
    conn_id: int,
    watch: FramedStream | None,
    detachable: DetachableRun | None,
) -> None:
    """Run one turn of ``plan``'s live session (spawned or resumed if needed) to its end.

    The frames go to ``sink``; the client's come from ``watch`` (the turn's own connection,
    whose end ends the session) or through ``detachable.control``.
    """
    session, reused = await sessions.session_for(plan)
    try:
        await _turn(session, sink, plan, active, conn_id, watch, detachable, reused=reused)
    finally:
        session.claimed = False


async def _turn(  # noqa: PLR0917 -- the private half of ``run_live_turn``
    session: LiveSession,
    sink: FrameSink,
    plan: RunPlan,
    active: ActiveTurn,
    conn_id: int,
    watch: FramedStream | None,
    detachable: DetachableRun | None,
    *,
    reused: bool,
) -> None:
    request = plan.request
    config = session.owner.config
    timeout = request.timeout_s or config.max_run_timeout_s

    def client_gone() -> None:
        active.client_gone = True
        active.reason = "cancelled"
        active.scope.cancel()

    async with trio.open_nursery() as nursery:
        turn = LiveTurn(
            conn=sink,
            approval_timeout_s=approval_timeout(request.approval_timeout_s, config),
            nursery=nursery,
            on_client_gone=client_gone,
        )
        if watch is not None:
            nursery.start_soon(_read_client, watch, session, turn, client_gone)
        if detachable is not None:
            detachable.control = functools.partial(handle_control, session, turn)
        with active.scope, trio.move_on_after(timeout) as timer:
            started = RunStarted(
                pid=session.pid,
                argv=session.argv,
                cwd=session.cwd,
                live=True,
                reused=reused,
                steerable=session.driver.steerable,
            )
            await turn.send(encode_frame(started))
            log.info(
                "live turn started",
                extra=_fields(conn=conn_id, key=session.key, pid=session.pid, reused=reused),
            )
            await session.begin(turn, request.prompt, first=not reused)
            await turn.done.wait()
        if not turn.done.is_set():
            reason: Reason = "timed_out" if timer.cancelled_caught else active.reason
            await session.kill(reason)
        elif active.end_message is not None:
            active.end_message = None  # the turn ended by itself first
        if detachable is not None:
            detachable.control = None
        nursery.cancel_scope.cancel()
    finished = turn.finished
    assert finished is not None  # noqa: S101 -- set by the session before ``done``
    if active.end_message is not None:
        finished = attrs.evolve(finished, error=active.end_message)
    log.info(
        "live turn finished",
        extra=_fields(
            conn=conn_id,
            key=session.key,
            outcome=finished.outcome,
            session_open=finished.session_open,
        ),
    )
    if not active.client_gone and not turn.client_gone:
        await _send_end(sink, turn, finished)


async def _send_end(sink: FrameSink, turn: LiveTurn, finished: RunFinished) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await sink.send_frames(turn.closing_frames() + encode_frame(finished))


async def handle_control(session: LiveSession, turn: LiveTurn, message: Message) -> bool:
    """Carry out one of the client's frames during the turn; False: not one a turn takes."""
    if isinstance(message, PermissionDecision):
        await session.decide(
            message.request_id,
            message.behavior,
            message=message.message,
            updated_input=message.updated_input,
            remember_rule=message.remember_rule,
            decider=message.decider,
        )
    elif isinstance(message, TurnInput):
        why_not = await session.steer(message.text)
        accepted = InputAccepted(steered=why_not is None, message=why_not)
        await turn.send(encode_frame(accepted))
    elif isinstance(message, Interrupt):
        log.info("live turn interrupt", extra=_fields(key=session.key))
        await session.interrupt()
    else:
        return False
    return True


async def _read_client(
    conn: FramedStream, session: LiveSession, turn: LiveTurn, client_gone: Callable[[], None]
) -> None:
    """The client's frames during the turn; its end (or a bad frame) ends the session."""
    try:
        while True:
            message = await conn.receive()
            if message is None:
                break
            if not await handle_control(session, turn, message):
                log.warning(
                    "unexpected frame during a live turn, ending it",
                    extra=_fields(key=session.key, frame=type(message).__name__),
                )
                break
    except ProtocolViolation as exc:
        log.warning(
            "bad frame during a live turn, ending it",
            extra=_fields(key=session.key, code=exc.code, error=exc.message),
        )
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    if not turn.done.is_set():
        client_gone()
