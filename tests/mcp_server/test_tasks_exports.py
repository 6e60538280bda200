"""The coding-task layer's public names: exported from ``mcp_server._tasks`` and used from there."""

from __future__ import annotations

import ast
import inspect
import pathlib

import pytest

import mcp_server._tasks as tasks

PACKAGE = pathlib.Path(tasks.__file__).parent
SERVER = PACKAGE.parent


def test_every_export_exists_and_is_defined_in_the_layer() -> None:
    """Each name in ``__all__`` resolves, and classes and functions come from ``_tasks``."""
    assert sorted(tasks.__all__) == sorted(set(tasks.__all__))
    for name in tasks.__all__:
        value = getattr(tasks, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("mcp_server._tasks."), (name, value.__module__)


def test_every_public_name_of_the_package_is_exported() -> None:
    """A public name bound in ``_tasks/__init__.py`` is listed in ``__all__``."""
    public = {name for name in vars(tasks) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(tasks, name)) is type(tasks)}
    assert public - modules == set(tasks.__all__)


def _private_task_imports(path: pathlib.Path) -> list[str]:
    """The ``_tasks._module`` imports in ``path`` (absolute or relative)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            parts = node.module.split(".")
            if "_tasks" in parts and parts.index("_tasks") < len(parts) - 1:
                found.append(f"{path.relative_to(SERVER.parent)}:{node.lineno} {node.module}")
    return found


def test_the_server_imports_the_layer_only_through_its_package() -> None:
    """Modules of mcp_server outside ``_tasks`` import its names from ``mcp_server._tasks``."""
    outside = [p for p in sorted(SERVER.rglob("*.py")) if PACKAGE not in p.parents]
    assert outside
    assert [line for path in outside for line in _private_task_imports(path)] == []


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (tasks.TaskNotFound("x"), "task_not_found"),
        (tasks.TaskBusy("x"), "busy"),
        (tasks.PathRefused("outside"), "path_outside_workspace"),
        (tasks.InvalidTransition("no"), "invalid_state"),
        (tasks.ShuttingDown("stopping"), "shutting_down"),
        (tasks.StateWriteError(OSError(28, "No space left on device"), "/s"), "state_unwritable"),
        (tasks.RunNotStarted("x", "daemon_unavailable", "down"), "daemon_unavailable"),
        (tasks.ToolFailure("prompt_not_found", "no prompt"), "prompt_not_found"),
    ],
)
def test_every_error_of_the_layer_carries_its_code(error: Exception, code: str) -> None:
    """Each error the layer raises on purpose is a TaskError naming its tool-answer code."""
    assert isinstance(error, tasks.TaskError)
    assert error.code == code
