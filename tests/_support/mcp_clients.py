"""Real MCP clients from npm, pinned, and how tests drive them against ``coding-agent up``.

The MCP Inspector's CLI mode (``run_inspector``) and the Node scripts on the two TypeScript SDKs
in ``tests/clients`` (``sdk_script``): each script prints one JSON object per step and may pause
for a line on stdin (see ``tests/clients/scenarios.mjs``). Node >= 22 and the packages are
installed into the test cache on first use (``_support.node``, ``_support.npm_cli``); a client
that cannot be installed fails the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from html.parser import HTMLParser
from typing import Any

import attrs
import httpx
import trio

from _support.agent_up import Up, base_env
from _support.node import node_path
from _support.npm_cli import installed_package
from _support.task_server import install_agent

__all__ = [
    "INSPECTOR",
    "SDK_V1",
    "SDK_V2",
    "NpmPin",
    "ScriptProcess",
    "consent_as_owner",
    "inspector_argv",
    "run_inspector",
    "run_to_end",
    "running_script",
    "sdk_script",
    "stand_in_setup",
]

CLIENTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "clients"
INSPECTOR_TIMEOUT_S = 120.0
STEP_TIMEOUT_S = 120.0


@attrs.frozen
class NpmPin:
    """One npm package at one version."""

    package: str
    version: str

    def prefix(self) -> pathlib.Path:
        """Its install prefix in the test cache (installed on first use)."""
        return installed_package(self.package, self.version)

    def entry(self, relative: str) -> pathlib.Path:
        """A file of the installed package."""
        return self.prefix().joinpath("node_modules", *self.package.split("/"), relative)


INSPECTOR = NpmPin("@modelcontextprotocol/inspector", "2.12.0")
SDK_V1 = NpmPin("@modelcontextprotocol/sdk", "1.32.2")
SDK_V2 = NpmPin("@modelcontextprotocol/client", "2.4.0")


@attrs.frozen
class Completed:
    """A finished client process."""

    returncode: int
    stdout: str
    stderr: str


def _client_env(home: pathlib.Path) -> dict[str, str]:
    """PATH and a private HOME: a client writes its catalog and OAuth store there, not ours."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"}


def inspector_argv(up: Up, *args: str) -> list[str]:
    """The Inspector CLI against ``up`` over HTTP with the bearer token (blocking: installs)."""
    launcher = INSPECTOR.entry("clients/launcher/build/index.js")
    return [
        node_path(),
        str(launcher),
        "--cli",
        up.url,
        "--transport",
        "http",
        "--header",
        f"Authorization: Bearer {up.token}",
        *args,
    ]


async def run_to_end(argv: Sequence[str], env: Mapping[str, str]) -> Completed:
    """Run a client process to its end with exactly ``env``; its output captured."""
    with trio.fail_after(INSPECTOR_TIMEOUT_S):
        done = await trio.run_process(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=dict(env),
        )
    return Completed(done.returncode, done.stdout.decode(), done.stderr.decode())


async def run_inspector(up: Up, home: pathlib.Path, *args: str) -> Completed:
    """Run one Inspector CLI command against ``up`` (with the bearer token) to its end."""
    argv = await trio.to_thread.run_sync(lambda: inspector_argv(up, *args))
    await trio.Path(home).mkdir(parents=True, exist_ok=True)
    return await run_to_end(argv, _client_env(home))


def sdk_script(pin: NpmPin, script: str, directory: pathlib.Path) -> list[str]:
    """argv running ``tests/clients/<script>`` with ``pin`` importable (blocking: installs).

    ESM resolves bare imports from the importing file's directory upwards, so the script and
    ``scenarios.mjs`` are copied into ``directory`` beside a ``node_modules`` link to the
    installed package's (the cache is only read).
    """
    modules = pin.prefix() / "node_modules"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "node_modules").symlink_to(modules, target_is_directory=True)
    for name in (script, "scenarios.mjs"):
        (directory / name).write_bytes((CLIENTS_DIR / name).read_bytes())
    return [node_path(), str(directory / script)]


