"""Agent CLI adapters: how to find and start each coding CLI headless.

One adapter per CLI (``claude``, ``codex``, ``gemini``) builds the argv (a list, never a shell
string) and offers the ``EventParser`` (``_parsers``) that reads the CLI's NDJSON output and
decides the run's outcome. ``agent_version`` probes a CLI's ``--version``.

Permission modes never wait on a prompt: a headless run has nobody to answer one.

- claude: default ``acceptEdits``. It works as root (``bypassPermissions`` and
  ``--dangerously-skip-permissions`` are refused as root, so that mode is offered only to
  non-root daemons), lets the agent edit files in its working directory, and in ``-p`` mode
  anything else that would ask is denied at once (the denial is reported in the result's
  ``permission_denials``). Users widen it with their own allow rules
  (``~/.claude/settings.json`` ``permissions.allow``, e.g. ``"Bash(pytest:*)"``), which the CLI
  reads because agents run with the daemon's environment.
- codex: default ``workspace-write`` (the ``--sandbox`` value); ``codex exec`` never asks.
- gemini: default ``auto_edit`` (``--approval-mode``): file edits run; the shell tool is not even
  offered (a call to it fails as "not found"), ``yolo`` being the only headless mode with it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from typing import Any, Final

import attrs
import trio

from ._agent_events import ClaudeParser, CodexParser, GeminiParser
from ._parsers import EventParser, Reason, signal_name
from ._process import ExitStatus, spawn_group
from ._records import RunRequest

__all__ = [
    "ADAPTERS",
    "AgentAdapter",
    "AgentVersionError",
    "EventParser",
    "Reason",
    "agent_version",
]

_VERSION_TIMEOUT_S: Final = 10.0
_VERSION_MAX_CHARS: Final = 200
_VERSION_MAX_OUTPUT: Final = 64 * 1024


class AgentVersionError(RuntimeError):
    """``--version`` failed, timed out or printed nothing."""


async def agent_version(
    executable: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = _VERSION_TIMEOUT_S,
) -> str:
    """The first line ``executable --version`` prints, within ``timeout`` seconds.

    Runs in its own process group like any agent (``spawn_group``), with a small output cap:
    a broken or hostile executable can neither hang the probe nor make the daemon hold its
    output. ``env`` defaults to the daemon's environment.
    """
    first: str | None = None
    stderr: list[str] = []
    status: ExitStatus | None = None
    with trio.move_on_after(timeout):
        async with spawn_group(
            [executable, "--version"],
            cwd=os.sep,
            env=env,
            kill_grace=1.0,
            max_output_bytes=_VERSION_MAX_OUTPUT,
            max_line_bytes=_VERSION_MAX_CHARS,
        ) as proc:
            async for line in proc:
                text = line.data.decode("utf-8", errors="replace").strip()
                if not text:
                    continue
                if line.stream == "stdout" and first is None:
                    first = text
                elif line.stream == "stderr":
                    stderr = [*stderr[-4:], text]
            status = await proc.wait()
    if status is None:
        raise AgentVersionError(f"{executable} --version did not answer within {timeout:g} s")
    if status.exit_code != 0 or first is None:
        how = (
            f"exited with {status.exit_code}"
            if status.signal is None
            else f"was killed by {signal_name(status.signal)}"
        )
        detail = " ".join(stderr)[-_VERSION_MAX_CHARS:] or "no output"
        raise AgentVersionError(f"{executable} --version {how}: {detail}")
    return first[:_VERSION_MAX_CHARS]


# --- adapters -----------------------------------------------------------------------------------


def _running_as_root() -> bool:
    return os.geteuid() == 0


#: What a model name or a session id may look like: it starts with a letter or digit (so no CLI
#: can read it as an option) and holds no space, ``=`` or control character. Every model and
#: session id of the three CLIs fits (``claude-opus-4-1``, ``gpt-5.5``, ``gemini-2.5-flash``,
#: ``models/gemini-2.5-pro``, ``us.anthropic.claude-sonnet-4@20250514``, UUIDs, ``latest``).
_PLAIN_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}")
_PLAIN_NAME_RULE: Final = "a letter or digit, then up to 127 of letters, digits and ._:/@-"


def plain_name_error(value: str) -> str | None:
    """Why ``value`` is no plain model name or session id (see ``_PLAIN_NAME``), else ``None``."""
    if _PLAIN_NAME.fullmatch(value):
        return None
    shown = value if len(value) <= 40 else value[:40] + "…"
    return f"expected {_PLAIN_NAME_RULE}, got {shown!r}"


@attrs.frozen
class AgentAdapter:
    """How the daemon finds, starts and reads one agent CLI."""

    name: str
    env_var: str
    executable_name: str
    default_permission_mode: str
    permission_modes: frozenset[str]
    _argv: Any = attrs.field(repr=False)
    _parser: type[EventParser] = attrs.field(repr=False)

    def find_executable(self, environ: Mapping[str, str]) -> str | None:
        """``$<env_var>`` when set (must be executable), else the CLI on ``environ``'s PATH."""
        explicit = environ.get(self.env_var)
        if explicit:
            return explicit if os.access(explicit, os.X_OK) else None
        return shutil.which(self.executable_name, path=environ.get("PATH", os.defpath))

    def build_argv(self, executable: str, request: RunRequest, permission_mode: str) -> list[str]:
        """The argv that runs ``request`` headless; no value of it can be read as an option.

        Every option's value is bound to it in one word (``--model=VALUE``), the prompt comes
        after ``--`` (or bound to ``--prompt=``), and model names and session ids must be plain
        names besides (``ValueError`` otherwise), which no CLI reads as an option even alone.
        """
        if permission_mode not in self.permission_modes:
            raise ValueError(f"{self.name} has no permission mode {permission_mode!r}")
        for field in ("model", "resume_session_id"):
            value = getattr(request, field)
            if value is not None and (error := plain_name_error(value)) is not None:
                raise ValueError(f"{error} @ $.{field}")
        argv: list[str] = self._argv(executable, request, permission_mode)
        return argv

    def new_parser(self, request: RunRequest | None = None) -> EventParser:
        """A fresh parser for one run's output; with ``request`` it also checks a resume."""
        return self._parser(request)


