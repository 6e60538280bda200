"""Open 600 ``subscriptions/listen`` streams, then one with 300,000 task ids; print what held.

usage: PYTHONPATH=.:tests python bench/flood_listen.py

Loopback only: a server in this process (auth off), the same httpx client for every stream.
Prints how many listens were accepted and refused, the big filter's status, and how much this
process's RSS grew while it was open or answered.
"""

from __future__ import annotations

import pathlib

import httpx
import orjson
import trio
from _support.mcp_http import modern_headers, modern_params, rpc, serving

from mcp_server import Registry

ATTEMPTS = 600
BIG_FILTER = 300_000


def rss_kib() -> int:
    """This process's resident set, in KiB."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def hold_listen(
    client: httpx.AsyncClient,
    url: str,
    content: bytes,
    outcomes: list[int],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Post one listen; record its status; keep it open while the server keeps it open."""
    headers = modern_headers("subscriptions/listen") | {"content-type": "application/json"}
    async with client.stream("POST", url, headers=headers, content=content) as response:
        outcomes.append(response.status_code)
        task_status.started()
        if response.status_code == 200:
            await trio.sleep_forever()


async def main() -> None:
    limits = httpx.Limits(max_connections=None)
    async with serving(Registry()) as url, httpx.AsyncClient(timeout=30, limits=limits) as client:
        outcomes: list[int] = []
        async with trio.open_nursery() as nursery:
            for rid in range(ATTEMPTS):
                body = rpc(rid, "subscriptions/listen", modern_params(notifications={}))
                await nursery.start(hold_listen, client, url, orjson.dumps(body), outcomes)
            accepted = outcomes.count(200)
            print(f"{ATTEMPTS} listens: {accepted} accepted, {ATTEMPTS - accepted} refused")
            nursery.cancel_scope.cancel()
        ids = [str(i) for i in range(BIG_FILTER)]
        content = orjson.dumps(
            rpc("big", "subscriptions/listen", modern_params(notifications={"taskIds": ids}))
        )
        del ids
        before = rss_kib()
        big: list[int] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(hold_listen, client, url, content, big)
            grown = (rss_kib() - before) / 1024
            print(f"{BIG_FILTER} task ids: status {big[0]}, RSS +{grown:.1f} MiB meanwhile")
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
