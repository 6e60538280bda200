"""Record the Codex and Gemini parser fixtures from the real CLIs, offline.

Run from the repository root::

    PYTHONPATH=$PWD:$PWD/tests python -m _support.record_fixtures [--only NAME ...] [--out DIR]

Each scenario installs nothing new: it runs the pinned CLI (``agent_clis``, cached from npm)
with the argv the daemon's adapter builds (``host_daemon._agents.ADAPTERS``), stdin
``/dev/null``, in a fresh project directory with a throwaway ``HOME``, against a scripted model
on loopback (``scripted_codex``, ``scripted_gemini``). What the CLI printed on stdout is written
as ``NAME.jsonl`` line for line, with the temporary directories rewritten to ``/work/project``
and ``/home/user``; ``recordings.json`` beside it records the CLI version, the date, the argv,
the exit code, the last lines of stderr and what the scenario does. A scenario fails to record
(and nothing is written for it) unless the model's script was used up exactly: a capture always
shows what it says.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import attrs
import trio

from host_daemon._agents import ADAPTERS
from host_daemon._records import RunRequest

from .agent_clis import (
    GEMINI_MODEL,
    codex_env,
    codex_executable,
    gemini_env,
    gemini_executable,
)
from .npm_cli import cache_root
from .scripted_codex import Patch, Reasoned, ShellCall, StreamFailure, open_scripted_codex_model
from .scripted_gemini import ShellCommand, StreamedReply, open_scripted_gemini_model
from .scripted_model import ApiError, Reply, ScriptedEndpoint, ToolCall

FIXTURES = pathlib.Path(__file__).parents[1] / "host_daemon" / "fixtures"
SIDECAR = "recordings.json"
PROJECT = "/work/project"
HOME = "/home/user"
_RUN_TIMEOUT_S = 120.0
_STDERR_KEPT = 12
_UNKNOWN_SESSION = "00000000-0000-4000-8000-000000000000"


@attrs.frozen
class Earlier:
    """A run before the recorded one, whose session the recorded run resumes."""

    prompt: str
    steps: tuple[Any, ...]


@attrs.frozen
class Scenario:
    """One recorded run: the script the model follows and how the CLI is asked."""

    name: str
    agent: str
    what: str
    prompt: str
    steps: tuple[Any, ...] = ()
    permission_mode: str | None = None
    files: Mapping[str, str] = attrs.field(factory=dict)
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    earlier: Earlier | None = None
    resume: str | None = None
    """A session id to resume that no earlier run made (``earlier`` supplies a real one)."""
    without: tuple[str, ...] = ()
    """Words taken out of the adapter's argv (to show what a flag it always passes prevents)."""


