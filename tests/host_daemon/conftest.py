"""Fixtures shared by the host daemon's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from host_daemon import become_subreaper


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Make the test process a child subreaper, as the daemon's CLI does at start."""
    become_subreaper()
    try:
        yield
    finally:
        become_subreaper(enable=False)
