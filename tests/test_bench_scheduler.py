"""bench/bench_scheduler.py keeps working: run with tiny counts, it prints both tables."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from _support.readme import REPO


@pytest.mark.slow
def test_bench_scheduler_prints_latency_and_queue_tables() -> None:
    """Two latency rounds and five queued tasks: every row shows with its figures."""
    done = subprocess.run(
        [sys.executable, "bench/bench_scheduler.py", "--rounds", "2", "--queued", "5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"\| queued \(the scheduler starts it\) \| [\d.]+ ms \| [\d.]+ ms \|", out)
    assert re.search(r"\| reference: client waits, then create_task \| [\d.]+ ms \|", out)
    assert re.search(r"ratio queued/direct \(median\): [\d.]+x", out)
    assert re.search(r"\| 5 queued \| [\d.]+ MiB \| [\d.]+ ms \|", out), out
    assert re.search(r"\| the same 5, dequeued \(end_task\) \| [\d.]+ MiB \| [\d.]+ ms \|", out)
