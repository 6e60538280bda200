"""The deployment guide (docs/deployment.md), run for real: Docker, the image, the host daemon, MCP.

Run by ``tox -e container`` (marker ``container_e2e``; needs root, as CI has): it makes the
Docker host (tests/_support/container_host.py), then as a non-root user (uid 2000, primary
group ``users``) follows the guide: ``pipx install .`` and ``install-unit``, the daemon started
with the unit's argv and environment (no systemd here) and a stand-in ``claude``, the
``container/.env`` line, ``up -d --build --wait``, doctor, the token line, backup and restore.
Everything it starts is stopped by pid at the end, also on failure.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest
from _support import container_host
from _support.container_host import Dockerd, HostUser
from _support.readme import DEPLOYMENT, console_commands, the_command

pytestmark = pytest.mark.container_e2e

CONTAINER = "coding-agent-mcp-server-1"
IMAGE = "coding-agent-mcp:latest"
MCP_URL = "http://127.0.0.1:3000/mcp"
DAEMON_PORT = 9876
STAND_IN = container_host.REPO / "tests" / "e2e" / "stand_in_claude.py"


@attrs.frozen
class Deployment:
    """The running deployment and what the tests need to reach it."""

    dockerd: Dockerd
    user: HostUser
    mcp_token: str
    up_seconds: float

    def as_user(self, command: str, *, timeout: float = 600) -> str:
        return self.user.run(self.dockerd, command, timeout=timeout)

    def inspect(self, template: str, target: str = CONTAINER) -> str:
        return self.dockerd.docker("inspect", "-f", template, target).strip()


class McpClient:
    """A minimal Streamable HTTP client (legacy sessions) for the checks."""

    def __init__(self, token: str) -> None:
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
        }
        self.next_id = 1

    def post(self, body: dict[str, Any], timeout: float = 60) -> dict[str, Any] | None:
        response = httpx.post(MCP_URL, json=body, headers=self.headers, timeout=timeout)
        response.raise_for_status()
        if "Mcp-Session-Id" in response.headers:
            self.headers["Mcp-Session-Id"] = response.headers["Mcp-Session-Id"]
        if not response.content.strip():
            return None
        if response.headers["content-type"].startswith("text/event-stream"):
            lines = [ln[5:] for ln in response.text.splitlines() if ln.startswith("data:")]
            messages = [json.loads(line) for line in lines if line.strip()]
            return next(m for m in messages if m.get("id") == body.get("id"))
        answer: dict[str, Any] = response.json()
        return answer

    def call(self, method: str, params: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.next_id += 1
        answer = self.post(body, timeout)
        assert answer is not None
        assert "error" not in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    def initialize(self) -> McpClient:
        info = {"name": "container-e2e", "version": "0"}
        params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": info}
        self.call("initialize", params)
        self.headers["MCP-Protocol-Version"] = "2025-06-18"
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    def tool(self, name: str, arguments: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        result = self.call("tools/call", {"name": name, "arguments": arguments}, timeout)
        assert not result.get("isError"), result
        text = "".join(part.get("text", "") for part in result["content"])
        found: dict[str, Any] = json.loads(text)["result"]
        return found


def unit_exec(user: HostUser, dockerd: Dockerd) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of the unit `install-unit --print` writes for this user."""
    unit = user.run(dockerd, "coding-agent-daemon install-unit --root ~/src --print")
    argv: list[str] = []
    env = {"HOME": str(user.home), "USER": user.name, "LANG": "C.UTF-8"}
    for line in unit.splitlines():
        key, _, value = line.partition("=")
        words = shlex.split(value.replace("%%", "%").replace("$$", "$")) if value else []
        if key == "ExecStart":
            argv = words
        elif key == "Environment":
            env.update(word.split("=", 1) for word in words)  # type: ignore[misc]
    assert argv, unit
    return argv, env


def wait_for_port(
    host: str, port: int, process: subprocess.Popen[bytes], log: pathlib.Path
) -> None:
    """Wait until ``host:port`` accepts a connection; fail if ``process`` exits first."""
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((host, port)) == 0:
                return
        assert process.poll() is None, f"the daemon exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"nothing listens on {host}:{port}"
        time.sleep(0.1)


