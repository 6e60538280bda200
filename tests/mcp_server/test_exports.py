"""The faces of `mcp_server._core` and `mcp_server._http`: their exports, and who reaches past."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "mcp_server"
FACES = ("mcp_server._core", "mcp_server._http")
TRIO_ADAPTER = "_trio"
PURE_CORE_MODULES = tuple(
    sorted(
        path.stem
        for path in (PACKAGE_ROOT / "_core").glob("_*.py")
        if path.stem not in ("__init__", TRIO_ADAPTER)
    )
)


@pytest.mark.parametrize("face", FACES)
def test_every_exported_name_is_importable(face: str) -> None:
    """Each name in a face's ``__all__`` is an attribute of that package."""
    module = importlib.import_module(face)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def _imported_modules(path: Path) -> list[str]:
    """The absolute dotted names ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts[:-1])
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("face", FACES)
def test_no_module_outside_a_face_imports_its_private_modules(face: str) -> None:
    """Outside ``face``'s own package, its names come from ``face`` itself, not ``face._x``."""
    inside = PACKAGE_ROOT.parent.joinpath(*face.split("."))
    offenders = [
        f"{path.relative_to(PACKAGE_ROOT.parent)} imports {name}"
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
        if inside not in path.parents
        for name in _imported_modules(path)
        if name.startswith(f"{face}._")
    ]
    assert offenders == []


def test_pure_core_modules_import_no_trio() -> None:
    """Every module of ``_core`` but its trio adapter loads with ``trio`` made unimportable."""
    assert "_server" in PURE_CORE_MODULES
    names = ", ".join(repr(f"mcp_server._core.{name}") for name in PURE_CORE_MODULES)
    program = (
        "import importlib, sys\n"
        f"ROOT = {str(PACKAGE_ROOT)!r}\n"
        "sys.modules['trio'] = None\n"
        # Bare packages: the faces re-export the trio adapter; the modules must not need it.
        "for name, path in (('mcp_server', ROOT), ('mcp_server._core', ROOT + '/_core')):\n"
        "    sys.modules[name] = type(sys)(name)\n"
        "    sys.modules[name].__path__ = [path]\n"
        f"for name in ({names},):\n"
        "    importlib.import_module(name)\n"
        "assert 'trio' not in {m.split('.')[0] for m, v in sys.modules.items() if v}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=PACKAGE_ROOT.parent,
    )
    assert done.returncode == 0, done.stderr
