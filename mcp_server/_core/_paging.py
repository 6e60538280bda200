"""Cursor paging, the same for every list: a signed ``{"k": kind, "o": offset}`` cursor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._errors import InvalidParams
from ._registry import JSON
from ._state import Signer


def page_offset(signer: Signer, cursor: Any, kind: str) -> int:
    """Where the page a ``cursor`` names starts; ``InvalidParams`` for a forged or foreign one."""
    if cursor is None:
        return 0
    payload = signer.verify(cursor, "cursor")
    if type(payload) is not dict or payload.get("k") != kind or type(payload.get("o")) is not int:
        raise InvalidParams("invalid cursor")
    offset: int = payload["o"]
    return offset


def page_of(signer: Signer, kind: str, items: Sequence[JSON], *, offset: int, size: int) -> JSON:
    """``items[offset:offset + size]`` under ``kind``, with ``nextCursor`` when more follow."""
    page: JSON = {kind: list(items[offset : offset + size])}
    if offset + size < len(items):
        page["nextCursor"] = signer.sign({"k": kind, "o": offset + size})
    return page
