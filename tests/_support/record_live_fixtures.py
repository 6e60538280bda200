"""Record the Gemini live (ACP) transcripts from the real CLI, offline.

Run from the repository root::

    PYTHONPATH=$PWD:$PWD/tests python -m _support.record_live_fixtures [--only NAME ...]

Each scenario runs the pinned ``gemini --acp`` (``agent_clis``) with the argv of
``host_daemon._live_gemini.GEMINI_LIVE`` and its driver, through ``live_harness``, in a fresh
project directory with a throwaway ``HOME``, against the scripted Gemini model on loopback. The
transcript (every call on the driver, every line written and read, in order) is written as
``fixtures/gemini_live_NAME.jsonl`` after a first line ``{"recorded": {...}}`` (CLI version, date,
argv, the request the driver was made with, what the scenario does), with the temporary
directories rewritten to ``/work/project`` and ``/home/user``. A scenario whose script was not
used up exactly is not written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from host_daemon._live_gemini import GEMINI_LIVE
from host_daemon._records import RunRequest

from .agent_clis import GEMINI_MODEL, GEMINI_VERSION, gemini_env, gemini_executable
from .live_harness import LiveProcess, open_live_process
from .polling import eventually
from .scripted_gemini import ScriptedGeminiModel, ShellCommand, open_scripted_gemini_model
from .scripted_model import ApiError, Reply, ToolCall

FIXTURES = pathlib.Path(__file__).parents[1] / "host_daemon" / "fixtures"
PROJECT = "/work/project"
HOME = "/home/user"
UNKNOWN_SESSION = "00000000-0000-4000-8000-000000000000"


@attrs.frozen
class Context:
    model: ScriptedGeminiModel
    project: pathlib.Path
    env: dict[str, str]


Scenario = Callable[[Context, Callable[..., Any]], Awaitable[None]]


def _running(marker: str) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in pathlib.Path(f"/proc/{entry}/cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False


async def allow_remember(ctx: Context, live: Callable[..., Any]) -> None:
    """A shell command asked and allowed (the file is written), then a second prompt."""
    ctx.model.script(ShellCommand("echo live > f.txt"), Reply("written"), Reply("I remember"))
    async with live() as agent:
        await agent.start("write the file")
        await agent.decide((await agent.next_ask()).request_id, "allow")
        await agent.turn_finished()
        await agent.prompt("what did you write?")
        await agent.turn_finished()
        await agent.close()
        await agent.wait_exit()


async def deny(ctx: Context, live: Callable[..., Any]) -> None:
    """A shell command asked and denied: the model is told it was canceled and answers."""
    ctx.model.script(ShellCommand("echo no > f.txt"), Reply("understood"))
    async with live() as agent:
        await agent.start("write the file")
        await agent.decide((await agent.next_ask()).request_id, "deny", "not now")
        await agent.turn_finished()


async def interrupt_command(ctx: Context, live: Callable[..., Any]) -> None:
    """A long command allowed, then session/cancel while it runs; then the next prompt."""
    ctx.model.script(ShellCommand("sleep 3600"), Reply("after the interrupt"))
    async with live() as agent:
        await agent.start("wait a long time")
        await agent.decide((await agent.next_ask()).request_id, "allow")
        await eventually(lambda: _running("sleep 3600"), "the command to run")
        await agent.interrupt()
        await agent.turn_finished()
        await agent.prompt("go on")
        await agent.turn_finished()


async def interrupt_ask(ctx: Context, live: Callable[..., Any]) -> None:
    """session/cancel while a permission request is open (answered "cancelled")."""
    ctx.model.script(ShellCommand("echo no > f.txt"), Reply("next turn"))
    async with live() as agent:
        await agent.start("write the file")
        await agent.next_ask()
        await agent.interrupt()
        await agent.turn_finished()
        await agent.prompt("again")
        await agent.turn_finished()


async def edits(ctx: Context, live: Callable[..., Any]) -> None:
    """write_file and replace, each asked and allowed."""
    (ctx.project / "a.txt").write_text("one\n")
    ctx.model.script(
        ToolCall("write_file", {"file_path": str(ctx.project / "new.txt"), "content": "fresh\n"}),
        ToolCall(
            "replace",
            {
                "file_path": str(ctx.project / "a.txt"),
                "old_string": "one",
                "new_string": "two",
                "instruction": "change it",
            },
        ),
        Reply("edited"),
    )
    async with live() as agent:
        await agent.start("edit")
        await agent.decide((await agent.next_ask()).request_id, "allow")
        await agent.decide((await agent.next_ask()).request_id, "allow")
        await agent.turn_finished()


async def api_error(ctx: Context, live: Callable[..., Any]) -> None:
    """The model answers HTTP 429: the prompt's response is a JSON-RPC error."""
    ctx.model.script(ApiError(429, "RESOURCE_EXHAUSTED", "quota gone"))
    async with live() as agent:
        await agent.start("hello")
        await agent.turn_finished()


