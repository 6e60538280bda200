"""A subreaper daemon reaps the orphans it adopts that no run claims, and spares run leaders."""

from __future__ import annotations

import os
import pathlib
import sys
from contextlib import suppress

import pytest
import trio
from _support.daemon import running_daemon

import host_daemon
from host_daemon import spawn_group
from host_daemon._proc import read_stat
from host_daemon._tree import reap_adopted_orphans

DEADLINE = 30.0  # generous: the machine is shared and loaded

# A CLI whose --version leaves an escaped grandchild behind: a new session, an empty
# environment (no run marker) and a parent that is gone before any scan of the run sees it.
_ESCAPING_CLI = """\
import os, sys
if os.fork() == 0:
    os.setsid()
    grandchild = os.fork()
    if grandchild == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.execve("/bin/sleep", ["sleep", "0.3"], {})
    with open(sys.argv[0] + ".orphan", "w") as file:
        file.write(str(grandchild))
    os._exit(0)
os.wait()
print("1.2.3 (escaping)")
"""


def _reap_if_left(pid: int) -> None:
    """Do not leave a zombie in the test process when an assertion failed."""
    with suppress(ChildProcessError):
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)


@pytest.mark.usefixtures("subreaper")
async def test_daemon_reaps_an_orphan_left_by_a_version_probe(tmp_path: pathlib.Path) -> None:
    """An escaped descendant of ``--version`` that dies is reaped, not left a zombie."""
    cli = tmp_path / "claude"
    cli.write_text(f"#!{sys.executable}\n{_ESCAPING_CLI}")
    cli.chmod(0o755)
    async with running_daemon(roots=[tmp_path], env={"CLAUDE_PATH": str(cli)}) as d:
        info = await host_daemon.probe(d.host, d.port, d.token)
        assert [a.version for a in info.agents if a.name == "claude"] == ["1.2.3 (escaping)"]
        orphan = int(await trio.Path(f"{cli}.orphan").read_text())
        try:
            with trio.fail_after(DEADLINE):
                # /proc offers no event to wait on: poll it.
                while read_stat(orphan) is not None:  # noqa: ASYNC110
                    await trio.sleep(0.05)
        finally:
            _reap_if_left(orphan)


@pytest.mark.usefixtures("subreaper")
async def test_reaping_orphans_spares_a_run_leader(tmp_path: pathlib.Path) -> None:
    """A dead leader whose run is still open is left to its run, which reports its status."""
    async with spawn_group(["sh", "-c", "exit 3"], cwd=str(tmp_path)) as proc:
        status = await proc.wait()
        stat = read_stat(proc.pid)
        assert stat is not None
        assert not stat.alive  # the run holds its zombie until the block ends
        assert proc.pid not in reap_adopted_orphans()
        assert read_stat(proc.pid) is not None
    assert status.exit_code == 3
    assert read_stat(proc.pid) is None