_README = "# Project\n"
_PATCH = """\
*** Begin Patch
*** Add File: hello.py
+print("hello")
*** Update File: README.md
@@
 # Project
+Run hello.py to be greeted.
*** End Patch
"""

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "codex_success",
        "codex",
        "a reasoning summary, then an answer",
        "Say what this project is.",
        (Reasoned("**Reading the task**", Reply("This project holds a README.")),),
        files={"README.md": _README},
    ),
    Scenario(
        "codex_command_execution",
        "codex",
        "a failing command (`cat missing.txt`), a passing one (`ls`), then an answer",
        "Show missing.txt.",
        (
            ShellCall("cat missing.txt"),
            ShellCall("ls"),
            Reply("missing.txt does not exist; the project holds README.md."),
        ),
        files={"README.md": _README},
    ),
    Scenario(
        "codex_file_change",
        "codex",
        "a reasoning summary and an `apply_patch` that adds hello.py and updates README.md",
        "Write a greeting script and document it.",
        (
            Reasoned("**Writing the module**", Patch(_PATCH)),
            Reply("Created hello.py and documented it in README.md."),
        ),
        files={"README.md": _README},
    ),
    Scenario(
        "codex_read_only",
        "codex",
        "`--sandbox read-only`: a write fails in the sandbox; no item shows the command",
        "Create f.txt.",
        (ShellCall("echo hi > f.txt"), Reply("The sandbox is read-only.")),
        permission_mode="read-only",
    ),
    Scenario(
        "codex_turn_failed",
        "codex",
        "a command, then the model stream fails (`response.failed`): `turn.failed`",
        "List the files.",
        (ShellCall("ls"), StreamFailure("scripted failure")),
        files={"README.md": _README},
    ),
    Scenario(
        "codex_api_error",
        "codex",
        "the model answers HTTP 400: `turn.failed` with the API's error body",
        "List the files.",
        (ApiError(400, "invalid_request_error", "scripted bad request"),),
    ),
    Scenario(
        "codex_resume",
        "codex",
        "`exec resume THREAD` of an earlier run that created f.txt: the same thread id",
        "What does f.txt say?",
        (Reply("f.txt says hi."),),
        earlier=Earlier("Create f.txt.", (ShellCall("echo hi > f.txt"), Reply("Created f.txt."))),
    ),
    Scenario(
        "codex_resume_unknown",
        "codex",
        "`exec resume` of a thread that does not exist: nothing on stdout",
        "Go on.",
        resume=_UNKNOWN_SESSION,
    ),
    Scenario(
        "gemini_success",
        "gemini",
        "`--approval-mode yolo`: `run_shell_command ls`, then a reply in two chunks",
        "List the files, then say how many there are.",
        (
            ShellCommand("ls", "List the files."),
            StreamedReply(("There are two files: ", "README.md and hello.py.")),
        ),
        permission_mode="yolo",
        files={"README.md": _README, "hello.py": 'print("hello")\n'},
    ),
    Scenario(
        "gemini_auto_edit",
        "gemini",
        "the default `auto_edit`: `write_file` runs, `run_shell_command` is not offered (error)",
        "Write hello.py and run it.",
        (
            ToolCall("write_file", {"file_path": "hello.py", "content": 'print("hello")\n'}),
            ShellCommand("python3 hello.py"),
            Reply("Wrote hello.py; the shell is not available here."),
        ),
    ),
    Scenario(
        "gemini_error",
        "gemini",
        "the model answers HTTP 429 RESOURCE_EXHAUSTED: `result` status error",
        "Fix the failing test.",
        (
            ApiError(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
            ),
        ),
    ),
    Scenario(
        "gemini_turn_limit",
        "gemini",
        "`model.maxSessionTurns: 1` in settings.json: one tool call, then the turn limit",
        "Refactor the whole project.",
        (ToolCall("read_file", {"file_path": "hello.py"}),),
        files={"hello.py": 'print("hello")\n'},
        settings={"model": {"maxSessionTurns": 1}},
    ),
    Scenario(
        "gemini_untrusted",
        "gemini",
        "the adapter's argv without `--skip-trust`: the folder is not trusted, nothing on stdout",
        "List the files.",
        without=("--skip-trust",),
    ),
    Scenario(
        "gemini_resume",
        "gemini",
        "`--resume ID` of an earlier run that wrote f.txt: the same session id",
        "What does f.txt say?",
        (Reply("It says hi."),),
        earlier=Earlier(
            "Create f.txt.",
            (ToolCall("write_file", {"file_path": "f.txt", "content": "hi\n"}), Reply("Done.")),
        ),
    ),
    Scenario(
        "gemini_resume_unknown",
        "gemini",
        "`--resume ID` of a session that does not exist: nothing on stdout",
        "Go on.",
        resume=_UNKNOWN_SESSION,
    ),
)


@attrs.frozen
class Recording:
    """What one scenario's run printed and how it ended."""

    stdout: str
    stderr: str
    exit_code: int
    argv: list[str]


@attrs.frozen
class _Cli:
    executable: str
    open_model: Callable[[], AbstractAsyncContextManager[ScriptedEndpoint]]
    env: Callable[[str, pathlib.Path, Mapping[str, Any]], dict[str, str]]
    model: str | None


def _cli(agent: str) -> _Cli:
    if agent == "codex":
        return _Cli(
            codex_executable(),
            open_scripted_codex_model,
            lambda url, home, _settings: codex_env(url, home),
            None,
        )
    return _Cli(gemini_executable(), open_scripted_gemini_model, gemini_env, GEMINI_MODEL)


