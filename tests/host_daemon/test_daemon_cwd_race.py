"""The working directory cannot be raced: a run starts in the directory that was checked.

Another process swaps the requested directory with a symlink to outside the root
(``renameat2(RENAME_EXCHANGE)``, as fast as it can) while runs start. Each run is either refused
with a clear error or starts inside the root; no handler crashes.
"""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import sys
from collections import Counter

import pytest
import trio
from _support.daemon import running_daemon

from host_daemon import AgentEvent, DaemonError, RequestRejected, RunRequest, RunStarted, open_run

_RUNS = 200
_WORKERS = 4
_DEADLINE_S = 300.0

# Swaps two names atomically, forever; prints one line once it swapped for the first time.
_RACER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
    sys.exit(f"renameat2: {os.strerror(ctypes.get_errno())}")
print("racing", flush=True)
while True:
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""


def _inside(path: str, root: pathlib.Path) -> bool:
    return os.path.commonpath([path, str(root)]) == str(root)


async def test_swapping_the_directory_for_a_symlink_never_puts_a_run_outside(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """200 runs under a rename race: none starts outside the root and no handler crashes."""
    caplog.set_level(logging.INFO, logger="host_daemon")
    root = tmp_path / "root"
    (root / "project").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "swap").symlink_to(outside)
    agent = tmp_path / "pwd-agent"
    agent.write_text("#!/bin/sh\nexec /bin/pwd -P\n")  # prints where it really runs
    agent.chmod(0o755)
    outcomes: Counter[str] = Counter()
    places: list[str] = []
    # Relative and absolute requests alike.
    jobs = ["project" if i % 2 else str(root / "project") for i in range(_RUNS)]

    async def worker(host: str, port: int, token: str) -> None:
        while jobs:
            request = RunRequest(agent="claude", prompt="where", cwd=jobs.pop())
            try:
                async with open_run(host, port, token, request) as stream:
                    async for event in stream:
                        if isinstance(event, RunStarted):
                            outcomes["started"] += 1
                        elif isinstance(event, AgentEvent) and event.kind == "other":
                            places.append(event.raw)
            except RequestRejected as exc:
                outcomes[f"refused {exc.code}"] += 1
            except DaemonError as exc:  # anything else: the handler failed
                outcomes[f"broken {type(exc).__name__} {exc.code}"] += 1

    racer = await trio.lowlevel.open_process(
        [sys.executable, "-c", _RACER, str(root / "project"), str(root / "swap")],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert racer.stdout is not None
    try:
        said = b""
        while not said.endswith(b"\n") and (chunk := await racer.stdout.receive_some(64)):
            said += chunk
        assert said == b"racing\n"
        async with running_daemon(roots=[root], env={"CLAUDE_PATH": str(agent)}) as daemon:
            with trio.fail_after(_DEADLINE_S):
                async with trio.open_nursery() as nursery:
                    for _ in range(_WORKERS):
                        nursery.start_soon(worker, daemon.host, daemon.port, daemon.token)
    finally:
        racer.kill()
        with trio.CancelScope(shield=True):
            await racer.wait()
            await racer.stdout.aclose()
    escaped = [place for place in places if not _inside(place, root)]
    summary = f"{dict(outcomes)}; outside: {len(escaped)} {escaped[:3]}"
    print(summary)  # the figures for the notes (pytest -s)
    assert sum(outcomes.values()) == _RUNS, summary
    assert not escaped, summary
    assert not [key for key in outcomes if key.startswith("broken")], summary
    assert "internal error" not in caplog.text, summary
    assert len(places) == outcomes["started"], summary
