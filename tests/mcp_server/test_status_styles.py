"""Every task status, the queue's included, has a console colour and a dashboard style."""

from __future__ import annotations

import pathlib

import pytest

from mcp_server._console._render import STATUS_COLOURS
from mcp_server._tasks import TASK_STATUSES

CSS = pathlib.Path(__file__).parents[2] / "mcp_server" / "_web" / "static" / "style.css"


@pytest.mark.parametrize("status", TASK_STATUSES)
def test_status_has_a_console_colour(status: str) -> None:
    """The console paints each status (none falls back to plain text unnoticed)."""
    assert status in STATUS_COLOURS


@pytest.mark.parametrize("status", TASK_STATUSES)
def test_status_has_a_dashboard_class(status: str) -> None:
    """The dashboard's stylesheet colours each status badge."""
    assert f".status-{status} " in CSS.read_text() or f".status-{status}," in CSS.read_text()