def prepare_user(user: HostUser, dockerd: Dockerd) -> str:
    """The user's projects, stand-in agent, build CAs and coding-agent.env; returns the token."""
    claude = f"#!/usr/bin/python3\n{STAND_IN.read_text()}"
    user.run(
        dockerd,
        "mkdir -p ~/src/demo ~/bin && echo '# demo' >~/src/demo/README.md"
        f" && printf %s {shlex.quote(claude)} >~/bin/claude && chmod 755 ~/bin/claude",
    )
    # The README's proxy step: this machine reaches PyPI through a TLS-inspecting proxy.
    for certificate in pathlib.Path("/usr/local/share/ca-certificates").glob("*.crt"):
        user.run(dockerd, f"cp {shlex.quote(str(certificate))} container/build-ca/")
    token = "e2e-" + hashlib.sha256(os.urandom(32)).hexdigest()
    user.run(
        dockerd,
        "umask 077 && sed 's/^MCP_AUTH_TOKEN=.*/MCP_AUTH_TOKEN=" + token + "/' "
        "container/coding-agent.env.example >container/coding-agent.env",
    )
    return token


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """Docker host, the guide's user, host daemon as the unit runs it, and the guide's `up`."""
    if os.geteuid() != 0:
        pytest.fail("the container e2e needs root (it installs Docker and adds a user), as CI has")
    container_host.ensure_packages()
    container_host.ensure_compose()
    with container_host.running_dockerd() as dockerd:
        container_host.load_base_images(dockerd)
        with container_host.readme_user() as user:
            token = prepare_user(user, dockerd)
            user.run(dockerd, the_command("pipx install .").text)
            argv, env = unit_exec(user, dockerd)
            log = user.home / "daemon.log"
            with log.open("wb") as log_file:
                daemon = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=user.home,
                    user=user.uid,
                    group=user.gid,
                    extra_groups=[],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_for_port("127.0.0.1", DAEMON_PORT, daemon, log)
                user.run(dockerd, the_command(">container/.env").text)
                started = time.monotonic()
                user.run(dockerd, the_command("up -d --build --wait").text, timeout=900)
                up_seconds = time.monotonic() - started
                yield Deployment(dockerd, user, token, up_seconds)
            finally:
                subprocess.run(
                    user.argv(dockerd, "docker compose -f container/compose.yaml down -v"),
                    capture_output=True,
                    timeout=300,
                    check=False,
                )
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(timeout=60)


def moment(stamp: str) -> datetime.datetime:
    """A Docker RFC 3339 timestamp (nanoseconds) as a datetime (microseconds)."""
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    assert match is not None, stamp
    fraction = (match[2] or "0")[:6].ljust(6, "0")
    zone = match[3].replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(f"{match[1]}.{fraction}{zone}")


def start_to_healthy_s(deployment: Deployment) -> float:
    state = json.loads(deployment.inspect("{{json .State}}"))
    passed = [entry for entry in state["Health"]["Log"] if entry["ExitCode"] == 0]
    assert passed, state["Health"]
    return (moment(passed[0]["End"]) - moment(state["StartedAt"])).total_seconds()


def figure(name: str, value: str) -> None:
    """Print a measured figure (tox runs this file with -s) for docs/deployment.md and the notes."""
    print(f"\nFIGURE {name}: {value}")


def test_image_holds_this_checkouts_wheel(deployment: Deployment) -> None:
    """The image runs the wheel built from the checkout (not PyPI's `coding-agent`)."""
    probe = (
        "import hashlib, mcp_server._cli as m; "
        "print(hashlib.sha256(open(m.__file__, 'rb').read()).hexdigest())"
    )
    inside = deployment.dockerd.docker(
        "run", "--rm", "--entrypoint", "/opt/venv/bin/python", IMAGE, "-c", probe
    ).strip()
    ours = hashlib.sha256((deployment.user.checkout / "mcp_server" / "_cli.py").read_bytes())
    assert inside == ours.hexdigest()


