"""Open N silent connections to a daemon with its default limits, then time an authenticated probe.

usage: PYTHONPATH=.:tests python bench/flood_daemon_handshakes.py N

Loopback only. Silent clients never send a hello, as an unauthenticated flood would; the script
prints how long a real client's probe then takes (or why it failed), when the daemon closed the
first silent connection, and how many of them it had closed by the end.
"""

from __future__ import annotations

import sys
import tempfile
import time

import trio
from _support.daemon import running_daemon

from host_daemon import probe


async def closed_by_peer(stream: trio.SocketStream, wait_s: float) -> bool:
    """True when the daemon ended ``stream`` (EOF or reset) within ``wait_s``."""
    with trio.move_on_after(wait_s):
        try:
            while await stream.receive_some(4096):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        async with running_daemon(roots=[root]) as daemon:
            silent = [await trio.open_tcp_stream(daemon.host, daemon.port) for _ in range(count)]
            started = time.monotonic()
            try:
                await probe(daemon.host, daemon.port, daemon.token)
                print(f"{count} silent: probe served in {time.monotonic() - started:.3f} s")
            except Exception as exc:
                took = time.monotonic() - started
                print(f"{count} silent: probe failed after {took:.3f} s: {exc!r}")
            started = time.monotonic()
            await closed_by_peer(silent[0], 30.0)
            print(f"first silent connection closed after {time.monotonic() - started:.1f} s more")
            closed = [await closed_by_peer(stream, 0.01) for stream in silent]
            print(f"closed by the daemon: {sum(closed)} of {count}")
            for stream in silent:
                await stream.aclose()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
