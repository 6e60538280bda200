"""The task CLI (``coding-agent tasks|show|logs|…``) as a real subprocess against a real
``coding-agent up`` with the stand-in agent, piped or on a pseudo-terminal.

    async with console_world(tmp_path) as world:
        ran = await world.cli("new", "--title", "Say hi", "hello")

``up`` keeps its state in ``$XDG_DATA_HOME/coding-agent``, the CLI's default: the CLI gets
``XDG_DATA_HOME`` and no URL, token or state flag, so every call exercises the discovery
``coding-agent up`` makes possible.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping

import attrs
import trio

from _support.agent_up import Up, base_env, coding_agent_up
from _support.claude_cli import claude_env, claude_executable
from _support.daemon import install_stand_in_agent
from _support.polling import eventually
from _support.scripted_model import ScriptedModel

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
"""A fixed git identity and no user or system config, for the tests' git and the daemon's."""
CLI_TIMEOUT_S = 60.0
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@attrs.frozen
class Ran:
    """A finished CLI call: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def cli_env(xdg: pathlib.Path, **extra: str) -> dict[str, str]:
    """The CLI's environment: no URL, token or state path, only where user data lives."""
    keep = ("PATH", "LANG", "HOME", "VIRTUAL_ENV", "PYTHONPATH")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    return env | {"XDG_DATA_HOME": str(xdg)} | extra


async def run_cli(*args: str, env: Mapping[str, str]) -> Ran:
    """``python -m mcp_server ARGS`` with stdout and stderr piped."""
    with trio.fail_after(CLI_TIMEOUT_S):
        done = await trio.run_process(
            [sys.executable, "-m", "mcp_server", *args],
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=dict(env),
        )
    return Ran(done.returncode, done.stdout.decode(), done.stderr.decode())


@attrs.define(eq=False)
class World:
    """A running ``up`` (state in ``xdg/coding-agent``, agents in ``root``) and its CLI."""

    root: pathlib.Path
    xdg: pathlib.Path
    up: Up

    @property
    def state(self) -> pathlib.Path:
        return self.xdg / "coding-agent"

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(self.xdg, **extra)

    async def cli(self, *args: str, **env: str) -> Ran:
        """The CLI with no server arguments (it finds ``up`` by itself)."""
        return await run_cli(*args, env=self.env(**env))


async def make_git_repo(repo: pathlib.Path) -> None:
    """A repository on branch main with one commit (README)."""
    await trio.Path(repo).mkdir(parents=True, exist_ok=True)
    await trio.Path(repo / "README").write_text("hello\n")
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "README"],
        ["commit", "-q", "-m", "first"],
    ):
        await git(repo, *command)


async def git(repo: pathlib.Path, *args: str) -> str:
    """Run git in ``repo`` with the tests' identity; its stdout."""
    done = await trio.run_process(
        ["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, capture_stdout=True
    )
    return done.stdout.decode()


@contextlib.asynccontextmanager
async def console_world(
    tmp_path: pathlib.Path, *, git_repo: bool = False, model: ScriptedModel | None = None
) -> AsyncIterator[World]:
    """``up`` with the stand-in claude; ``git_repo`` makes its root a repository first;
    ``model``: the real Claude CLI (live) against that scripted model instead."""
    root = tmp_path / "root"
    if git_repo:
        await make_git_repo(root)
    else:
        root.mkdir()
    xdg = tmp_path / "xdg"
    xdg.mkdir()  # up's log goes beside its state dir
    if model is None:
        agent_env = {"CLAUDE_PATH": install_stand_in_agent(tmp_path)}
    else:
        home = tmp_path / "home"
        (home / ".claude").mkdir(parents=True)
        (home / ".claude" / "settings.json").write_text("{}")
        agent_env = claude_env(model.base_url, home) | {"CLAUDE_PATH": claude_executable()}
    env = base_env(**agent_env, **(GIT_ENV if git_repo else {}))
    async with coding_agent_up(xdg / "coding-agent", root, env) as up:
        yield World(root, xdg, up)


@attrs.define(eq=False)
class Terminal:
    """A CLI process whose stdin, stdout and stderr are a pseudo-terminal; what it wrote."""

    process: trio.Process
    output: bytearray = attrs.field(factory=bytearray)
    closed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def plain(self) -> str:
        """What it wrote, without escape sequences."""
        return ANSI.sub("", self.text)

    async def shows(self, fragment: str, what: str, *, raw: bool = False) -> None:
        """Wait until the terminal shows ``fragment`` (``raw``: escape sequences included)."""

        def shown() -> str:
            return self.text if raw else self.plain()

        await eventually(lambda: fragment in shown(), what, lambda: repr(self.text[-2000:]))

    async def finish(self) -> int:
        """Wait for the process to exit and its last output to be read; its exit code."""
        with trio.fail_after(CLI_TIMEOUT_S):
            code = await self.process.wait()
            await self.closed.wait()
        return code

    async def _read(self, master: int) -> None:
        stream = trio.lowlevel.FdStream(master)
        try:
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except (OSError, trio.BrokenResourceError):
                    break  # EIO: every writer of the terminal's other end is gone
                if not chunk:
                    break
                self.output += chunk
        finally:
            await stream.aclose()
            self.closed.set()


@contextlib.asynccontextmanager
async def cli_on_a_terminal(*args: str, env: Mapping[str, str]) -> AsyncIterator[Terminal]:
    """``python -m mcp_server ARGS`` on a fresh pseudo-terminal; killed if still running at the
    end of the block."""
    master, slave = os.openpty()
    try:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "mcp_server", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={"TERM": "xterm", **env},
            start_new_session=True,
        )
    finally:
        os.close(slave)
    terminal = Terminal(process)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(terminal._read, master)
        try:
            yield terminal
        finally:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                await process.wait()
                await terminal.closed.wait()
