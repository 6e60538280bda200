"""What is running, read from ``/proc``: the processes a test marked through their environment."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Collection


def marked_processes(
    name: str, value: str, *, exclude: Collection[int] = ()
) -> list[tuple[int, str]]:
    """Live processes (not zombies) whose environment holds ``name=value``: (pid, command name).

    A marker variable is inherited by everything a run starts, including processes that left its
    process group or session, so this finds what a group kill alone would leave behind.
    """
    needle = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        try:
            environ = pathlib.Path(f"/proc/{entry}/environ").read_bytes()
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        command, _, rest = stat.partition("(")[2].rpartition(")")
        if needle in environ.split(b"\0") and rest.split()[0] != "Z":
            found.append((int(entry), command))
    return found
