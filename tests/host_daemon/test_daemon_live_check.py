"""The live check: a CLI's help, read once per CLI file, and never a slow answer remembered."""

from __future__ import annotations

import os
import pathlib
import stat
import sys

from host_daemon._live_adapters import LIVE_CHECKS
from host_daemon._probe import AgentVersions

_LIVE = (True, LIVE_CHECKS["gemini"].how)

# Answers ``--help`` with the ACP flag; the first answer only after 8 s (a cold node on a
# loaded host), the later ones at once. Counts its ``--help`` runs in ``helps``.
_SLOW_FIRST_HELP = """\
import os, sys, time
count = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helps")
with open(count, "a") as f:
    f.write("x")
if sys.argv[1:] == ["--help"]:
    if os.path.getsize(count) == 1:
        time.sleep(8)
    print("Usage: gemini [options]\\n  --acp  Starts the agent in ACP mode")
"""


def _slow_gemini(tmp_path: pathlib.Path) -> pathlib.Path:
    script = tmp_path / "gemini"
    script.write_text(f"#!{sys.executable}\n{_SLOW_FIRST_HELP}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


async def test_a_help_that_times_out_is_not_remembered(tmp_path: pathlib.Path) -> None:
    """A probe's check that timed out says so; the next check asks again and finds live."""
    gemini = _slow_gemini(tmp_path)
    versions = AgentVersions({"GEMINI_PATH": str(gemini), "PATH": os.environ["PATH"]})
    live, note = await versions._live_support("gemini", str(gemini))
    assert live is False
    assert note is not None
    assert "did not answer within 3 s" in note
    assert await versions.live_support("gemini") == _LIVE
    assert await versions.live_support("gemini") == _LIVE
    assert (tmp_path / "helps").read_text() == "xx"  # the answer is remembered once given


async def test_a_live_request_waits_for_a_slow_help(tmp_path: pathlib.Path) -> None:
    """A live request's check gives the CLI more than the probe's few seconds to answer."""
    gemini = _slow_gemini(tmp_path)
    versions = AgentVersions({"GEMINI_PATH": str(gemini), "PATH": os.environ["PATH"]})
    assert await versions.live_support("gemini") == _LIVE
