"""The dashboard's settings from the environment."""

from __future__ import annotations

import pathlib

import pytest

from mcp_server._config import ConfigError, serve_config


def _environ(tmp_path: pathlib.Path, **extra: str) -> dict[str, str]:
    return {
        "STATE_PATH": str(tmp_path / "state"),
        "MCP_AUTH_TOKEN": "t" * 32,
        "DAEMON_TOKEN": "d" * 32,
        **extra,
    }


def test_session_idle_defaults_to_twelve_hours(tmp_path: pathlib.Path) -> None:
    """Without DASHBOARD_SESSION_IDLE_S a login lasts 12 h unused."""
    assert serve_config(_environ(tmp_path)).dashboard.session_idle_s == 12 * 3600


def test_session_idle_from_env(tmp_path: pathlib.Path) -> None:
    """DASHBOARD_SESSION_IDLE_S sets how long an unused login lasts."""
    config = serve_config(_environ(tmp_path, DASHBOARD_SESSION_IDLE_S="900"))
    assert config.dashboard.session_idle_s == 900


def test_session_idle_refuses_nonsense(tmp_path: pathlib.Path) -> None:
    """A non-positive or non-numeric DASHBOARD_SESSION_IDLE_S is refused, naming it."""
    for value in ("0", "-5", "soon", "nan"):
        with pytest.raises(ConfigError, match="DASHBOARD_SESSION_IDLE_S"):
            serve_config(_environ(tmp_path, DASHBOARD_SESSION_IDLE_S=value))
