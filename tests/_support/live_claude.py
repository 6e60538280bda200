"""Shared parts of the live Claude tests: a daemon running the real CLI, and a turn driver."""

from __future__ import annotations

import json
import pathlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from host_daemon import (
    PermissionDecision,
    PermissionRequest,
    RunEvent,
    RunFinished,
    RunRequest,
    RunStarted,
    RunStream,
    open_run,
)

from .claude_cli import claude_env
from .daemon import running_daemon
from .procs import marked_processes
from .scripted_model import ScriptedModel

MARKER = "CODING_AGENT_TEST_RUN"
DEADLINE_S = 60.0


@attrs.frozen
class LiveDaemon:
    host: str
    port: int
    token: str
    root: pathlib.Path
    marker: str
    shutdown: trio.Event

    def request(self, prompt: str, key: str = "task-1", **fields: Any) -> RunRequest:
        """A live turn for session ``key`` in the root."""
        fields.setdefault("cwd", str(self.root))
        return RunRequest(agent="claude", prompt=prompt, live=True, session_key=key, **fields)

    def leftovers(self) -> list[tuple[int, str]]:
        """Live processes of this daemon's agents (the marker is in their environment)."""
        return marked_processes(MARKER, self.marker)


@asynccontextmanager
async def live_daemon(
    claude: str, model: ScriptedModel, tmp_path: pathlib.Path, **overrides: Any
) -> AsyncIterator[LiveDaemon]:
    """A daemon on 127.0.0.1:0 with one root, running the real Claude with the scripted model."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({}))
    marker = uuid.uuid4().hex
    env = dict(claude_env(model.base_url, home), CLAUDE_PATH=claude, **{MARKER: marker})
    overrides.setdefault("kill_grace_s", 2.0)
    async with running_daemon([root], env, **overrides) as served:
        yield LiveDaemon(served.host, served.port, served.token, root, marker, served.shutdown)


OnEvent = Callable[[RunStream, RunEvent], Awaitable[None]]


async def _nothing(stream: RunStream, event: RunEvent) -> None:
    del stream, event


async def run_turn(
    daemon: LiveDaemon, request: RunRequest, on_event: OnEvent = _nothing
) -> list[RunEvent]:
    """Run one turn to its end; ``on_event`` sees each event (and may answer on the stream)."""
    events: list[RunEvent] = []
    with trio.fail_after(DEADLINE_S):
        async with open_run(daemon.host, daemon.port, daemon.token, request) as stream:
            async for event in stream:
                events.append(event)
                await on_event(stream, event)
    return events


def run_started(events: list[RunEvent]) -> RunStarted:
    """The turn's ``RunStarted`` (its first event)."""
    assert isinstance(events[0], RunStarted), events[0]
    return events[0]


async def allow_all(stream: RunStream, event: RunEvent) -> None:
    """Allow every permission request of the turn."""
    if isinstance(event, PermissionRequest):
        await stream.decide(
            PermissionDecision(request_id=event.request_id, behavior="allow", decider="test")
        )


def finished(events: list[RunEvent]) -> RunFinished:
    """The turn's ``RunFinished`` (its last event)."""
    assert isinstance(events[-1], RunFinished), events[-1]
    return events[-1]


def tool_results(model: ScriptedModel) -> list[dict[str, Any]]:
    """Every tool_result block the model received, in order (the last call's history)."""
    found = []
    for message in model.main_requests[-1]["messages"]:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                found.append(block)
    return found


def text_of(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def new_key() -> str:
    return f"task-{uuid.uuid4().hex[:8]}"
