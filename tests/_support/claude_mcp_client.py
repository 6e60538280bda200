"""The real Claude Code CLI as an MCP client of ``coding-agent up``, its model scripted.

``agent_in(...)`` is what ``up`` runs: the real Claude Code against its own scripted model.
``add_server(client, up)`` configures the server the way the README says (``claude mcp
add --transport http coding-agent URL --header "Authorization: Bearer …"``) in the client's own
throwaway ``HOME``, so nothing touches the user's configuration. ``tool_calls(body)`` reads a
model request back: the tool calls the client made and the results it sent, in order, which is
what a scripted model (``scripted_model.Decide``) picks its next call from.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import uuid
from typing import Any

import attrs
import trio

from .agent_up import Up, base_env
from .claude_cli import claude_env

SERVER = "coding-agent"
"""The name the README gives the server in ``claude mcp add``."""
READ_RESOURCE = "ReadMcpResourceTool"
"""Claude Code's tool for reading an MCP resource: ``{"server": NAME, "uri": URI}``."""
COMMAND_TIMEOUT_S = 60.0
MARKER = "CODING_AGENT_TEST_RUN"
"""The variable that marks every process of ``up``'s agent runs (``procs.marked_processes``)."""


def mcp_tool(name: str) -> str:
    """What Claude Code calls the server's tool ``name`` (``mcp__coding-agent__create_task``)."""
    return f"mcp__{SERVER}__{name}"


@attrs.frozen
class Agent:
    """What ``up`` runs: its root, its state dir, its environment and the run marker."""

    root: pathlib.Path
    state: pathlib.Path
    env: dict[str, str]
    marker: str


def agent_in(tmp_path: pathlib.Path, claude: str, model_url: str) -> Agent:
    """``up``'s agent: the real Claude Code against the model at ``model_url``, own home."""
    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "agent-home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text("{}")
    marker = uuid.uuid4().hex
    env = base_env(**claude_env(model_url, home), CLAUDE_PATH=claude, **{MARKER: marker})
    return Agent(root, tmp_path / "state", env, marker)


@attrs.frozen
class Client:
    """Where the client CLI runs: its binary, its scripted model, its home and working dir."""

    claude: str
    model_url: str
    home: pathlib.Path
    cwd: pathlib.Path

    def env(self) -> dict[str, str]:
        """The CLI's environment: the scripted model, the throwaway home (config included)."""
        return claude_env(self.model_url, self.home) | {
            "CLAUDE_CONFIG_DIR": str(self.home / ".claude")
        }


def client_in(tmp_path: pathlib.Path, claude: str, model_url: str) -> Client:
    """A client with its own ``HOME`` and working directory under ``tmp_path``."""
    home = tmp_path / "client-home"
    cwd = tmp_path / "client-cwd"
    (home / ".claude").mkdir(parents=True)
    cwd.mkdir()
    return Client(claude, model_url, home, cwd)


async def add_server(client: Client, up: Up) -> str:
    """``claude mcp add`` as the README says (the line ``up`` prints); its output."""
    line = up.banner.rstrip("\n").splitlines()[-1].strip()
    expected = (
        f'claude mcp add --transport http {SERVER} {up.url} --header "Authorization: Bearer '
        f'{up.token}"'
    )
    assert line == expected, f"up printed {line!r}, expected {expected!r}"
    argv = [
        client.claude,
        "mcp",
        "add",
        "--transport",
        "http",
        SERVER,
        up.url,
        "--header",
        f"Authorization: Bearer {up.token}",
    ]
    with trio.fail_after(COMMAND_TIMEOUT_S):
        done = await trio.run_process(
            argv,
            env=client.env(),
            cwd=str(client.cwd),
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, output
    return output


def pass_first_run_dialogs(client: Client, allow: list[str]) -> None:
    """What an interactive first start would ask, answered in the client's config beforehand.

    Onboarding done, the API key of ``claude_env`` approved, the working directory trusted, and
    permission rules that ``allow`` the given tools (the server's tools: no prompt per call).
    """
    config_path = client.home / ".claude" / ".claude.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    api_key = client.env()["ANTHROPIC_API_KEY"]
    config |= {
        "hasCompletedOnboarding": True,
        "customApiKeyResponses": {"approved": [api_key[-20:]], "rejected": []},
    }
    project = config.setdefault("projects", {}).setdefault(str(client.cwd), {})
    project["hasTrustDialogAccepted"] = True
    config_path.write_text(json.dumps(config))
    settings = {"permissions": {"allow": allow}}
    (client.home / ".claude" / "settings.json").write_text(json.dumps(settings))


@attrs.frozen
class Called:
    """One tool call the client's model made, with the result Claude Code sent back."""

    name: str
    input: dict[str, Any]
    text: str
    is_error: bool

    def answer(self) -> dict[str, Any]:
        """The server tool's answer (``{status, message, result}``) the result carried."""
        value: dict[str, Any] = json.loads(self.text)
        return value


def tool_calls(body: dict[str, Any]) -> list[Called]:
    """The tool calls of a model request's history with their results, oldest first."""
    uses: dict[str, dict[str, Any]] = {}
    calls: list[Called] = []
    for message in body.get("messages", []):
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_use":
                uses[block["id"]] = block
            elif block.get("type") == "tool_result" and block.get("tool_use_id") in uses:
                use = uses[block["tool_use_id"]]
                calls.append(
                    Called(use["name"], use["input"], _text(block), bool(block.get("is_error")))
                )
    return calls


def _text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def stream_events(output: bytes) -> list[dict[str, Any]]:
    """The stream-json events a headless run printed, in order."""
    return [json.loads(line) for line in output.decode().splitlines() if line.strip()]
