"""The real Codex and Gemini CLIs for tests, pinned, cached from npm, pointed at loopback.

``codex_executable()`` and ``gemini_executable()`` install the pinned releases on first use
(``npm_cli`` says how the cache works; ``CODING_AGENT_TEST_CODEX`` and
``CODING_AGENT_TEST_GEMINI`` override them). ``codex_env`` and ``gemini_env`` write a throwaway
``HOME``'s configuration so that the CLI talks only to a scripted model on loopback
(``scripted_codex``, ``scripted_gemini``) and returns the environment to run it with; the
settings are those the pinned releases were seen to honour with no network but loopback.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from .npm_cli import installed_cli

__all__ = [
    "CODEX_VERSION",
    "GEMINI_MODEL",
    "GEMINI_VERSION",
    "codex_env",
    "codex_executable",
    "gemini_env",
    "gemini_executable",
    "offline_env",
]

CODEX_VERSION = "0.171.0"
GEMINI_VERSION = "0.61.0"
GEMINI_MODEL = "gemini-2.5-flash"
"""A concrete model: the default ``auto`` makes a routing side call first."""

_CODEX_MODEL = "gpt-5.5"

CLOSED_LOOPBACK_URL = "http://127.0.0.1:9"
"""Nothing listens here: a CLI that reaches for its model gets "connection refused" at once."""


def codex_executable() -> str:
    """The pinned ``codex`` launcher (npm's bin script, as users run it)."""
    return installed_cli(
        "@openai/codex",
        CODEX_VERSION,
        pathlib.PurePath("node_modules/.bin/codex"),
        "CODING_AGENT_TEST_CODEX",
    )


def gemini_executable() -> str:
    """The pinned ``gemini`` launcher (npm's bin script, run by the system ``node``)."""
    return installed_cli(
        "@google/gemini-cli",
        GEMINI_VERSION,
        pathlib.PurePath("node_modules/.bin/gemini"),
        "CODING_AGENT_TEST_GEMINI",
    )


def _base_env(home: pathlib.Path) -> dict[str, str]:
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
    }


def codex_env(base_url: str, home: str | os.PathLike[str]) -> dict[str, str]:
    """Write ``home/.codex/config.toml`` for the scripted model at ``base_url`` (``…/v1``)."""
    home = pathlib.Path(home)
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    # Retries off: a scripted error ends the turn at once instead of after back-off.
    # Plugins off: they reach out to git hosts. OPENAI_BASE_URL is ignored by this version.
    (codex_home / "config.toml").write_text(
        f"""\
model = "{_CODEX_MODEL}"
model_provider = "scripted"

[model_providers.scripted]
name = "scripted"
base_url = {json.dumps(base_url)}
env_key = "SCRIPTED_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[features]
plugins = false
"""
    )
    return dict(_base_env(home), CODEX_HOME=str(codex_home), SCRIPTED_API_KEY="scripted")


def gemini_env(
    base_url: str,
    home: str | os.PathLike[str],
    settings: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write ``home/.gemini/settings.json`` (plus ``settings``) for the model at ``base_url``."""
    home = pathlib.Path(home)
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    # Without selectedType a headless run exits 41; without maxAttempts a 500 is retried for
    # minutes.
    merged: dict[str, Any] = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {
            "enableAutoUpdate": False,
            "enableAutoUpdateNotification": False,
            "maxAttempts": 1,
        },
    }
    merged.update(settings or {})
    (home / ".gemini" / "settings.json").write_text(json.dumps(merged, indent=2))
    return dict(_base_env(home), GOOGLE_GEMINI_BASE_URL=base_url, GEMINI_API_KEY="scripted")


def offline_env(home: str | os.PathLike[str]) -> dict[str, str]:
    """Both CLIs configured in ``home`` with their model endpoints on a closed loopback port."""
    env = codex_env(f"{CLOSED_LOOPBACK_URL}/v1", home)
    env.update(gemini_env(CLOSED_LOOPBACK_URL, home))
    env["GEMINI_CLI_NO_RELAUNCH"] = "1"
    return env
