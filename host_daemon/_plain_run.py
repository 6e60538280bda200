"""A plain (not live) run: spawn the agent's group, forward its events, one ``RunFinished``.

The frames go to a ``FrameSink``: the connection itself for a run without ``run_id`` (whose
client leaving cancels it: ``watch``), or the ``DetachableRun`` that numbers, spools and
forwards them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Final

import attrs
import trio

from ._agents import ADAPTERS, EventParser
from ._config import DaemonConfig
from ._connection import FramedStream, FrameSink
from ._detach import ActiveRun
from ._plan import RequestError, RunPlan
from ._process import spawn_group
from ._protocol import encode_frame
from ._records import AgentEvent, RunStarted

__all__ = ["run_plain"]

log = logging.getLogger("host_daemon")

#: Bytes to read at once when watching a running client for its EOF.
_WATCH_CHUNK: Final = 1024
#: Output lines taken from a run at once, and the frames sent in one write: large enough that
#: the per-write and per-wakeup costs vanish, small enough to hold per run without a thought.
_SEND_BATCH_BYTES: Final = 256 * 1024


def _fields(**fields: object) -> dict[str, Any]:
    return {"fields": fields}


async def run_plain(
    sink: FrameSink,
    plan: RunPlan,
    active: ActiveRun,
    *,
    config: DaemonConfig,
    env: Mapping[str, str],
    conn_id: int,
    watch: FramedStream | None,
) -> None:
    """Run ``plan`` to its end; ``watch``: the client's connection, whose end cancels the run."""
    request = plan.request
    parser = ADAPTERS[request.agent].new_parser(request)
    timeout = request.timeout_s or config.max_run_timeout_s

    async def watch_client(conn: FramedStream) -> None:
        # After its request a client sends nothing: EOF (or anything) means it is gone.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await conn.stream.receive_some(_WATCH_CHUNK)
        active.client_gone = True
        active.reason = "cancelled"
        active.scope.cancel()

    async with trio.open_nursery() as nursery:
        if watch is not None:
            nursery.start_soon(watch_client, watch)
        with active.scope, trio.move_on_after(timeout) as timer:
            try:
                await _stream_run(
                    sink, plan, parser, active, config=config, env=env, conn_id=conn_id
                )
            except* (trio.BrokenResourceError, trio.ClosedResourceError):
                active.client_gone = True
                active.reason = "cancelled"
        if timer.cancelled_caught:
            active.reason = "timed_out"
        nursery.cancel_scope.cancel()
    status = active.status
    reason = "exited" if status is not None else active.reason
    finished = parser.finish(
        status.exit_code if status is not None else None,
        status.signal if status is not None else None,
        reason=reason,
    )
    if active.output_capped:
        finished = attrs.evolve(finished, output_truncated=True)
    if active.end_message is not None and status is None:
        finished = attrs.evolve(finished, error=active.end_message)
    log.info(
        "run finished",
        extra=_fields(
            conn=conn_id,
            reason=reason,
            outcome=finished.outcome,
            exit_code=finished.exit_code,
            signal=finished.signal,
        ),
    )
    if not active.client_gone:
        await sink.send_frames(encode_frame(finished))


async def _stream_run(
    sink: FrameSink,
    plan: RunPlan,
    parser: EventParser,
    active: ActiveRun,
    *,
    config: DaemonConfig,
    env: Mapping[str, str],
    conn_id: int,
) -> None:
    """Spawn the group and forward its output, in order, with backpressure.

    The lines waiting in the runner are taken as one batch and their events sent in one
    write (at most about ``_SEND_BATCH_BYTES`` each): a write awaits the client, so a
    client that stops reading stops the batches, the runner's buffer fills and the agent
    blocks on its pipe.

    Once the output ended and the leader exited, its status and whether the output limit cut
    the output go into ``active``, before the group's stragglers are killed.
    """
    async with contextlib.AsyncExitStack() as stack:
        try:
            proc = await stack.enter_async_context(
                spawn_group(
                    plan.argv,
                    cwd=plan.directory.fd,
                    env=env,
                    kill_grace=config.kill_grace_s,
                    max_output_bytes=config.max_output_bytes,
                    max_line_bytes=config.max_line_bytes,
                )
            )
        except OSError as exc:
            raise RequestError(
                "spawn_failed", f"cannot start {plan.argv[0]}: {exc.strerror or exc}"
            ) from None
        log.info(
            "run started",
            extra=_fields(
                conn=conn_id,
                agent=plan.request.agent,
                pid=proc.pid,
                cwd=plan.directory.path,
                mode=plan.mode,
                run_id=plan.request.run_id,
            ),
        )
        started = RunStarted(pid=proc.pid, argv=plan.argv, cwd=plan.directory.path)
        await sink.send_frames(encode_frame(started))
        while batch := await proc.next_batch(_SEND_BATCH_BYTES):
            frames = bytearray()
            for line in batch:
                text = line.data.decode("utf-8", errors="replace").rstrip("\r\n")
                if line.stream == "stderr":
                    parser.note_stderr(text)
                    events = [
                        AgentEvent(kind="stderr", raw=text, text=text, truncated=line.truncated)
                    ]
                else:
                    events = parser.feed(text, truncated=line.truncated)
                for event in events:
                    frames += encode_frame(event)
                if len(frames) >= _SEND_BATCH_BYTES:
                    await sink.send_frames(frames)
                    frames = bytearray()
            if frames:
                await sink.send_frames(frames)
        active.status = await proc.wait()
        active.output_capped = proc.output_capped
