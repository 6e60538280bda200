"""The session record's codec and change check (``mcp_server._http._session_files``)."""

from __future__ import annotations

import re
from typing import Any

import attrs
import orjson
import pytest

from mcp_server._http._session_files import SessionRecord, decode_record, encode_record

RECORD = SessionRecord(
    id_hash="a" * 64,
    version="2025-11-25",
    client_capabilities={"roots": {}},
    client_info={"name": "c", "version": "1"},
    log_level="error",
    subscriptions=("task://1",),
    initialized=True,
    last_seen=1.5,
)
OTHER: dict[str, Any] = {
    "id_hash": "b" * 64,
    "version": "2025-06-18",
    "client_capabilities": {},
    "client_info": {},
    "log_level": "debug",
    "subscriptions": (),
    "initialized": False,
}


def test_record_round_trips() -> None:
    """A record reads back equal to what was written."""
    assert decode_record(encode_record(RECORD), RECORD.id_hash) == RECORD


@pytest.mark.parametrize("field", [f.name for f in attrs.fields(SessionRecord)])
def test_same_state_sees_every_field_but_last_seen(field: str) -> None:
    """Every kept field counts as a change; only last_seen does not (it is touched apart)."""
    changed = attrs.evolve(RECORD, **{field: OTHER.get(field, 99.0)})
    assert RECORD.same_state(changed) is (field == "last_seen")


@pytest.mark.parametrize(
    ("patch", "says"),
    [
        ({"log_level": "loud"}, "expected one of debug"),
        ({"subscriptions": "task://1"}, "expected array of strings"),
        ({"initialized": "true"}, "expected boolean, got str @ $.initialized"),
        ({"extra": 1}, "extra fields found (extra)"),
    ],
)
def test_bad_records_are_refused_saying_where(patch: dict[str, Any], says: str) -> None:
    """A malformed record is a ValueError naming what was expected and where."""
    data = {**attrs.asdict(RECORD), "subscriptions": list(RECORD.subscriptions), **patch}
    with pytest.raises(ValueError, match=re.escape(says)):
        decode_record(orjson.dumps(data), RECORD.id_hash)


def test_record_under_another_name_is_refused() -> None:
    """A record whose id_hash is not its file name is not trusted."""
    with pytest.raises(ValueError, match="expected id_hash"):
        decode_record(encode_record(RECORD), "c" * 64)
