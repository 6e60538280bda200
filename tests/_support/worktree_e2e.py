"""The world of the worktree end-to-end tests (issue 9): a user's checkout, ``coding-agent up``
on it with the real Claude Code CLI against a scripted model, and what the tests ask of them.

    world = make_world(tmp_path, model)
    model.script(write("a.txt", "a\\n"), Reply("Done."))
    async with serving(world) as session:
        task_id = await create(session.client, "Title", "Write a.txt")
        await run_to_waiting(session.client, task_id)
    assert git(world.repo, "show", f"{branch_of(world, task_id)}:a.txt") == "a\\n"

The model makes Claude call its own Read/Edit/Write tools with relative paths: Claude resolves
them against its working directory, which is what isolation is about.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
from mcp import Client

from . import procs
from .agent_up import Up, base_env, coding_agent_up, sdk_client
from .claude_cli import claude_env, claude_executable
from .git_repos import git, make_repo
from .polling import eventually as _eventually
from .scripted_model import ScriptedModel, ToolCall
from .sdk_tasks import ok, wait_done

MARKER = "CODING_AGENT_TEST_RUN"
DEADLINE_S = 90.0
# The real CLI on a loaded machine: a longer wait than the suite's default.
eventually = functools.partial(_eventually, timeout=DEADLINE_S)
BASE_FILES = {
    "shared.txt": "line 1\nline 2\nline 3\n",
    "keep.txt": "kept as it is\n",
    "pkg/module.txt": "a module\n",
}


def read(path: str) -> ToolCall:
    """Claude's Read tool on ``path`` (Write and Edit of a file need it first)."""
    return ToolCall("Read", {"file_path": path})


def write(path: str, content: str) -> ToolCall:
    """Claude's Write tool: ``path`` gets ``content``."""
    return ToolCall("Write", {"file_path": path, "content": content})


def edit(path: str, old: str, new: str) -> ToolCall:
    """Claude's Edit tool: ``old`` becomes ``new`` in ``path``."""
    return ToolCall("Edit", {"file_path": path, "old_string": old, "new_string": new})


@attrs.frozen
class World:
    """A root holding the user's checkout ``root/repo``, a state dir, the environment of ``up``."""

    state: pathlib.Path
    root: pathlib.Path
    repo: pathlib.Path
    env: dict[str, str]
    marker: str
    #: ``up --worktrees-dir``; None: the default, ``<state>/worktrees``.
    worktrees_dir: pathlib.Path | None = None

    @property
    def worktrees(self) -> pathlib.Path:
        """The daemon's worktrees dir (``up`` runs it with its state dir as ours)."""
        return self.worktrees_dir or self.state / "worktrees"

    def worktree(self, task_id: str) -> pathlib.Path:
        """Where the daemon keeps the worktree of ``task_id``."""
        return self.worktrees / task_id

    def processes(self, up: Up | None = None) -> list[tuple[int, str]]:
        """The live processes of this test's runs (the marker is in their environment), but
        ``up``'s own."""
        exclude = () if up is None else {up.process.pid}
        return procs.marked_processes(MARKER, self.marker, exclude=exclude)


def make_world(tmp_path: pathlib.Path, model: ScriptedModel) -> World:
    """The user's checkout on ``main`` (clean, ``BASE_FILES``), and Claude pointed at the model."""
    root = tmp_path / "root"
    repo = root / "repo"
    make_repo(repo, BASE_FILES)
    home = tmp_path / "home"
    home.mkdir()
    marker = uuid.uuid4().hex
    claude = claude_executable()
    env = base_env() | claude_env(model.base_url, home) | {"CLAUDE_PATH": claude, MARKER: marker}
    return World(tmp_path / "state", root, repo, env, marker)


@attrs.frozen
class Session:
    """A running ``up`` and an SDK client of it."""

    up: Up
    client: Client


@contextlib.asynccontextmanager
async def serving(world: World) -> AsyncIterator[Session]:
    """``coding-agent up`` on the world's state and root, with an SDK client of it."""
    extra = () if world.worktrees_dir is None else ("--worktrees-dir", str(world.worktrees_dir))
    async with (
        coding_agent_up(world.state, world.root, world.env, extra_args=extra) as up,
        sdk_client(up) as client,
    ):
        yield Session(up, client)


async def create(client: Client, title: str, instructions: str, **options: Any) -> str:
    """create_task on the checkout (``project_dir`` "repo" unless given); the task's id."""
    options.setdefault("project_dir", "repo")
    created = await ok(client, "create_task", title=title, instructions=instructions, **options)
    task_id: str = created["task_id"]
    return task_id


async def run_to_waiting(client: Client, task_id: str) -> dict[str, Any]:
    """Wait for the run's end; it must have succeeded (the task waits for a follow-up)."""
    task = await wait_done(client, task_id, timeout=DEADLINE_S)
    assert task["status"] == "waiting", task
    return task


def branch_of(world: World, task_id: str) -> str:
    """The task's branch, found in the user's repository by the name issue 9 gives it."""
    prefix = f"coding-agent/{task_id[:8]}-"
    names = git(world.repo, "branch", "--list", "--format=%(refname:short)", f"{prefix}*").split()
    assert len(names) == 1, names
    return names[0]


def worktree_paths(repo: pathlib.Path) -> list[str]:
    """``git worktree list``: the checkout first, then every linked worktree."""
    listing = git(repo, "worktree", "list", "--porcelain")
    return [
        line.removeprefix("worktree ") for line in listing.splitlines() if line[:9] == "worktree "
    ]


def same_path(path: str | os.PathLike[str], other: str | os.PathLike[str]) -> bool:
    """Whether both name the same place (symlinks resolved)."""
    return os.path.realpath(path) == os.path.realpath(other)