async def resume_unknown(ctx: Context, live: Callable[..., Any]) -> None:
    """session/load of a session that does not exist."""
    async with live(resume_session_id=UNKNOWN_SESSION) as agent:
        await agent.start("hello")
        await agent.turn_finished()
        await agent.wait_exit()


SCENARIOS: dict[str, Scenario] = {
    "allow_remember": allow_remember,
    "deny": deny,
    "interrupt_command": interrupt_command,
    "interrupt_ask": interrupt_ask,
    "edits": edits,
    "api_error": api_error,
    "resume_unknown": resume_unknown,
}


async def _resume(directory: pathlib.Path) -> list[dict[str, Any]]:
    """The second process of a resumed conversation (recorded on its own)."""
    async with open_scripted_gemini_model() as model:
        ctx = _context(model, directory)
        model.script(Reply("noted"))
        async with _live(ctx, [])() as first:
            await first.start("remember the word PINEAPPLE")
            session_id = (await first.turn_finished()).session_id
            await first.close()
            await first.wait_exit()
        minute = _minute()
        # Gemini 0.61.0 overwrites a session loaded within the minute it started.
        await eventually(lambda: _minute() > minute, "the next minute", timeout=90)
        model.script(Reply("PINEAPPLE it was"))
        transcript: list[dict[str, Any]] = []
        async with _live(ctx, transcript, resume_session_id=session_id)() as second:
            await second.start("which word?")
            await second.turn_finished()
        return transcript


def _minute() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(second=0, microsecond=0)


def _context(model: ScriptedGeminiModel, directory: pathlib.Path) -> Context:
    project = directory / "project"
    project.mkdir(exist_ok=True)
    env = gemini_env(model.base_url, directory / "home")
    env["GEMINI_CLI_NO_RELAUNCH"] = "1"
    return Context(model=model, project=project, env=env)


def _live(ctx: Context, sink: list[dict[str, Any]], **fields: Any) -> Callable[..., Any]:
    """A factory of live processes whose transcript (header first) goes to ``sink``."""

    def start(**more: Any) -> Any:
        request = RunRequest(
            agent="gemini",
            prompt="(the prompts are in the transcript)",
            cwd=str(ctx.project),
            model=GEMINI_MODEL,
            **{**fields, **more},
        )
        argv = GEMINI_LIVE.live_argv(gemini_executable(), request, "default")
        sink.append(
            {
                "recorded": {
                    "cli": f"gemini {GEMINI_VERSION}",
                    "date": datetime.date.today().isoformat(),
                    "argv": ["gemini", *argv[1:]],
                    "request": {"cwd": request.cwd, "resume_session_id": request.resume_session_id},
                }
            }
        )
        return _recording(
            open_live_process(argv, GEMINI_LIVE.new_driver(request), cwd=request.cwd, env=ctx.env),
            sink,
        )

    return start


class _recording:
    """``open_live_process`` that copies the transcript into ``sink`` at the end."""

    def __init__(self, manager: Any, sink: list[dict[str, Any]]) -> None:
        self.manager = manager
        self.sink = sink
        self.live: LiveProcess | None = None

    async def __aenter__(self) -> LiveProcess:
        self.live = await self.manager.__aenter__()
        return self.live

    async def __aexit__(self, *exc: Any) -> Any:
        assert self.live is not None
        self.sink += self.live.transcript
        return await self.manager.__aexit__(*exc)


def _rewrite(entries: list[dict[str, Any]], directory: pathlib.Path) -> str:
    text = "\n".join(json.dumps(entry, ensure_ascii=False) for entry in entries) + "\n"
    real = os.path.realpath(directory)
    for path in {str(directory), real}:
        text = text.replace(f"{path}/project", PROJECT).replace(f"{path}/home", HOME)
    return text


async def record(name: str, out: pathlib.Path) -> None:
    directory = pathlib.Path(tempfile.mkdtemp(prefix="live-gemini-"))
    transcript: list[dict[str, Any]] = []
    if name == "resume":
        transcript = await _resume(directory)
        what = "session/load of an earlier conversation in a new process (replayed), then a prompt"
    else:
        async with open_scripted_gemini_model() as model:
            ctx = _context(model, directory)
            await SCENARIOS[name](ctx, _live(ctx, transcript))
            if model.pending_steps or model.unexpected:
                raise RuntimeError(f"{name}: the script was not used up exactly")
        what = (SCENARIOS[name].__doc__ or "").strip()
    for entry in transcript:
        if "recorded" in entry:
            entry["recorded"]["what"] = what
    (out / f"gemini_live_{name}.jsonl").write_text(_rewrite(transcript, directory))
    print(f"recorded gemini_live_{name}.jsonl ({len(transcript)} entries)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[*SCENARIOS, "resume"])
    parser.add_argument("--out", type=pathlib.Path, default=FIXTURES)
    args = parser.parse_args()
    for name in args.only:
        trio.run(record, name, args.out)


if __name__ == "__main__":
    main()
