"""Live Codex sessions against a scripted model: shared by the real-CLI tests and the recorder.

Each scenario runs the pinned ``codex app-server`` under ``CodexLiveDriver``
(``live_harness_codex``) in a fresh project directory with a throwaway ``HOME``, against
``scripted_codex`` on loopback, and returns what happened (``Outcome``) for the test to check.
The transcripts it returns are what ``tests/host_daemon/fixtures/live_codex_*.jsonl`` hold
(re-record them from the repository root)::

    PYTHONPATH=$PWD:$PWD/tests python -m _support.live_codex_scenarios [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from host_daemon._records import RunRequest

from .agent_clis import codex_env, codex_executable
from .live_harness_codex import LiveCodex, open_live_codex
from .npm_cli import cache_root
from .polling import eventually
from .procs import marked_processes
from .scripted_codex import Patch, ScriptedCodexModel, ShellCall, open_scripted_codex_model
from .scripted_model import ApiError, Hold, Reply

__all__ = ["MARKER", "SCENARIOS", "Outcome", "run_scenario"]

MARKER = "CODING_AGENT_TEST_LIVE_CODEX"
FIXTURES = pathlib.Path(__file__).parents[1] / "host_daemon" / "fixtures"
_DEADLINE_S = 90.0
DENY_MESSAGE = "Not in this task: leave f.txt alone."
STEER_TEXT = "Also mention the README."
UNKNOWN_THREAD = "00000000-0000-4000-8000-000000000000"
PATCH = """\
*** Begin Patch
*** Add File: hello.py
+print("hello")
*** End Patch
"""


@attrs.define
class Outcome:
    """What one scenario saw: the sessions' harnesses (in order), the model, the project."""

    sessions: list[LiveCodex]
    model: ScriptedCodexModel
    project: pathlib.Path
    marker: str
    leftovers: list[tuple[int, str]] = attrs.field(factory=list)

    @property
    def transcripts(self) -> list[list[dict[str, Any]]]:
        return [session.transcript for session in self.sessions]


Scenario = Callable[[ScriptedCodexModel, "_Run"], Awaitable[None]]


@attrs.define
class _Run:
    """What a scenario needs to open sessions in its project."""

    project: pathlib.Path
    env: dict[str, str]
    outcome: Outcome

    def request(self, prompt: str, resume: str | None = None) -> RunRequest:
        return RunRequest(
            agent="codex", prompt=prompt, cwd=str(self.project), resume_session_id=resume
        )

    def open(self, request: RunRequest, mode: str = "workspace-write") -> Any:
        return open_live_codex(codex_executable(), request, env=self.env, permission_mode=mode)


async def _allow(model: ScriptedCodexModel, run: _Run) -> None:
    """A command asked (``Bash``), allowed: it runs; then an answer."""
    model.script(ShellCall("echo hi > f.txt"), Reply("Created f.txt."))
    async with run.open(run.request("Create f.txt.")) as live:
        run.outcome.sessions.append(live)
        await live.start("Create f.txt.")
        ask = await live.next_ask()
        await live.decide(ask.request_id, "allow")
        await live.turn_finished()
        await live.close()
        await live.wait_exited()


async def _deny(model: ScriptedCodexModel, run: _Run) -> None:
    """A command asked, denied with a message: the model reads both; nothing runs."""
    model.script(ShellCall("echo hi > f.txt"), Reply("I left f.txt alone."))
    async with run.open(run.request("Create f.txt.")) as live:
        run.outcome.sessions.append(live)
        await live.start("Create f.txt.")
        ask = await live.next_ask()
        await live.decide(ask.request_id, "deny", DENY_MESSAGE)
        await live.turn_finished()
        await live.close()
        await live.wait_exited()


async def _file_change(model: ScriptedCodexModel, run: _Run) -> None:
    """An ``apply_patch`` asked as ``Edit`` with the file's path, allowed: the file appears."""
    model.script(Patch(PATCH), Reply("Wrote hello.py."))
    async with run.open(run.request("Write hello.py.")) as live:
        run.outcome.sessions.append(live)
        await live.start("Write hello.py.")
        ask = await live.next_ask()
        await live.decide(ask.request_id, "allow")
        await live.turn_finished()
        await live.close()
        await live.wait_exited()


