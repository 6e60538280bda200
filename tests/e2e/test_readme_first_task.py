"""The README's first task, made as written against a real ``coding-agent up`` and its daemon.

The transcript's calls are performed in order with the SDK client; each answer must hold what the
README shows (``…`` stands for anything, ``ID`` for the task id). The agent is the stand-in
``claude`` (tests/e2e/stand_in_claude.py), so the README's instructions are mapped to the
stand-in's prompts below.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
from typing import Any

import trio
from _support.agent_up import base_env, coding_agent_up, sdk_client
from _support.readme import README
from mcp import Client
from mcp.types import TextResourceContents

STAND_IN = pathlib.Path(__file__).parent / "stand_in_claude.py"
SECTION = "## A first task, end to end"
#: The README's instructions and the stand-in prompts that do the same.
PROMPTS = {
    "Create hello.py that prints hello.": "edit hello.py print('hello')",
    "Also print the date.": "hello",
}
ANY = "…"


def transcript() -> list[tuple[str, Any, Any]]:
    """(call, arguments, expected answer) of the README's transcript, in order."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index(SECTION) :].split("```text\n", 1)[1].split("\n```", 1)[0]
    steps: list[tuple[str, Any, Any]] = []
    for line in block.splitlines():
        if line.startswith("  → "):
            expected = re.sub(r",\s*…(?=[}\]])", "", line.removeprefix("  → "))
            expected = expected.replace("[…]", f'"{ANY}"').replace(": …", f': "{ANY}"')
            name, arguments, _ = steps[-1]
            steps[-1] = (name, arguments, json.loads(expected))
        else:
            name, _, arguments = line.partition(" ")
            steps.append((name, arguments if name == "read" else json.loads(arguments), None))
    return steps


def holds(expected: Any, actual: Any, task_id: str, where: str = "$") -> list[str]:
    """Where ``actual`` differs from what the README shows."""
    if expected == ANY:
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"expected an object, got {actual!r} @ {where}"]
        return [
            problem
            for key, value in expected.items()
            for problem in (
                holds(value, actual[key], task_id, f"{where}.{key}")
                if key in actual
                else [f"missing @ {where}.{key}"]
            )
        ]
    if isinstance(expected, str):
        expected = expected.replace("ID", task_id)
    return [] if expected == actual else [f"expected {expected!r}, got {actual!r} @ {where}"]


async def perform(client: Client, name: str, arguments: Any, task_id: str) -> Any:
    """One transcript step: a tool call's ``result``, or a resource read's JSON."""
    if name == "read":
        read = await client.read_resource(arguments.replace("ID", task_id))
        content = read.contents[0]
        assert isinstance(content, TextResourceContents), content
        return json.loads(content.text)
    arguments = {
        key: PROMPTS[value] if key == "instructions" else value.replace("ID", task_id)
        for key, value in arguments.items()
    }
    answer = await client.call_tool(name, arguments)
    assert not answer.is_error, answer
    assert answer.structured_content is not None, answer
    return answer.structured_content["result"]


def test_the_transcript_is_what_the_test_performs() -> None:
    """The parser finds the README's seven steps, each with an answer."""
    steps = transcript()
    assert [name for name, _, _ in steps] == [
        "create_task",
        "wait_task",
        "read",
        "update_task",
        "wait_task",
        "report",
        "end_task",
    ]
    assert all(expected is not None for _, _, expected in steps)


async def test_readme_first_task_as_written(tmp_path: pathlib.Path) -> None:
    """Every call of the README's first task answers what the README shows, in order."""
    root = tmp_path / "root"
    (root / "demo").mkdir(parents=True)
    agent = tmp_path / "claude"
    agent.write_text(f"#!{sys.executable}\n{STAND_IN.read_text()}")
    agent.chmod(0o755)
    async with (
        coding_agent_up(tmp_path / "state", root, base_env(CLAUDE_PATH=str(agent))) as up,
        sdk_client(up) as client,
    ):
        task_id = "ID"
        for name, arguments, expected in transcript():
            actual = await perform(client, name, arguments, task_id)
            if name == "create_task":
                task_id = actual["task_id"]
            assert holds(expected, actual, task_id) == [], (name, actual)
    assert (root / "demo" / "hello.py").read_text() == "print('hello')\n"


def readme_script(url: str, token: str) -> str:
    """The README's SDK script with the URL and token ``up`` printed."""
    text = README.read_text(encoding="utf-8")
    block = text.split("  ```python\n", 1)[1].split("\n  ```", 1)[0]
    script = "\n".join(line.removeprefix("  ") for line in block.splitlines())
    shown = 'anyio.run(main, "http://127.0.0.1:3000/mcp", "3q…")'
    assert shown in script, script
    return script.replace(shown, f"anyio.run(main, {url!r}, {token!r})")


async def test_readme_sdk_script_runs(tmp_path: pathlib.Path) -> None:
    """The README's SDK script, with the real URL and token, prints check_status's answer."""
    root = tmp_path / "root"
    root.mkdir()
    async with coding_agent_up(tmp_path / "state", root, base_env()) as up:
        result = await trio.run_process(
            [sys.executable, "-c", readme_script(up.url, up.token)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    assert "the host daemon answers" in result.stdout.decode()


def shown_banner() -> list[str]:
    """The lines the README shows ``coding-agent up`` printing, the token and ports generalised."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index("## Connect a client") :].split("```text\n", 1)[1].split("\n```")[0]
    return block.splitlines()


async def test_readme_shows_what_up_prints(tmp_path: pathlib.Path) -> None:
    """`coding-agent up` prints the README's lines, with its own URL, token, port and paths."""
    root = tmp_path / "root"
    root.mkdir()
    state = tmp_path / "state"
    async with coding_agent_up(state, root, base_env()) as up:
        host_port = up.daemon.split(" ", 1)[0]
        stdout = up.process.stdout
        assert stdout is not None
        printed = up.banner
        with trio.fail_after(30):
            while printed.count("\n") < len(shown_banner()):
                printed += (await stdout.receive_some(4096)).decode()
    expected = [
        line.replace("http://127.0.0.1:3000/mcp", up.url)
        .replace("http://127.0.0.1:3000/", up.url.removesuffix("mcp"))
        .replace("3q…", up.token)
        .replace("127.0.0.1:40123", host_port)
        .replace("/home/you/src", str(root))
        .replace("/home/you/.local/share/coding-agent", str(state))
        for line in shown_banner()
    ]
    assert printed.splitlines() == expected
