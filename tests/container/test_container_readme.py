"""The deployment guide's commands (docs/deployment.md), the README's two set-up commands and
the deployment files agree, checked without Docker.

`tox -e container` (test_container_e2e.py) runs the same commands for real; these catch the
same mistakes in every pytest run.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest
from _support.readme import DEPLOYMENT, REPO, console_commands, the_command

CONTAINER = REPO / "container"


def required_compose_variables() -> set[str]:
    """The variables compose.yaml refuses to run without (``${NAME:?message}``)."""
    return set(re.findall(r"\$\{(\w+):\?", (CONTAINER / "compose.yaml").read_text()))


def run_bash(command: str, cwd: pathlib.Path, home: pathlib.Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_compose_command_finds_the_required_variables(tmp_path: pathlib.Path) -> None:
    """The guide writes container/.env with every required variable before any compose command."""
    env_line = the_command(">container/.env")
    compose_lines = [c for c in console_commands(DEPLOYMENT) if "docker compose" in c.text]
    assert compose_lines
    assert all(c.position > env_line.position for c in compose_lines)
    home, checkout = tmp_path / "home", tmp_path / "checkout"
    (home / "src").mkdir(parents=True)
    (checkout / "container").mkdir(parents=True)
    run_bash(env_line.text, cwd=checkout, home=home)
    written = dict(
        line.split("=", 1) for line in (checkout / "container" / ".env").read_text().splitlines()
    )
    assert set(written) >= required_compose_variables() >= {"HOST_FILE_ROOT", "CODING_AGENT_UID"}
    assert written["HOST_FILE_ROOT"] == os.path.realpath(home / "src")
    assert (written["CODING_AGENT_UID"], written["CODING_AGENT_GID"]) == (
        str(os.getuid()),
        str(os.getgid()),
    )


def test_compose_file_comments_rely_on_the_env_file() -> None:
    """The commands in the compose files' and Dockerfile's headers set no variable inline."""
    for name in ("compose.yaml", "compose.dev.yaml", "Dockerfile"):
        text = (CONTAINER / name).read_text()
        for line in text.splitlines():
            if line.startswith("#") and "docker compose" in line:
                assert not re.search(r"\b[A-Z_]+=\S", line), f"{name}: {line}"
        assert "container/.env" in text, name


def test_build_args_for_the_uid_are_required() -> None:
    """Compose refuses to build without your uid/gid instead of building for uid 1000."""
    assert {"CODING_AGENT_UID", "CODING_AGENT_GID"} <= required_compose_variables()


def test_guide_token_command_works_with_mcp_auth_token(tmp_path: pathlib.Path) -> None:
    """The connect step's in-container command prints MCP_AUTH_TOKEN set in coding-agent.env."""
    command = the_command("TOKEN=$(").text
    inner = re.fullmatch(r"TOKEN=\$\(docker compose .* exec -T mcp-server (.+)\)", command)
    assert inner is not None, command
    argv = shlex.split(inner[1])
    if argv[0] == "coding-agent":
        argv[:1] = [sys.executable, "-m", "mcp_server"]
    # The container with the env token set: the state directory holds no mcp.token.
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "MCP_AUTH_TOKEN": "the-env-token",
        "STATE_PATH": str(tmp_path),
    }
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "the-env-token"), result.stderr


@pytest.mark.parametrize(
    "path", ["container/.env", "container/coding-agent.env", "container/build-ca/proxy.crt"]
)
def test_local_deployment_files_are_git_ignored(path: str) -> None:
    """The env files (one holds the MCP token) and local CAs never show up in `git status`."""
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--quiet", path], cwd=REPO, timeout=60, check=False
    )
    assert result.returncode == 0, f"{path} is not git-ignored"


def test_the_example_env_file_is_not_ignored() -> None:
    """The ignore rule is not blind: the example next to it stays tracked."""
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--quiet", "container/coding-agent.env.example"],
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1


def test_guide_states_the_docker_requirements() -> None:
    """Compose v2.24+ and BuildKit are stated, and the files really need them."""
    text = DEPLOYMENT.read_text()
    assert "Compose v2.24 or later" in text
    assert "BuildKit" in text
    compose = (CONTAINER / "compose.yaml").read_text()
    assert re.search(r"^name: ", compose, re.MULTILINE)  # Compose v1 cannot parse this
    assert "required: false" in compose  # env_file path/required: Compose 2.24
    assert "COPY --chmod" in (CONTAINER / "Dockerfile").read_text()  # BuildKit only


def test_quick_start_works_on_an_externally_managed_python() -> None:
    """Both Quick start commands make their own virtualenv instead of pip-installing globally."""
    first, tests = console_commands()[:2]
    for command in (first, tests):
        assert command.section == "Quick start"
        assert command.text.startswith("python3 -m venv .venv && .venv/bin/pip install ")
        assert "python3 -m pip" not in command.text
    assert first.text.endswith("&& .venv/bin/coding-agent up")
    assert tests.text.endswith("&& .venv/bin/tox p -p 3")


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs the README's test command verbatim."""
    tests = console_commands()[1].text
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert tests in lines
