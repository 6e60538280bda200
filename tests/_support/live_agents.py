"""A daemon running the real Codex or Gemini CLI live, against its scripted model on loopback.

The live Claude tests' shape (``live_claude``), for the other two agents::

    async with open_scripted_codex_model() as model:
        async with codex_daemon(model, tmp_path) as daemon:
            events = await run_turn(daemon, daemon.request("write f.txt"), allow_all)

Each daemon's agents carry a unique marker variable, so ``daemon.leftovers()`` (a scan of
``/proc``) finds everything they started, whatever process group or session it moved to.
"""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs

from host_daemon import RunRequest

from .agent_clis import GEMINI_MODEL, codex_env, codex_executable, gemini_env, gemini_executable
from .daemon import running_daemon
from .live_claude import MARKER, LiveDaemon, allow_all
from .scripted_codex import ScriptedCodexModel
from .scripted_gemini import ScriptedGeminiModel

__all__ = ["LiveAgentDaemon", "allow_all", "codex_daemon", "gemini_daemon"]


@attrs.frozen
class LiveAgentDaemon(LiveDaemon):
    """A live daemon for ``agent``; ``request`` adds ``defaults`` (Gemini's concrete model)."""

    agent: str = "codex"
    defaults: Mapping[str, Any] = attrs.field(factory=dict)

    def request(self, prompt: str, key: str = "task-1", **fields: Any) -> RunRequest:
        """A live turn of ``agent`` for session ``key`` in the root."""
        fields = {"cwd": str(self.root), **self.defaults, **fields}
        return RunRequest(agent=self.agent, prompt=prompt, live=True, session_key=key, **fields)


@asynccontextmanager
async def _agent_daemon(
    agent: str,
    env: dict[str, str],
    tmp_path: pathlib.Path,
    defaults: Mapping[str, Any],
    overrides: dict[str, Any],
) -> AsyncIterator[LiveAgentDaemon]:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    (root / "README.md").write_text("# Project\n")
    marker = uuid.uuid4().hex
    env[MARKER] = marker
    overrides.setdefault("kill_grace_s", 2.0)
    async with running_daemon([root], env, **overrides) as served:
        yield LiveAgentDaemon(
            served.host,
            served.port,
            served.token,
            root,
            marker,
            served.shutdown,
            agent=agent,
            defaults=defaults,
        )


@asynccontextmanager
async def codex_daemon(
    model: ScriptedCodexModel, tmp_path: pathlib.Path, **overrides: Any
) -> AsyncIterator[LiveAgentDaemon]:
    """A daemon on 127.0.0.1:0 with one root, running the pinned Codex with ``model``."""
    env = codex_env(model.base_url, tmp_path / "home")
    env["CODEX_PATH"] = codex_executable()
    async with _agent_daemon("codex", env, tmp_path, {}, overrides) as daemon:
        yield daemon


@asynccontextmanager
async def gemini_daemon(
    model: ScriptedGeminiModel, tmp_path: pathlib.Path, **overrides: Any
) -> AsyncIterator[LiveAgentDaemon]:
    """A daemon on 127.0.0.1:0 with one root, running the pinned Gemini with ``model``."""
    env = gemini_env(model.base_url, tmp_path / "home")
    env["GEMINI_CLI_NO_RELAUNCH"] = "1"  # one node process instead of two: faster
    env["GEMINI_PATH"] = gemini_executable()
    defaults = {"model": GEMINI_MODEL}
    async with _agent_daemon("gemini", env, tmp_path, defaults, overrides) as daemon:
        yield daemon