def test_up_wait_returns_healthy_soon(deployment: Deployment) -> None:
    """`up --wait` leaves the container healthy, a few seconds after it started."""
    assert deployment.inspect("{{.State.Health.Status}}") == "healthy"
    healthy_s = start_to_healthy_s(deployment)
    started = moment(deployment.inspect("{{.State.StartedAt}}"))
    logs = deployment.dockerd.docker("logs", "--timestamps", CONTAINER)
    listening = next(line for line in logs.splitlines() if "MCP URL:" in line)
    listening_s = (moment(listening.split()[0]) - started).total_seconds()
    figure("start to listening (MCP URL printed)", f"{listening_s:.1f} s")
    figure("start to healthy", f"{healthy_s:.1f} s")
    assert listening_s <= healthy_s
    figure("up -d --build --wait (build included)", f"{deployment.up_seconds:.0f} s")
    assert healthy_s < 15


def dockerfile_user_setup() -> str:
    """The runtime stage's shell that makes the user's entries and directories (after apt)."""
    text = re.sub(r"\\\n\s*", " ", (container_host.REPO / "container" / "Dockerfile").read_text())
    step = next(line for line in text.splitlines() if line.startswith("RUN ") and "APP_UID" in line)
    parts = step.removeprefix("RUN ").split(" && ")
    first = next(i for i, part in enumerate(parts) if "APP_GID" in part or "APP_UID" in part)
    return " && ".join(parts[first:])


@pytest.mark.parametrize(("uid", "gid"), [(0, 0), (2000, 100), (1000, 1000)])
def test_dockerfile_user_setup_takes_any_ids(deployment: Deployment, uid: int, gid: int) -> None:
    """The Dockerfile's user step works for root's ids, an existing group and fresh ids alike."""
    script = f"APP_UID={uid}; APP_GID={gid}; {dockerfile_user_setup()}; stat -c %u:%g /data/state"
    owner = deployment.dockerd.docker(
        "run", "--rm", "--user", "0", "debian:bookworm-slim", "sh", "-c", script
    )
    assert owner.strip() == f"{uid}:{gid}"


def test_doctor_is_all_green(deployment: Deployment) -> None:
    """The guide's doctor line, verbatim: all good; warnings only for the agents not installed."""
    report = deployment.as_user(the_command("coding-agent doctor").text)
    lines = [line for line in report.splitlines() if line.startswith("[")]
    for check in ("token", "daemon", "agent claude", "workspace", "state", "mcp"):
        assert any(line.startswith(f"[ ok ] {check}:") for line in lines), report
    for line in lines:
        assert line.startswith("[ ok ]") or re.match(r"\[warn\] agent \w+: not found", line), report
    assert report.rstrip().endswith("all good"), report


def test_readme_token_line_gives_the_env_token(deployment: Deployment) -> None:
    """The guide's TOKEN line prints MCP_AUTH_TOKEN from container/coding-agent.env."""
    token = deployment.as_user(the_command("TOKEN=$(").text + ' && printf %s "$TOKEN"')
    assert token == deployment.mcp_token


def test_create_task_reaches_the_host_daemon(deployment: Deployment) -> None:
    """An MCP create_task through the published port runs the agent on the host to success."""
    client = McpClient(deployment.mcp_token).initialize()
    created = client.tool(
        "create_task", {"title": "e2e", "instructions": "hello", "project_dir": "demo"}
    )
    done = client.tool("wait_task", {"id": created["task_id"], "timeout_s": 50}, timeout=90)
    # A finished run leaves the task waiting for a follow-up (update_task) or end_task.
    assert (done["status"], done["outcome"]) == ("waiting", "success"), done
    assert "run started" in (deployment.user.home / "daemon.log").read_text()


