"""The public names: ``host_daemon.__all__`` is the API, and the MCP server uses nothing else."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import host_daemon
import mcp_server


@pytest.mark.parametrize("name", host_daemon.__all__)
def test_every_public_name_imports(name: str) -> None:
    """Each name in ``__all__`` is an attribute of the package."""
    assert hasattr(host_daemon, name)


def test_star_import_gives_exactly_the_public_names() -> None:
    """``from host_daemon import *`` binds every name of ``__all__`` and nothing else."""
    namespace: dict[str, object] = {}
    exec("from host_daemon import *", namespace)  # noqa: S102 -- a fixed import statement
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(host_daemon.__all__)


def test_every_public_looking_name_is_in_all() -> None:
    """Nothing in the package's namespace looks public without being listed in ``__all__``."""
    public = {
        name
        for name, value in vars(host_daemon).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(host_daemon.__all__) - {"__version__"}


def private_host_daemon_imports(source: str) -> list[str]:
    """The imports in ``source`` that reach into a private module of ``host_daemon``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("host_daemon._")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("host_daemon._"):
                found.append(node.module)
            elif node.module == "host_daemon":
                found += [f"host_daemon.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_the_scan_sees_each_way_of_reaching_a_private_module() -> None:
    """The scan below flags ``import host_daemon._x``, ``from host_daemon._x`` and ``from
    host_daemon import _x``, and passes the public package."""
    source = (
        "import host_daemon._process\n"
        "from host_daemon._records import AgentName\n"
        "from host_daemon import _server, probe\n"
        "import host_daemon\n"
        "from host_daemon import AgentName\n"
    )
    assert private_host_daemon_imports(source) == [
        "host_daemon._process",
        "host_daemon._records",
        "host_daemon._server",
    ]


def test_mcp_server_imports_host_daemon_only_from_the_package() -> None:
    """No module of ``mcp_server`` imports a private ``host_daemon`` module."""
    package = Path(mcp_server.__file__).parent
    found = {
        str(path.relative_to(package)): names
        for path in sorted(package.rglob("*.py"))
        if (names := private_host_daemon_imports(path.read_text(encoding="utf-8")))
    }
    assert found == {}
