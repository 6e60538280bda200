"""The memory an idle live Claude session costs: the daemon's share and the agent's process tree.

    PYTHONPATH=$PWD:$PWD/tests .venv/bin/python bench/bench_live_memory.py [--sessions 4]

Runs the daemon in this process (``serve_daemon``) with the pinned Claude Code CLI against the
scripted model on loopback, opens ``--sessions`` live sessions (one turn each, then idle), and
prints a table: this process's RSS before any session, after each one (the daemon's extra
memory per idle session, the scripted model and the client being a fixed cost measured before),
and the RSS of each session's process tree (every process carrying its marker, from /proc).
"""

from __future__ import annotations

import argparse
import gc
import pathlib
import tempfile

import trio
from _support.claude_cli import claude_executable
from _support.live_claude import live_daemon, run_turn
from _support.scripted_model import Reply, open_scripted_model

from host_daemon import become_subreaper, close_session


def _rss_kib(pid: int | str = "self") -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _tree_rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += _rss_kib(pid)
        except OSError:
            continue
    return total


async def main(sessions: int) -> None:
    become_subreaper()
    claude = claude_executable()
    with tempfile.TemporaryDirectory() as tmp:
        async with open_scripted_model() as model:
            model.script(*[Reply(f"r{i}") for i in range(sessions + 1)])
            async with live_daemon(claude, model, pathlib.Path(tmp)) as daemon:
                # Warm up the daemon's code paths with one session, closed again.
                await run_turn(daemon, daemon.request("warm", key="warm"))
                await close_session(daemon.host, daemon.port, daemon.token, "warm")
                gc.collect()
                before = _rss_kib()
                print(f"{'sessions':>8} {'daemon RSS KiB':>15} {'extra KiB':>10} {'tree KiB':>9}")
                print(f"{0:>8} {before:>15} {0:>10} {0:>9}")
                seen: set[int] = set()
                for index in range(1, sessions + 1):
                    await run_turn(daemon, daemon.request(f"hello {index}", key=f"s{index}"))
                    gc.collect()
                    now = _rss_kib()
                    pids = [pid for pid, _ in daemon.leftovers() if pid not in seen]
                    seen.update(pids)
                    print(f"{index:>8} {now:>15} {now - before:>10} {_tree_rss_kib(pids):>9}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=4)
    trio.run(main, parser.parse_args().sessions)
