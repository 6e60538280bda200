"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _support.scripted_model import ScriptedModel, open_scripted_model


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    """A scripted model on loopback that the real agent CLI talks to instead of the API."""
    async with open_scripted_model() as scripted:
        yield scripted
