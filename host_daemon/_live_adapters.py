"""The agents that can run live turns, and how the probe tells whether an installed CLI can.

``LIVE_ADAPTERS`` is the one registry: an agent without an entry runs per-turn only. Each entry
has a probe check (``LIVE_CHECKS``): the CLI's help output (cached per CLI file like
``--version``) must show the live interface the adapter speaks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import attrs

from ._live_claude import CLAUDE_LIVE
from ._live_codex import CODEX_LIVE
from ._live_driver import LiveAdapter
from ._live_gemini import GEMINI_LIVE, acp_flag

__all__ = ["LIVE_ADAPTERS", "LIVE_CHECKS", "LiveCheck"]

LIVE_ADAPTERS: Final[Mapping[str, LiveAdapter]] = {
    "claude": CLAUDE_LIVE,
    "codex": CODEX_LIVE,
    "gemini": GEMINI_LIVE,
}


@attrs.frozen
class LiveCheck:
    """How to ask a CLI whether it can run live: the arguments, and what the answer must show.

    ``verdict(exit_code, output)`` is None when the CLI can, else why not (for people).
    """

    args: tuple[str, ...]
    verdict: Callable[[int | None, str], str | None]
    #: What ``live_note`` says when it can.
    how: str


def _claude_verdict(exit_code: int | None, output: str) -> str | None:
    missing = [
        flag for flag in ("--permission-prompt-tool", "--input-format") if flag not in output
    ]
    if exit_code != 0 or missing:
        return f"claude --help does not offer {' and '.join(missing) or 'live control'}"
    return None


def _codex_verdict(exit_code: int | None, output: str) -> str | None:
    del output
    return None if exit_code == 0 else f"codex app-server --help exited with {exit_code}"


def _gemini_verdict(exit_code: int | None, output: str) -> str | None:
    flag = acp_flag(output) if exit_code == 0 else None
    if flag == "--acp":
        return None
    if flag is not None:  # an older CLI: the driver starts ``gemini --acp``
        return f"gemini --help offers only {flag}, not --acp"
    return "gemini --help does not offer --acp"


LIVE_CHECKS: Final[Mapping[str, LiveCheck]] = {
    "claude": LiveCheck(("--help",), _claude_verdict, "stream-json control on stdin"),
    "codex": LiveCheck(
        ("app-server", "--help"),
        _codex_verdict,
        "codex app-server; an approved command runs outside codex's sandbox",
    ),
    "gemini": LiveCheck(
        ("--help",),
        _gemini_verdict,
        "gemini --acp; not steerable, and a deny's message cannot reach the model",
    ),
}
