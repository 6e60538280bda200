"""bench/bench_approvals.py keeps working: run with tiny counts, it prints its whole table."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from _support.readme import REPO

#: A table row: the decider, then median, p99, median without firsts (ms), and the two ratios.
ROW = r"\| {name} \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x, [\d.]+x \|"
#: Four requests per decider in two turns, two idle sessions.
TINY = ("--requests", "4", "--turns", "2", "--idle-sessions", "2")
DECIDERS = (
    r"approve tool \(wait_task \+ approve\)",
    r"elicitation \(wait_task in flight\)",
    r"RunStream\.decide \(no MCP\)",
)


@pytest.mark.slow
def test_bench_approvals_runs_every_decider_and_the_idle_sessions() -> None:
    """Four requests per decider in two turns, two idle sessions: every row and figure shows."""
    done = subprocess.run(
        [sys.executable, "bench/bench_approvals.py", *TINY],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "4 requests per decider in 2 turns" in done.stdout
    for name in DECIDERS:
        assert re.search(ROW.format(name=name), done.stdout), done.stdout
    assert re.search(r"Idle live sessions: 3 open; .* -?\d+ KiB per idle session", done.stdout)
