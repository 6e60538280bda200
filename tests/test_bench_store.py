"""bench/bench_store.py keeps working: run on a tiny store, it prints its whole table."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from _support.readme import REPO

#: A row: the figure, old and new with their unit, and the ratio.
ROW = r"\| {name} \| [\d.]+ {unit} \| [\d.]+ {unit} \| [\d.]+x \|"
FIGURES = (
    (r"first start \(new: builds its index\)", "s"),
    (r"start \(median of the later starts\)", "s"),
    ("VmRSS once ready", "MiB"),
    ("agent://tasks, first page", "ms"),
    (r"filtered page \([^|]+\)", "ms"),
    ("report of the oldest task", "ms"),
    ("log page: the last 50 events of the big log", "ms"),
    ("VmRSS after the reads", "MiB"),
)


@pytest.mark.slow
def test_bench_store_prints_every_figure_side_by_side() -> None:
    """200 tasks, a log of 500 events, two starts and two reads per side: every row shows
    (the reference is HEAD: a shallow clone has it too)."""
    argv = ["--tasks", "200", "--events", "500", "--starts", "2", "--reads", "2"]
    argv += ["--reference", "HEAD"]
    done = subprocess.run(
        [sys.executable, "bench/bench_store.py", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "200 tasks, one log of 500 events; start: 2 per side; reads: medians of 2" in done.stdout
    for name, unit in FIGURES:
        assert re.search(ROW.format(name=name, unit=unit), done.stdout), (name, done.stdout)
