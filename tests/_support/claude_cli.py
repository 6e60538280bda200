"""The real Claude Code CLI for tests: installed once into a cache, pinned, never skipped.

``claude_executable()`` returns the native ``claude`` binary of the pinned npm release
(``CODING_AGENT_TEST_CLAUDE`` overrides it; ``npm_cli`` says how the cache works).

``claude_env(base_url, home)`` is the environment that points the CLI at a scripted model on
loopback with no other network traffic.
"""

from __future__ import annotations

import os
import pathlib

from .npm_cli import installed_cli

CLAUDE_CODE_VERSION = "2.1.332"
_PACKAGE = "@anthropic-ai/claude-code"
_NATIVE = pathlib.PurePath("node_modules/@anthropic-ai/claude-code-linux-x64/claude")


def claude_executable() -> str:
    """Path of the pinned Claude Code binary, installing it into the cache on first use."""
    return installed_cli(_PACKAGE, CLAUDE_CODE_VERSION, _NATIVE, "CODING_AGENT_TEST_CLAUDE")


def claude_env(base_url: str, home: str | os.PathLike[str]) -> dict[str, str]:
    """Environment for the CLI: the scripted model at ``base_url``, a throwaway ``HOME``."""
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "HOME": str(home),
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
    }
