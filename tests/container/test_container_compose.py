"""container/compose.yaml and the Dockerfile, checked as parsed YAML and as instructions."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import attrs
import pytest
import yaml

from mcp_server import HttpSettings
from mcp_server._config import ServerConfig

REPO = pathlib.Path(__file__).resolve().parents[2]
CONTAINER = REPO / "container"
DESIGN_ENVIRONMENT = {
    "PORT",
    "STATE_PATH",
    "HOST_FILE_ROOT",
    "CLAUDE_PROXY_HOST",
    "CLAUDE_PROXY_PORT",
    "CLAUDE_AVAILABLE",
    "GIT_AVAILABLE",
    "TUNNEL_ENABLED",
    "DAEMON_TOKEN_FILE",
}
AGENT_CREDENTIALS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((CONTAINER / name).read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture
def service() -> dict[str, Any]:
    """The `mcp-server` service of compose.yaml."""
    services = load("compose.yaml")["services"]
    assert list(services) == ["mcp-server"]
    result: dict[str, Any] = services["mcp-server"]
    return result


def seconds(duration: str) -> float:
    """A compose duration such as `1m30s` or `45s` in seconds."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration
    assert match is not None, duration
    return int(match[1] or 0) * 60 + int(match[2] or 0)


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (CONTAINER / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_compose_publishes_on_loopback_only(service: dict[str, Any]) -> None:
    """The MCP port is published on 127.0.0.1 only, and nothing else is published."""
    assert service["ports"] == ["127.0.0.1:3000:3000"]


def test_compose_maps_the_host_gateway(service: dict[str, Any]) -> None:
    """host.docker.internal resolves to the host, where the daemon listens."""
    assert "host.docker.internal:host-gateway" in service["extra_hosts"]
    assert service["environment"]["CLAUDE_PROXY_HOST"] == "host.docker.internal"


def test_compose_volumes_keep_state_and_map_the_workspace(service: dict[str, Any]) -> None:
    """State lives in the named volume; HOST_FILE_ROOT is the container's /workspace."""
    assert "coding-agent-state:/data/state" in service["volumes"]
    assert "${HOST_FILE_ROOT}:/workspace:rw" in service["volumes"]
    assert "coding-agent-state" in load("compose.yaml")["volumes"]
    assert service["environment"]["STATE_PATH"] == "/data/state"


def test_compose_limits_resources(service: dict[str, Any]) -> None:
    """Two CPUs and 2 GiB at most, 512 MiB reserved."""
    resources = service["deploy"]["resources"]
    assert float(resources["limits"]["cpus"]) == 2
    assert resources["limits"]["memory"] == "2G"
    assert resources["reservations"]["memory"] == "512M"


def test_compose_environment_names_design_settings(service: dict[str, Any]) -> None:
    """Every setting the container needs is in compose.yaml, none with a secret inline."""
    environment = service["environment"]
    assert set(environment) >= DESIGN_ENVIRONMENT
    assert environment["HOST_FILE_ROOT"].startswith("${HOST_FILE_ROOT:?")
    for name in ("MCP_AUTH_TOKEN", "DAEMON_TOKEN", *AGENT_CREDENTIALS):
        assert name not in environment


def test_compose_tokens_come_from_files(service: dict[str, Any]) -> None:
    """Tokens come from an env file and the daemon's token file (a secret), never inline."""
    env_files = [entry["path"] for entry in service["env_file"]]
    assert env_files == ["./coding-agent.env"]
    assert service["secrets"] == ["daemon_token"]
    assert service["environment"]["DAEMON_TOKEN_FILE"] == "/run/secrets/daemon_token"
    secret_file = load("compose.yaml")["secrets"]["daemon_token"]["file"]
    assert secret_file.endswith("/.local/state/coding-agent/daemon.token}")


def test_compose_stop_grace_outlasts_the_server_drain(service: dict[str, Any]) -> None:
    """Docker waits longer than the server's task grace plus its HTTP drain before SIGKILL."""
    fields = attrs.fields(ServerConfig)
    drain = fields.grace_s.default + fields.http_graceful_s.default
    assert drain >= HttpSettings().graceful_timeout_s
    assert service["stop_signal"] == "SIGTERM"
    assert seconds(service["stop_grace_period"]) > drain


def test_compose_healthcheck_matches_the_image(service: dict[str, Any]) -> None:
    """The compose healthcheck runs the same probe as the image's HEALTHCHECK."""
    assert service["healthcheck"]["test"] == ["CMD", "python", "/usr/local/bin/healthcheck.py"]
    healthcheck = dict(instructions())["HEALTHCHECK"]
    assert healthcheck.endswith('CMD ["python", "/usr/local/bin/healthcheck.py"]')


def test_compose_development_override_mounts_the_source() -> None:
    """The development override runs the checkout's packages instead of the installed wheel."""
    dev = load("compose.dev.yaml")["services"]["mcp-server"]
    assert "../mcp_server:/src/mcp_server:ro" in dev["volumes"]
    assert "../host_daemon:/src/host_daemon:ro" in dev["volumes"]
    assert dev["environment"]["PYTHONPATH"] == "/src"


def test_dockerfile_is_multistage_with_the_server_extra() -> None:
    """A build stage installs the wheel with only the `server` extra; the runtime copies it."""
    steps = instructions()
    stages = [args for keyword, args in steps if keyword == "FROM"]
    assert len(stages) == 2
    assert stages[0].endswith(" AS build")
    install = next(args for keyword, args in steps if keyword == "RUN" and "pip install" in args)
    assert "[server]" in install
    assert "test" not in install
    assert ("COPY", "--from=build /opt/venv /opt/venv") in steps


def test_dockerfile_installs_the_built_wheel_by_path() -> None:
    """pip installs the wheel file just built, never `coding-agent` by name (PyPI has another)."""
    install = next(a for k, a in instructions() if k == "RUN" and "pip install" in a)
    assert "--find-links" not in install
    assert "coding-agent[" not in install
    wheel_dir = re.search(r"pip wheel --no-deps --wheel-dir (\S+) \.", install)
    assert wheel_dir is not None, install
    assert f"set -- {wheel_dir[1]}/coding_agent-*.whl" in install
    assert install.endswith('pip install "$1[server]"')


def test_dockerfile_takes_any_uid_and_gid() -> None:
    """No useradd/groupadd (they fail for root's ids or an existing group such as gid 100):
    passwd and group entries are added only where the ids are free, and the user is numeric."""
    steps = instructions()
    text = " ".join(" ".join(args.split()) for keyword, args in steps if keyword == "RUN")
    assert "useradd" not in text
    assert "groupadd" not in text
    assert 'getent group "${APP_GID}" >/dev/null ||' in text
    assert 'getent passwd "${APP_UID}" >/dev/null ||' in text
    assert 'chown "${APP_UID}:${APP_GID}" /data/state /workspace /home/appuser' in text
    assert dict(steps)["USER"] == "${APP_UID}:${APP_GID}"


def test_healthcheck_interval_keeps_up_wait_short(service: dict[str, Any]) -> None:
    """Docker's first probe comes one interval after the start: at most 5 s, in both places."""
    assert seconds(service["healthcheck"]["interval"]) <= 5
    healthcheck = dict(instructions())["HEALTHCHECK"]
    interval = re.search(r"--interval=(\S+)", healthcheck)
    assert interval is not None
    assert seconds(interval[1]) <= 5


def test_build_takes_pip_settings_and_extra_cas(service: dict[str, Any]) -> None:
    """Index, extra index, trusted host reach the build stage as build args; extra CAs from
    container/build-ca/ are trusted there and by pip."""
    names = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")
    args = service["build"]["args"]
    steps = instructions()
    froms = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    build_stage = steps[froms[0] : froms[1]]
    for name in names:
        assert args[name] == f"${{{name}:-}}"
        assert ("ARG", name) in build_stage
    assert ("COPY", "container/build-ca/ /usr/local/share/ca-certificates/build-ca/") in build_stage
    assert ("RUN", "update-ca-certificates") in build_stage
    assert any(k == "ENV" and "PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in a for k, a in steps)


def test_dockerfile_runs_tini_as_an_unprivileged_user() -> None:
    """tini is PID 1, the user is not root, only 3000 is exposed, SIGTERM stops it."""
    steps = dict(instructions())
    assert steps["ENTRYPOINT"] == '["/usr/bin/tini", "--", "/usr/local/bin/entrypoint.sh"]'
    assert steps["USER"] not in {"root", "0", "0:0"}
    assert steps["EXPOSE"] == "3000"
    assert steps["STOPSIGNAL"] == "SIGTERM"
    assert [keyword for keyword, _ in instructions()].count("EXPOSE") == 1


def test_dockerfile_carries_no_agent_credentials() -> None:
    """No agent credential is set or copied into the image."""
    text = (CONTAINER / "Dockerfile").read_text()
    for name in (*AGENT_CREDENTIALS, "CLAUDE_CODE_OAUTH_TOKEN", ".claude", ".codex", ".gemini"):
        assert name not in text


def test_dockerignore_lets_every_copied_path_through() -> None:
    """The build context filter excludes everything but what the Dockerfile copies."""
    patterns = (CONTAINER / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in patterns if line.startswith("!")}
    assert "*" in patterns
    for keyword, args in instructions():
        if keyword == "COPY" and "--from=" not in args:
            *sources, _destination = [word for word in args.split() if not word.startswith("--")]
            for source in sources:
                assert source.rstrip("/").removeprefix("./") in allowed, source