async def _steer(model: ScriptedCodexModel, run: _Run) -> None:
    """A steer while the model thinks: its next call, in the same turn, carries the text."""
    hold = Hold(Reply("Looking."))
    model.script(hold, Reply("The project has a README."))
    async with run.open(run.request("Describe the project.")) as live:
        run.outcome.sessions.append(live)
        await live.start("Describe the project.")
        await hold.reached.wait()
        # The turn's id is known once Codex said turn/started: the steer names it.
        await live.wait_for_event("other", data={"method": "turn/started"})
        await live.steer(STEER_TEXT)
        await live.wait_for_event("other", data={"id": 4})
        hold.release()
        await live.turn_finished()
        await live.close()
        await live.wait_exited()


async def _interrupt(model: ScriptedCodexModel, run: _Run) -> None:
    """An interrupt while an allowed command runs: the turn ends ``interrupted``, the driver
    ends the process, and nothing of the command is left."""
    model.script(ShellCall(f"sleep 3000 # {run.outcome.marker}"))
    async with run.open(run.request("Wait a long time.")) as live:
        run.outcome.sessions.append(live)
        await live.start("Wait a long time.")
        ask = await live.next_ask()
        await live.decide(ask.request_id, "allow")
        await eventually(
            lambda: any(name == "sleep" for _, name in _marked(run)),
            "the allowed sleep to run",
            lambda: str(_marked(run)),
        )
        await live.interrupt()
        await live.turn_finished()
        await live.wait_exited()
        await eventually(lambda: not _marked(run), "nothing of the session left", lambda: "")


async def _interrupt_asking(model: ScriptedCodexModel, run: _Run) -> None:
    """An interrupt while a permission request waits: the turn ends ``interrupted``, Codex
    withdraws the request, the command never runs."""
    model.script(ShellCall("echo hi > f.txt"))
    async with run.open(run.request("Create f.txt.")) as live:
        run.outcome.sessions.append(live)
        await live.start("Create f.txt.")
        await live.next_ask()
        await live.interrupt()
        await live.turn_finished()
        await live.wait_exited()


def _marked(run: _Run) -> list[tuple[int, str]]:
    return marked_processes(MARKER, run.outcome.marker, exclude=(os.getpid(),))


async def _resume(model: ScriptedCodexModel, run: _Run) -> None:
    """A first session creates f.txt and closes; a second resumes its thread and is asked
    about it: the model's call carries the first turn."""
    await _allow(model, run)
    thread = run.outcome.sessions[0].driver.session_id
    model.script(Reply("f.txt says hi."))
    async with run.open(run.request("What does f.txt say?", resume=thread)) as live:
        run.outcome.sessions.append(live)
        await live.start("What does f.txt say?")
        await live.turn_finished()
        await live.close()
        await live.wait_exited()


async def _follow_up(model: ScriptedCodexModel, run: _Run) -> None:
    """Two turns in one process: the second is a ``turn/start`` in the same thread."""
    model.script(Reply("Hello."), Reply("You said hello first."))
    async with run.open(run.request("Say hello.")) as live:
        run.outcome.sessions.append(live)
        await live.start("Say hello.")
        await live.turn_finished()
        await live.prompt("What did I ask first?")
        await live.turn_finished()
        await live.close()
        await live.wait_exited()


async def _api_error(model: ScriptedCodexModel, run: _Run) -> None:
    """The model answers HTTP 400: the turn fails; the session stays for the next turn."""
    model.script(ApiError(400, "invalid_request_error", "scripted bad request"))
    async with run.open(run.request("List the files.")) as live:
        run.outcome.sessions.append(live)
        await live.start("List the files.")
        await live.turn_finished()
        await live.close()
        await live.wait_exited()


