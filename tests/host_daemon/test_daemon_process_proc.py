"""The /proc readers: stat parsing that survives odd names, groups and descendants."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_daemon._proc import (
    descendants,
    environ_has,
    group_members,
    parse_stat,
    read_stat,
    snapshot,
)


def test_parse_stat_with_parentheses_and_spaces_in_comm() -> None:
    """A name holding ``) (`` and spaces does not shift the fields after it."""
    fields = " ".join(str(n) for n in range(4, 53))  # fields 4..52; start time is field 22
    stat = parse_stat(f"123 (a) b (c )) S {fields}\n")
    assert (stat.pid, stat.comm, stat.state) == (123, "a) b (c )", "S")
    assert (stat.ppid, stat.pgid, stat.sid, stat.start_time) == (4, 5, 6, 22)


def test_read_stat_of_self() -> None:
    """This process reads as itself: alive, with its parent, group and session."""
    stat = read_stat(os.getpid())
    assert stat is not None
    assert stat.alive
    assert (stat.ppid, stat.pgid, stat.sid) == (os.getppid(), os.getpgrp(), os.getsid(0))


def test_read_stat_of_missing_pid() -> None:
    """A pid with no process reads as None."""
    assert read_stat(2**22 + 1) is None  # above any pid_max


@pytest.fixture
def odd_tree(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A shell in its own group, named with parentheses, with a sleeping child."""
    odd = tmp_path / "x) (y z"
    odd.symlink_to("/bin/sh")
    proc = subprocess.Popen(
        [str(odd), "-c", "sleep 60 & echo started; wait"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    try:
        yield proc
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
        proc.stdout.close()


def test_odd_name_read_from_proc(odd_tree: subprocess.Popen[bytes]) -> None:
    """A real process whose name holds ``) (`` reads back with that name and its group."""
    stat = read_stat(odd_tree.pid)
    assert stat is not None
    assert stat.comm == "x) (y z"
    assert stat.pgid == odd_tree.pid


def test_group_members_and_descendants(odd_tree: subprocess.Popen[bytes]) -> None:
    """The group holds the shell and its child; the child descends from the shell."""
    stats = snapshot()
    members = {stat.pid for stat in group_members(odd_tree.pid, stats)}
    below = descendants(odd_tree.pid, stats)
    assert len(below) == 1
    assert below[0].ppid == odd_tree.pid
    assert members == {odd_tree.pid, below[0].pid}
    assert {stat.pid for stat in descendants(os.getpid(), stats)} >= members


def test_environ_has_exact_entries() -> None:
    """An environment entry matches whole, never as a prefix of another."""
    env = {"RUN_MARK": "abc", "PATH": os.environ["PATH"]}
    with subprocess.Popen(["sleep", "60"], env=env) as proc:
        try:
            # Right after exec the new environment may not be readable yet (None: unknown).
            deadline = time.monotonic() + 30
            while environ_has(proc.pid, b"RUN_MARK=abc") is None:
                assert time.monotonic() < deadline
                time.sleep(0.001)
            assert environ_has(proc.pid, b"RUN_MARK=abc") is True
            assert environ_has(proc.pid, b"RUN_MARK=ab") is False
        finally:
            proc.kill()


def test_environ_of_missing_pid_unknown() -> None:
    """A process that does not exist has no answer, not a "no"."""
    assert environ_has(2**22 + 1, b"A=b") is None
