"""The documentation holds together: the tool reference is what the code renders, every relative
link resolves, and the README shows no command that no test runs."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

from _support.readme import README, REPO, console_commands

from mcp_server import _docs

#: A Markdown link's target: ``[text](target)``, not an image's, not an absolute URL.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def markdown_files() -> list[pathlib.Path]:
    """The Markdown files git tracks."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "*.md"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout
    return [REPO / name for name in listing.decode().split("\0") if name]


def anchors(path: pathlib.Path) -> set[str]:
    """The heading anchors GitHub makes for ``path``."""
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_tools_reference_is_what_the_registry_renders(tmp_path: pathlib.Path) -> None:
    """docs/tools.md equals `python -m mcp_server._docs` (re-run it after changing a tool)."""
    rendered = _docs.render(_docs.build_registry(tmp_path))
    assert (REPO / "docs" / "tools.md").read_text(encoding="utf-8") == rendered


def test_docs_module_prints_the_reference() -> None:
    """The command CONTRIBUTING.md gives prints the same text the test compares."""
    result = subprocess.run(
        [sys.executable, "-m", "mcp_server._docs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (REPO / "docs" / "tools.md").read_text(encoding="utf-8")


def test_every_relative_link_resolves() -> None:
    """Each relative link in a tracked *.md names a file that exists (and its heading, if any)."""
    broken = []
    for path in markdown_files():
        for target in LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            name, _, anchor = target.partition("#")
            linked = (path.parent / name).resolve() if name else path
            if not linked.exists():
                broken.append(f"{path.relative_to(REPO)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    assert broken == []


def test_readme_shows_only_commands_a_test_runs() -> None:
    """The README's only shell commands are the two set-up lines that
    tests/container/test_container_readme.py holds (the first is run by
    tests/e2e/test_readme_first_task.py's `coding-agent up`, the second by .ci/run; that file
    also performs the first-task transcript and runs the SDK script); the
    deployment commands live in docs/deployment.md, which tests/container/test_container_e2e.py
    runs."""
    commands = [c.text for c in console_commands(README)]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install '.[server]' && .venv/bin/coding-agent up",
        "python3 -m venv .venv && .venv/bin/pip install tox && .venv/bin/tox p -p 3",
    ]
