"""The shell commands of README.md and docs/deployment.md, read from their ``console`` blocks, so
tests run what users paste."""

from __future__ import annotations

import pathlib
import re
import shlex

import attrs

REPO = pathlib.Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DEPLOYMENT = REPO / "docs" / "deployment.md"


@attrs.frozen
class Command:
    """One command line of a ``console`` block (backslash continuations joined)."""

    text: str
    section: str
    position: int


def console_commands(document: pathlib.Path = README) -> list[Command]:
    """Every command of the ```` ```console ```` blocks, in order, trailing comments cut."""
    commands: list[Command] = []
    section = ""
    in_block = False
    pending = ""
    for line in document.read_text(encoding="utf-8").splitlines():
        if not in_block:
            if line.startswith("#"):
                section = line.lstrip("#").strip()
            in_block = line.strip() == "```console"
            continue
        if line.strip() == "```":
            in_block = False
            continue
        pending += line.strip() if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
            continue
        text = re.sub(r"\s+# .*$", "", pending).strip()
        try:
            shlex.split(text)
        except ValueError:  # a quoted string goes on over the next line
            pending += "\n"
            continue
        commands.append(Command(text=text, section=section, position=len(commands)))
        pending = ""
    return commands


def the_command(containing: str, document: pathlib.Path = DEPLOYMENT) -> Command:
    """The one command of ``document`` (the deployment guide unless told) containing
    ``containing``; fails when there is none or several."""
    found = [c for c in console_commands(document) if containing in c.text]
    assert len(found) == 1, f"expected one {document.name} command with {containing!r}, got {found}"
    return found[0]