async def _resume_unknown(model: ScriptedCodexModel, run: _Run) -> None:
    """``thread/resume`` of a thread that does not exist: Codex answers an error."""
    request = run.request("Go on.", resume=UNKNOWN_THREAD)
    async with run.open(request) as live:
        run.outcome.sessions.append(live)
        await live.start("Go on.")
        await live.turn_finished()
        await live.wait_exited()


async def _every_command_asks(model: ScriptedCodexModel, run: _Run) -> None:
    """``ls`` and ``cat`` (commands Codex deems safe) ask too, under ``untrusted``."""
    model.script(ShellCall("ls"), ShellCall("cat README.md"), Reply("Listed and read."))
    async with run.open(run.request("Look around.")) as live:
        run.outcome.sessions.append(live)
        await live.start("Look around.")
        for _ in range(2):
            ask = await live.next_ask()
            await live.decide(ask.request_id, "allow")
        await live.turn_finished()
        await live.close()
        await live.wait_exited()


async def _read_only(model: ScriptedCodexModel, run: _Run) -> None:
    """Permission mode ``read-only``, a write allowed: an approved command runs outside the
    sandbox (Codex's rule), so the write happens."""
    model.script(ShellCall("echo hi > f.txt"), Reply("Created f.txt."))
    async with run.open(run.request("Create f.txt."), mode="read-only") as live:
        run.outcome.sessions.append(live)
        await live.start("Create f.txt.")
        ask = await live.next_ask()
        await live.decide(ask.request_id, "allow")
        await live.turn_finished()
        await live.close()
        await live.wait_exited()


SCENARIOS: dict[str, Scenario] = {
    "every_command_asks": _every_command_asks,
    "read_only": _read_only,
    "follow_up": _follow_up,
    "api_error": _api_error,
    "resume_unknown": _resume_unknown,
    "allow": _allow,
    "deny": _deny,
    "file_change": _file_change,
    "steer": _steer,
    "interrupt": _interrupt,
    "interrupt_asking": _interrupt_asking,
    "resume": _resume,
}


async def run_scenario(name: str, workdir: pathlib.Path) -> Outcome:
    """Run scenario ``name`` in ``workdir`` (a project and a home are made in it)."""
    project, home = workdir / "project", workdir / "home"
    project.mkdir()
    (project / "README.md").write_text("# Project\n")
    async with open_scripted_codex_model() as model:
        env = codex_env(model.base_url, home)
        marker = uuid.uuid4().hex
        env[MARKER] = marker
        outcome = Outcome([], model, project, marker)
        with trio.fail_after(_DEADLINE_S):
            await SCENARIOS[name](model, _Run(project, env, outcome))
        outcome.leftovers = marked_processes(MARKER, marker, exclude=(os.getpid(),))
        return outcome


def _rewrite(text: str, workdir: pathlib.Path) -> str:
    for old, new in (
        (str(workdir / "project"), "/work/project"),
        (str(workdir / "home"), "/home/user"),
        (str(cache_root()), "~/.cache/coding-agent-tests"),
    ):
        text = text.replace(old, new)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Record the chosen scenarios (all by default) as ``live_codex_NAME.jsonl``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), metavar="NAME")
    parser.add_argument("--out", type=pathlib.Path, default=FIXTURES)
    args = parser.parse_args(argv)
    for name in args.only or SCENARIOS:
        with tempfile.TemporaryDirectory(prefix="record-") as tmp:
            workdir = pathlib.Path(tmp)
            outcome = trio.run(run_scenario, name, workdir)
            if outcome.model.unexpected or outcome.model.pending_steps:
                raise RuntimeError(f"{name}: the model's script was not used up exactly")
            lines = [
                _rewrite(json.dumps(step, ensure_ascii=False), workdir)
                for index, transcript in enumerate(outcome.transcripts)
                for step in ([{"session": index}] if index else []) + transcript
            ]
        (args.out / f"live_codex_{name}.jsonl").write_text("\n".join(lines) + "\n")
        print(f"live_codex_{name}: {len(lines)} lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