# Each CLI's parser takes ``--option=VALUE`` (checked against the real CLIs: Claude Code 2.1.332
# on commander.js, codex 0.171.0 on clap, Gemini CLI 0.61.0 on yargs).


def _claude_argv(executable: str, request: RunRequest, mode: str) -> list[str]:
    argv = [executable, "-p", "--output-format=stream-json", "--verbose"]
    argv.append(f"--permission-mode={mode}")
    if request.resume_session_id is not None:
        argv.append(f"--resume={request.resume_session_id}")
    if request.model is not None:
        argv.append(f"--model={request.model}")
    if request.max_turns is not None:
        argv.append(f"--max-turns={request.max_turns}")
    if request.max_budget_usd is not None:
        argv.append(f"--max-budget-usd={request.max_budget_usd:g}")
    # The prompt is a positional argument: after "--" it is never parsed as an option.
    return [*argv, "--", request.prompt]


def _codex_argv(executable: str, request: RunRequest, mode: str) -> list[str]:
    # Options go on ``exec`` itself, before any ``resume`` subcommand: clap accepts a parent's
    # options there whether or not the subcommand repeats them.
    argv = [executable, "exec", "--json", "--skip-git-repo-check", f"--sandbox={mode}"]
    if request.model is not None:
        argv.append(f"--model={request.model}")
    if request.resume_session_id is not None:
        # After "--" both the session id and the prompt are positionals of ``resume``: an id
        # such as ``--last`` would otherwise resume the newest session of any project.
        return [*argv, "resume", "--", request.resume_session_id, request.prompt]
    return [*argv, "--", request.prompt]


def _gemini_argv(executable: str, request: RunRequest, mode: str) -> list[str]:
    # ``--prompt=VALUE`` in one word: a prompt that starts with "-" stays the option's value.
    argv = [executable, f"--prompt={request.prompt}", "--output-format=stream-json"]
    argv += [f"--approval-mode={mode}", "--skip-trust"]
    if request.resume_session_id is not None:
        argv.append(f"--resume={request.resume_session_id}")
    if request.model is not None:
        argv.append(f"--model={request.model}")
    return argv


_CLAUDE_MODES = frozenset({"default", "acceptEdits", "plan", "dontAsk", "auto"})

ADAPTERS: Mapping[str, AgentAdapter] = {
    "claude": AgentAdapter(
        name="claude",
        env_var="CLAUDE_PATH",
        executable_name="claude",
        default_permission_mode="acceptEdits",
        permission_modes=(
            _CLAUDE_MODES if _running_as_root() else _CLAUDE_MODES | {"bypassPermissions"}
        ),
        argv=_claude_argv,
        parser=ClaudeParser,
    ),
    "codex": AgentAdapter(
        name="codex",
        env_var="CODEX_PATH",
        executable_name="codex",
        default_permission_mode="workspace-write",
        permission_modes=frozenset({"read-only", "workspace-write", "danger-full-access"}),
        argv=_codex_argv,
        parser=CodexParser,
    ),
    "gemini": AgentAdapter(
        name="gemini",
        env_var="GEMINI_PATH",
        executable_name="gemini",
        default_permission_mode="auto_edit",
        permission_modes=frozenset({"default", "auto_edit", "plan", "yolo"}),
        argv=_gemini_argv,
        parser=GeminiParser,
    ),
}
