"""A stand-in Gemini CLI whose first ``--help`` answers only after 8 s (a cold node on a loaded
host), for the live check's tests."""

from __future__ import annotations

import pathlib
import stat
import sys

__all__ = ["SLOW_FIRST_HELP", "SLOW_FIRST_VERSION", "VERSION_THEN_SLOW_FIRST_HELP", "slow_gemini"]

# Answers ``--help`` with the ACP flag; the first answer only after 8 s (a cold node on a
# loaded host), the later ones at once. Counts its ``--help`` runs in ``helps``.
SLOW_FIRST_HELP = """\
import os, sys, time
count = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helps")
with open(count, "a") as f:
    f.write("x")
if sys.argv[1:] == ["--help"]:
    if os.path.getsize(count) == 1:
        time.sleep(8)
    print("Usage: gemini [options]\\n  --acp  Starts the agent in ACP mode")
"""


# As above, for a daemon's probe: answers ``--version`` first, at once and uncounted.
VERSION_THEN_SLOW_FIRST_HELP = (
    """\
import sys
if sys.argv[1:] == ["--version"]:
    print("0.61.0")
    sys.exit(0)
"""
    + SLOW_FIRST_HELP
)


def slow_gemini(directory: pathlib.Path, source: str = SLOW_FIRST_HELP) -> pathlib.Path:
    """An executable `gemini` in ``directory`` running ``source``."""
    script = directory / "gemini"
    script.write_text(f"#!{sys.executable}\n{source}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


# A CLI whose first ``--version`` answers only after 8 s; its help, at once, shows the ACP flag.
SLOW_FIRST_VERSION = """\
import os, sys, time
count = os.path.join(os.path.dirname(os.path.abspath(__file__)), "versions")
if sys.argv[1:] == ["--version"]:
    with open(count, "a") as f:
        f.write("x")
    if os.path.getsize(count) == 1:
        time.sleep(8)
    print("0.61.0")
else:
    print("Usage: gemini [options]\\n  --acp  Starts the agent in ACP mode")
"""