async def record(scenario: Scenario, workdir: pathlib.Path) -> Recording:
    """Run ``scenario`` once in ``workdir`` and return what the CLI printed."""
    cli = _cli(scenario.agent)
    home, project = workdir / "home", workdir / "project"
    project.mkdir(parents=True)
    for name, text in scenario.files.items():
        (project / name).write_text(text)
    async with cli.open_model() as model:
        env = cli.env(model.base_url, home, scenario.settings)
        session = scenario.resume
        if scenario.earlier is not None:
            model.script(*scenario.earlier.steps)
            earlier = await _run(
                cli, scenario, scenario.earlier.prompt, None, project=project, env=env
            )
            session = _session_id(earlier.stdout)
        model.script(*scenario.steps)
        recording = await _run(cli, scenario, scenario.prompt, session, project=project, env=env)
        if model.unexpected or model.pending_steps:
            raise RuntimeError(
                f"{scenario.name}: the CLI made {len(model.main_requests)} model calls, "
                f"{len(model.unexpected)} past the script, {model.pending_steps} steps unused; "
                f"it printed:\n{recording.stdout}"
            )
    rewrite = {
        str(project): PROJECT,
        str(home): HOME,
        str(cache_root()): "~/.cache/coding-agent-tests",
    }
    return Recording(
        stdout=_rewrite(recording.stdout, rewrite),
        stderr=_rewrite(recording.stderr, rewrite),
        exit_code=recording.exit_code,
        argv=[_rewrite(word, rewrite) for word in recording.argv],
    )


async def _run(
    cli: _Cli,
    scenario: Scenario,
    prompt: str,
    session: str | None,
    *,
    project: pathlib.Path,
    env: Mapping[str, str],
) -> Recording:
    adapter = ADAPTERS[scenario.agent]
    request = RunRequest(
        agent=scenario.agent,  # type: ignore[arg-type]
        prompt=prompt,
        cwd=str(project),
        resume_session_id=session,
        model=cli.model,
    )
    mode = scenario.permission_mode or adapter.default_permission_mode
    argv = [
        word
        for word in adapter.build_argv(cli.executable, request, mode)
        if word not in scenario.without
    ]
    with trio.fail_after(_RUN_TIMEOUT_S):
        done = await trio.run_process(
            argv,
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    argv[0] = scenario.agent
    return Recording(done.stdout.decode(), done.stderr.decode(), done.returncode, argv)


def _session_id(stdout: str) -> str:
    first = json.loads(stdout.splitlines()[0])
    session = first.get("thread_id") or first.get("session_id")
    if isinstance(session, str):
        return session
    raise RuntimeError(f"expected a session id in the first line, got: {stdout[:500]}")


def _rewrite(text: str, replacements: Mapping[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def cli_version(agent: str) -> str:
    """What the pinned CLI's ``--version`` prints."""
    done = subprocess.run(
        [_cli(agent).executable, "--version"],
        capture_output=True,
        check=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=60,
    )
    return done.stdout.strip().splitlines()[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Record the chosen scenarios (all by default) into the fixtures directory."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="record these scenarios")
    parser.add_argument("--out", type=pathlib.Path, default=FIXTURES, help="fixtures directory")
    args = parser.parse_args(argv)
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    unknown = set(args.only or ()) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"no scenario named {', '.join(sorted(unknown))}")
    sidecar_path = args.out / SIDECAR
    sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.exists() else {}
    versions = {agent: cli_version(agent) for agent in {s.agent for s in chosen}}
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    for scenario in chosen:
        with tempfile.TemporaryDirectory(prefix="record-") as tmp:
            recording = trio.run(record, scenario, pathlib.Path(tmp))
        (args.out / f"{scenario.name}.jsonl").write_text(recording.stdout)
        sidecar[f"{scenario.name}.jsonl"] = {
            "cli": scenario.agent,
            "version": versions[scenario.agent],
            "recorded": today,
            "what": scenario.what,
            "argv": recording.argv,
            "exit_code": recording.exit_code,
            "stderr": recording.stderr.splitlines()[-_STDERR_KEPT:],
        }
        lines = len(recording.stdout.splitlines())
        print(f"{scenario.name}: exit {recording.exit_code}, {lines} lines", file=sys.stderr)
    sidecar_path.write_text(
        json.dumps(dict(sorted(sidecar.items())), indent=2, ensure_ascii=False) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
