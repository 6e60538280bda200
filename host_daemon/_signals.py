"""The two-signal shutdown both daemons use: the first SIGTERM/SIGINT drains, a second exits."""

from __future__ import annotations

import logging
import signal

import trio


async def watch_shutdown_signals(
    shutdown: trio.Event,
    scope: trio.CancelScope,
    log: logging.Logger,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Set ``shutdown`` on the first signal; cancel ``scope`` (exit now) on the second.

    Start it with ``nursery.start``: it reports started only once the handlers are installed,
    so no signal in between falls to the default action and kills the process unflushed.
    """
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            name = signal.Signals(signum).name
            if shutdown.is_set():
                log.warning("second %s: exiting now", name)
                scope.cancel()
                return
            log.info("%s: draining, a second signal exits at once", name)
            shutdown.set()
