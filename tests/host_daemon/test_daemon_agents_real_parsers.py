"""The adapters' argv against the real Codex and Gemini CLIs' own parsers, offline.

The daemon refuses option-like model names and session ids outright; these tests build argv
with the adapters' raw builders (no such check) to show that the binding alone (``--model=X``,
``resume -- ID``) already keeps each value out of option parsing. Each CLI runs in its own process
group with its model endpoint on a closed loopback port, and is ended once it has shown how it
read the words.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import trio
from _support.agent_clis import codex_executable, gemini_executable, offline_env

from host_daemon import spawn_group
from host_daemon._agents import _codex_argv, _gemini_argv
from host_daemon._records import RunRequest

_DEADLINE_S = 120.0
_HOSTILE_MODELS = ["--yolo", "-y", "--allowed-tools=run_shell_command", "--sandbox=false"]


@pytest.fixture
def env(tmp_path: pathlib.Path) -> dict[str, str]:
    return offline_env(tmp_path / "home")


@pytest.fixture
def work(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


async def _events_until(
    argv: list[str],
    cwd: pathlib.Path,
    env: dict[str, str],
    done: Callable[[list[dict[str, Any]]], bool],
) -> list[dict[str, Any]]:
    """The JSON events ``argv`` prints until ``done`` says enough (or it exits); then end it."""
    events: list[dict[str, Any]] = []
    other: list[str] = []
    with trio.fail_after(_DEADLINE_S):
        async with spawn_group(argv, cwd=str(cwd), env=env, kill_grace=1.0) as proc:
            async for line in proc:
                text = line.data.decode(errors="replace")
                try:
                    events.append(json.loads(text))
                except ValueError:
                    other.append(text)
                    continue
                if done(events):
                    return events
    raise AssertionError(f"{argv[0]} ended before it showed enough: {events} {other[-10:]}")


@pytest.mark.parametrize("model", _HOSTILE_MODELS)
async def test_gemini_reads_a_bound_model_and_prompt_as_values(
    env: dict[str, str], work: pathlib.Path, model: str
) -> None:
    """``--model=--yolo`` is the model named "--yolo"; ``--prompt=--yolo`` is the prompt."""
    request = RunRequest(agent="gemini", prompt="--yolo", cwd=str(work), model=model)
    argv = _gemini_argv(gemini_executable(), request, "auto_edit")
    events = await _events_until(
        argv, work, env, lambda seen: any(e.get("role") == "user" for e in seen)
    )
    [init] = [e for e in events if e.get("type") == "init"]
    assert init["model"] == model
    [prompt] = [e for e in events if e.get("role") == "user"]
    assert prompt["content"] == "--yolo"


@pytest.mark.parametrize("model", _HOSTILE_MODELS)
async def test_codex_reads_a_bound_model_as_a_value(
    env: dict[str, str], work: pathlib.Path, model: str
) -> None:
    """``--model=--yolo`` is a model codex does not know, not an option."""
    request = RunRequest(agent="codex", prompt="--help", cwd=str(work), model=model)
    argv = _codex_argv(codex_executable(), request, "read-only")

    def named(events: list[dict[str, Any]]) -> bool:
        return any(f"`{model}`" in json.dumps(event) for event in events)

    events = await _events_until(argv, work, env, named)
    assert events[0]["type"] == "thread.started"


@pytest.mark.parametrize("session", ["--help", "-h"])
async def test_codex_reads_an_option_like_session_id_as_an_id(
    env: dict[str, str], work: pathlib.Path, session: str
) -> None:
    """After ``resume --`` a session id ``--help`` is an id: codex runs instead of printing help."""
    request = RunRequest(agent="codex", prompt="go", cwd=str(work), resume_session_id=session)
    argv = _codex_argv(codex_executable(), request, "read-only")

    def started(events: list[dict[str, Any]]) -> bool:
        return any(event.get("type") == "thread.started" for event in events)

    await _events_until(argv, work, env, started)
