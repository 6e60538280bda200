"""Node >= 22 for tests and harnesses: the system one when recent enough, else one from npm.

The npm package ``node-linux-<arch>@22`` carries a Node binary; it is installed pinned into the
test cache like the CLIs (``_support.npm_cli``). ``$CODING_AGENT_TEST_NODE`` names a binary to
use instead. Older Node crashes the pinned MCP clients and harnesses at start, so a machine
without one gets it installed, never a skip.
"""

from __future__ import annotations

import pathlib
import platform
import shutil
import subprocess

from _support.npm_cli import installed_cli

__all__ = ["NODE_MAJOR", "node_major", "node_path"]

NODE_MAJOR = 22
_ARCHES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


def node_major(node: str) -> int:
    """The major version of a node binary, 0 when it does not run."""
    try:
        out = subprocess.run(
            [node, "-p", "process.versions.node.split('.')[0]"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        return int(out.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0


def node_path() -> str:
    """A node binary >= 22: the system one if recent enough, else the pinned npm one."""
    system = shutil.which("node")
    if system is not None and node_major(system) >= NODE_MAJOR:
        return system
    arch = _ARCHES.get(platform.machine().lower())
    if arch is None:
        raise RuntimeError(f"no Node {NODE_MAJOR} package on npm for {platform.machine()}")
    package = f"node-linux-{arch}"
    binary = pathlib.PurePath("node_modules", package, "bin", "node")
    node = installed_cli(package, str(NODE_MAJOR), binary, "CODING_AGENT_TEST_NODE")
    if node_major(node) < NODE_MAJOR:
        raise RuntimeError(f"{node} is not Node >= {NODE_MAJOR}")
    return node
