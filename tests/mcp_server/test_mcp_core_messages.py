"""JSON-RPC parsing, the strict envelope converter and the input-schema validator."""

from __future__ import annotations

import pytest

from mcp_server._core._errors import InvalidRequest, ParseError
from mcp_server._core._jsonrpc import ErrorResponse, Notification, Request, Response, parse
from mcp_server._core._schema import validate


def test_parse_request_notification_and_responses() -> None:
    """Each message kind is recognised from its members."""
    assert parse(b'{"jsonrpc":"2.0","id":1,"method":"m"}') == Request(1, "m", {})
    assert parse(b'{"jsonrpc":"2.0","method":"n","params":{"a":1}}') == Notification("n", {"a": 1})
    assert parse(b'{"jsonrpc":"2.0","id":"x","result":{}}') == Response("x", {})
    assert parse(b'{"jsonrpc":"2.0","id":null,"error":{"code":1}}') == ErrorResponse(
        None, {"code": 1}
    )


def test_malformed_json_is_parse_error() -> None:
    """Bytes that are not JSON raise ParseError (-32700)."""
    with pytest.raises(ParseError) as caught:
        parse(b"{nope")
    assert caught.value.code == -32700


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", "expected a JSON-RPC object, got array @ $"),
        (b'{"jsonrpc":"1.0","id":1,"method":"m"}', '"2.0" @ $.jsonrpc'),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"m"}', "got number @ $.id"),
        (b'{"jsonrpc":"2.0","id":true,"method":"m"}', "got boolean @ $.id"),
        (b'{"jsonrpc":"2.0","id":1,"method":5}', "expected str, got int @ $.method"),
        (b'{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}', "got array @ $.params"),
        (b'{"jsonrpc":"2.0","id":1,"method":"m","x":1}', "extra fields found (x) @ $"),
        (b'{"jsonrpc":"2.0","id":1}', "expected method, result or error @ $"),
    ],
)
def test_invalid_shapes_are_invalid_request(body: bytes, message: str) -> None:
    """Wrong shapes are -32600 with the offending path."""
    with pytest.raises(InvalidRequest) as caught:
        parse(body)
    assert caught.value.code == -32600
    assert message in caught.value.message


SCHEMA = {
    "type": "object",
    "required": ["title"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 5},
        "limit": {"type": "integer", "minimum": 1, "maximum": 10},
        "mode": {"enum": ["a", "b"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "flag": {"type": "boolean"},
    },
}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"title": "ok"}, None),
        ({"title": "ok", "limit": 2.0}, None),
        ({}, "required property missing @ $.title"),
        ({"title": ""}, "expected at least 1 characters @ $.title"),
        ({"title": "toolong"}, "expected at most 5 characters @ $.title"),
        ({"title": "x", "limit": "5"}, "expected integer, got string @ $.limit"),
        ({"title": "x", "limit": 3.5}, "expected integer, got number @ $.limit"),
        ({"title": "x", "limit": 0}, "expected a value >= 1 @ $.limit"),
        ({"title": "x", "limit": 11}, "expected a value <= 10 @ $.limit"),
        ({"title": "x", "flag": "false"}, "expected boolean, got string @ $.flag"),
        ({"title": "x", "limit": True}, "expected integer, got boolean @ $.limit"),
        ({"title": "x", "mode": "c"}, "expected one of 'a', 'b' @ $.mode"),
        ({"title": "x", "tags": ["a", 1]}, "expected string, got integer @ $.tags[1]"),
        ({"title": "x", "other": 1}, "unexpected property @ $.other"),
    ],
)
def test_schema_validator(value: object, error: str | None) -> None:
    """The validator accepts conforming values and names the first violation's path."""
    assert validate(SCHEMA, value) == error