def test_container_is_confined(deployment: Deployment) -> None:
    """Non-root (the user's ids), read-only root, no capabilities, the port on loopback only."""
    config = json.loads(deployment.inspect("{{json .HostConfig}}"))
    assert config["ReadonlyRootfs"] is True
    assert config["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in config["SecurityOpt"]
    bindings = config["PortBindings"]
    assert bindings == {"3000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "3000"}]}
    user = deployment.user
    server = deployment.dockerd.docker(
        "exec",
        CONTAINER,
        "sh",
        "-c",
        'pid=$(cut -d" " -f1 /proc/1/task/1/children); grep -E "^(Uid|Gid|CapEff|NoNewPrivs)"'
        " /proc/$pid/status; touch /opt/probe 2>&1 || true",
    )
    assert re.search(rf"^Uid:\s+{user.uid}\s", server, re.MULTILINE), server
    assert re.search(rf"^Gid:\s+{user.gid}\s", server, re.MULTILINE), server
    assert re.search(r"^CapEff:\s+0+$", server, re.MULTILINE), server
    assert re.search(r"^NoNewPrivs:\s+1$", server, re.MULTILINE), server
    assert "Read-only file system" in server
    listening = container_host.run(["ss", "-Hltn", "sport = :3000"])
    addresses = {line.split()[3] for line in listening.splitlines()}
    assert addresses == {"127.0.0.1:3000"}, listening


def test_figures(deployment: Deployment) -> None:
    """Image size and the server's RSS in the container, printed for docs/deployment.md."""
    size = int(deployment.dockerd.docker("image", "inspect", "-f", "{{.Size}}", IMAGE))
    rss = deployment.dockerd.docker(
        "exec",
        CONTAINER,
        "sh",
        "-c",
        'grep VmRSS /proc/$(cut -d" " -f1 /proc/1/task/1/children)/status',
    )
    figure("image size", f"{size / 1e6:.0f} MB")
    figure("server RSS", " ".join(rss.split()[1:]))
    assert 0 < size < 1_000_000_000


def test_docker_stop_completes_a_request_in_flight(deployment: Deployment) -> None:
    """`docker stop` while wait_task waits on a 3 s run: the answer arrives, the exit is 0."""
    client = McpClient(deployment.mcp_token).initialize()
    created = client.tool(
        "create_task", {"title": "stop", "instructions": "sleep 3", "project_dir": "demo"}
    )
    answers: list[dict[str, Any] | BaseException] = []

    def wait() -> None:
        try:
            waiter = McpClient(deployment.mcp_token).initialize()
            answers.append(
                waiter.tool("wait_task", {"id": created["task_id"], "timeout_s": 50}, timeout=90)
            )
        except BaseException as exc:  # reported by the assertion below
            answers.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 30
    while client.tool("report", {"id": created["task_id"]})["status"] != "in_progress":
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.1)
    deployment.as_user(f"docker stop {CONTAINER}", timeout=120)
    waiter.join(120)
    assert len(answers) == 1
    answer = answers[0]
    assert isinstance(answer, dict), repr(answer)
    assert (answer["status"], answer["outcome"]) == ("waiting", "success"), answer
    assert deployment.inspect("{{.State.ExitCode}}") == "0"


def test_state_survives_backup_restore_and_down_up(deployment: Deployment) -> None:
    """The guide's backup and restore lines, then `down` and `up`: the tasks are still there."""
    section = "Backup and restore of the state volume"
    compose = [c.text for c in console_commands(DEPLOYMENT) if c.section == section]
    assert len(compose) == 6, compose
    for command in compose:
        deployment.as_user(command, timeout=300)
    deployment.as_user("docker compose -f container/compose.yaml down", timeout=300)
    deployment.as_user(the_command("up -d --build --wait").text, timeout=900)
    client = McpClient(deployment.mcp_token).initialize()
    status = client.tool("check_status", {})
    assert status["total_tasks"] >= 2, status
    assert status["daemon"]["reachable"] is True, status


def test_development_override_reads_the_env_file(deployment: Deployment) -> None:
    """The development override's command line finds its variables in container/.env too."""
    line = "docker compose -f container/compose.yaml -f container/compose.dev.yaml"
    assert f"`{line} up`" in DEPLOYMENT.read_text()
    deployment.as_user(f"{line} config --quiet")
