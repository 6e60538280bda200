"""Record the live Claude fixtures (``claude_live_*.jsonl``) from the real CLI, offline.

Run from the repository root::

    PYTHONPATH=$PWD:$PWD/tests python -m _support.record_live_claude

Each scenario runs the pinned Claude Code with the daemon's live argv (``CLAUDE_LIVE``) against
the scripted model, writes user lines and control responses on its stdin as a client would,
and saves what it printed on stdout (temporary directories rewritten to ``/work/project`` and
``/home/user``). A scenario fails unless the model's script was used up exactly.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from host_daemon._live_claude import CLAUDE_LIVE
from host_daemon._records import RunRequest

from .claude_cli import claude_env, claude_executable
from .scripted_model import BashCall, Hold, Reply, ScriptedModel, open_scripted_model

FIXTURES = pathlib.Path(__file__).parents[1] / "host_daemon" / "fixtures"
_TIMEOUT_S = 60.0


def _user(text: str) -> bytes:
    return (
        json.dumps({"type": "user", "message": {"role": "user", "content": text}}) + "\n"
    ).encode()


def _allow(obj: dict[str, Any]) -> bytes:
    answer = {"behavior": "allow", "updatedInput": obj["request"]["input"]}
    response = {"subtype": "success", "request_id": obj["request_id"], "response": answer}
    return (json.dumps({"type": "control_response", "response": response}) + "\n").encode()


def _deny(obj: dict[str, Any], message: str) -> bytes:
    answer = {"behavior": "deny", "message": message}
    response = {"subtype": "success", "request_id": obj["request_id"], "response": answer}
    return (json.dumps({"type": "control_response", "response": response}) + "\n").encode()


_INTERRUPT = (
    b'{"type":"control_request","request_id":"rec-interrupt","request":{"subtype":"interrupt"}}\n'
)

#: A scenario reacts to each printed object: it returns what to write, or None to close stdin.
React = Callable[[dict[str, Any], int], Awaitable[list[bytes] | None]]


async def _record(name: str, model: ScriptedModel, react: React, first: str) -> None:
    tmp = pathlib.Path(tempfile.mkdtemp())
    project, home = tmp / "project", tmp / "home"
    project.mkdir()
    home.mkdir()
    request = RunRequest(agent="claude", prompt=first, cwd=str(project), live=True)
    argv = CLAUDE_LIVE.live_argv(claude_executable(), request, "acceptEdits")
    proc = await trio.lowlevel.open_process(
        argv,
        cwd=project,
        env=claude_env(model.base_url, home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    lines: list[str] = []
    results = 0
    await proc.stdin.send_all(_user(first))
    with trio.fail_after(_TIMEOUT_S):
        buffer = b""
        async for chunk in proc.stdout:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode()
                lines.append(line)
                obj = json.loads(line)
                results += obj.get("type") == "result"
                writes = await react(obj, results)
                if writes is None:
                    await proc.stdin.aclose()
                else:
                    for data in writes:
                        await proc.stdin.send_all(data)
        await proc.wait()
    if model.unexpected or model.pending_steps:
        raise RuntimeError(f"{name}: script not used up exactly:\n" + "\n".join(lines))
    text = "\n".join(lines) + "\n"
    text = text.replace(str(project), "/work/project").replace(str(home), "/home/user")
    (FIXTURES / f"{name}.jsonl").write_text(text)
    print(f"{name}: {len(lines)} lines", file=sys.stderr)


async def main() -> None:
    async with open_scripted_model() as model:
        model.script(BashCall("python3 -c 'pass'"), Reply("done"), Reply("second"))

        async def allow_then_second(obj: dict[str, Any], results: int) -> list[bytes] | None:
            if obj.get("type") == "control_request":
                return [_allow(obj)]
            if obj.get("type") == "result":
                return [_user("second prompt")] if results == 1 else None
            return []

        await _record("claude_live_allow", model, allow_then_second, "first prompt")

    async with open_scripted_model() as model:
        model.script(BashCall("python3 -c 'pass'"), Reply("understood"))

        async def deny(obj: dict[str, Any], results: int) -> list[bytes] | None:
            if obj.get("type") == "control_request":
                return [_deny(obj, "not on my watch")]
            return None if obj.get("type") == "result" else []

        await _record("claude_live_deny", model, deny, "run it")

    async with open_scripted_model() as model:
        model.script(BashCall("python3 -c 'import time; time.sleep(60)'"), Reply("next turn"))

        async def interrupt(obj: dict[str, Any], results: int) -> list[bytes] | None:
            if (
                obj.get("type") == "control_request"
                and obj["request"].get("subtype") == "can_use_tool"
            ):
                return [_allow(obj)]
            if (
                obj.get("type") == "control_response"
                and obj.get("response", {}).get("request_id") != "rec-interrupt"
            ):
                await trio.sleep(
                    2
                )  # the tool starts (a recording, not a test: no condition to see)
                return [_INTERRUPT]
            if obj.get("type") == "result":
                return [_user("go on")] if results == 1 else None
            return []

        await _record("claude_live_interrupt", model, interrupt, "sleep long")

    async with open_scripted_model() as model:
        hold = Hold(Reply("final"))
        model.script(BashCall("python3 -c 'pass'"), hold, Reply("after steer"))

        async def steer_late(obj: dict[str, Any], results: int) -> list[bytes] | None:
            if obj.get("type") == "control_request":
                return [_allow(obj)]
            if obj.get("type") == "user" and not obj.get("isReplay") and results == 0:
                await hold.reached.wait()
                hold.release()
                return [_user("STEER: late")]
            return None if results == 2 else []

        await _record("claude_live_steer_queued", model, steer_late, "steer me late")

    async with open_scripted_model() as model:
        model.script(BashCall("python3 -c 'import time; time.sleep(3)'"), Reply("steered"))

        async def steer_merged(obj: dict[str, Any], results: int) -> list[bytes] | None:
            if obj.get("type") == "control_request":
                return [_allow(obj), _user("STEER: while the tool runs")]
            return None if results == 1 else []

        await _record("claude_live_steer_merged", model, steer_merged, "steer me")


if __name__ == "__main__":
    trio.run(main)
