"""One live turn on one connection: the prompt in, the session's frames out, the client's answers.

The connection carries the turn: ``run_started``, the agent's events and permission frames (sent
by the session's output pump), one ``run_finished``. Meanwhile the client may send
``permission_decision``, ``turn_input`` and ``interrupt`` frames, read here. A client that goes
away mid-turn, a turn timeout or ``kill_runs`` end the whole session (its process group), as a
non-live run's end would.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import trio

from ._connection import FramedStream
from ._live import LiveSession, LiveSessions, approval_timeout
from ._live_permissions import LiveTurn
from ._parsers import Reason
from ._plan import RunPlan
from ._protocol import ProtocolViolation, encode_frame
from ._records import (
    InputAccepted,
    Interrupt,
    PermissionDecision,
    RunFinished,
    RunStarted,
    TurnInput,
)

__all__ = ["ActiveTurn", "run_live_turn"]

log = logging.getLogger("host_daemon")


def _fields(**fields: object) -> dict[str, Any]:
    return {"fields": fields}


class ActiveTurn(Protocol):
    """The server's record of a run in flight (``_server._ActiveRun``)."""

    scope: trio.CancelScope
    reason: Reason
    client_gone: bool


async def run_live_turn(
    sessions: LiveSessions,
    conn_id: int,
    conn: FramedStream,
    plan: RunPlan,
    active: ActiveTurn,
) -> None:
    """Run one turn of ``plan``'s live session (spawned or resumed if needed) to its end."""
    session, reused = await sessions.session_for(plan)
    try:
        await _turn(session, conn_id, conn, plan, active, reused=reused)
    finally:
        session.claimed = False


async def _turn(
    session: LiveSession,
    conn_id: int,
    conn: FramedStream,
    plan: RunPlan,
    active: ActiveTurn,
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
            conn=conn,
            approval_timeout_s=approval_timeout(request.approval_timeout_s, config),
            nursery=nursery,
            on_client_gone=client_gone,
        )
        nursery.start_soon(_read_client, conn, session, turn, client_gone)
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
        nursery.cancel_scope.cancel()
    finished = turn.finished
    assert finished is not None  # noqa: S101 -- set by the session before ``done``
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
        await _send_end(conn, turn, finished)


async def _send_end(conn: FramedStream, turn: LiveTurn, finished: RunFinished) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await conn.send_frames(turn.closing_frames() + encode_frame(finished))


async def _read_client(
    conn: FramedStream, session: LiveSession, turn: LiveTurn, client_gone: Callable[[], None]
) -> None:
    """The client's frames during the turn; its end (or a bad frame) ends the session."""
    try:
        while True:
            message = await conn.receive()
            if message is None:
                break
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