@attrs.define(eq=False)
class ScriptProcess:
    """A running SDK script: read its steps, answer its pauses."""

    process: trio.Process
    stderr_path: pathlib.Path
    _buffer: bytes = b""
    steps: list[dict[str, Any]] = attrs.Factory(list)

    async def step(self) -> dict[str, Any] | None:
        """The next step it printed, None at the end of its output."""
        assert self.process.stdout is not None
        with trio.fail_after(STEP_TIMEOUT_S):
            while b"\n" not in self._buffer:
                chunk = await self.process.stdout.receive_some(65536)
                if not chunk:
                    return None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        step: dict[str, Any] = json.loads(line)
        self.steps.append(step)
        return step

    async def until(self, name: str) -> dict[str, Any]:
        """Read steps up to the one called ``name``; fail on an error step or the end."""
        while (step := await self.step()) is not None:
            if step["step"] == name:
                return step
            if step["step"] == "error":
                break
        raise AssertionError(f"expected step {name!r}, the script said {self.report()}")

    async def rest(self) -> list[dict[str, Any]]:
        """Every step until it exits; then wait for the exit."""
        while await self.step() is not None:
            pass
        with trio.fail_after(STEP_TIMEOUT_S):
            await self.process.wait()
        return self.steps

    async def send(self, line: str) -> None:
        """Write one line to its stdin."""
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line.encode() + b"\n")

    def by_step(self) -> dict[str, dict[str, Any]]:
        """The steps read so far by name (the last one of each name)."""
        return {step["step"]: step for step in self.steps}

    def report(self) -> str:
        """Its steps and stderr, for assertion messages."""
        stderr = self.stderr_path.read_text(errors="replace")[-3000:]
        return f"steps={json.dumps(self.steps, indent=1)[-6000:]}\nstderr={stderr}"


@contextlib.asynccontextmanager
async def running_script(
    argv: Sequence[str], home: pathlib.Path, env: Mapping[str, str]
) -> AsyncIterator[ScriptProcess]:
    """Start an SDK script (``env`` on top of PATH and a private HOME); kill it on exit."""
    await trio.Path(home).mkdir(parents=True, exist_ok=True)
    stderr_path = home / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_client_env(home) | dict(env),
        )
    try:
        yield ScriptProcess(process, stderr_path)
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    await stream.aclose()


@attrs.frozen
class UpSetup:
    """What ``coding_agent_up`` needs for a run with the task stand-in as ``claude``."""

    state: pathlib.Path
    root: pathlib.Path
    env: dict[str, str]


def stand_in_setup(tmp_path: pathlib.Path) -> UpSetup:
    """A workspace, a state path and an environment whose ``claude`` is the task stand-in
    (``tests/e2e/stand_in_claude.py``: its prompts say what it does)."""
    root = tmp_path / "root"
    root.mkdir()
    agent = install_agent(tmp_path / "bin")
    return UpSetup(tmp_path / "state", root, base_env(CLAUDE_PATH=agent))


class _ConsentForm(HTMLParser):
    """The first form of a page: its action and its hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.fields: list[str] = []
        self._depth = 0  # inside the first <form> while > 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
            self._depth = 1
        elif self._depth and tag in {"input", "button"} and "name" in values:
            self.fields.append(values["name"])
            if tag == "input" and values.get("type") == "hidden":
                self.hidden[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._depth = 0


async def consent_as_owner(authorization_url: str, credential: str) -> str:
    """Be the owner's browser: open the consent page, allow with ``credential``, follow the
    redirect to the client's loopback listener. Returns where the consent redirected."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as browser:
        page = await browser.get(authorization_url)
        assert page.status_code == 200, (page.status_code, page.text[:500])
        form = _ConsentForm()
        form.feed(page.text)
        assert form.action is not None, page.text[:500]
        assert {"credential", "decision"} <= set(form.fields), form.fields
        target = urllib.parse.urljoin(authorization_url, form.action)
        origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(target))
        fields = {**form.hidden, "credential": credential, "decision": "allow"}
        posted = await browser.post(target, data=fields, headers={"Origin": origin})
        assert posted.status_code in {302, 303}, (posted.status_code, posted.text[:500])
        location = urllib.parse.urljoin(target, posted.headers["location"])
        await browser.get(location)
    return location
