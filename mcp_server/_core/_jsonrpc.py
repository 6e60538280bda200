"""JSON-RPC 2.0 messages: attrs records, one strict cattrs converter, orjson on the wire."""

from __future__ import annotations

from typing import Any

import attrs
import cattrs
import orjson
from cattrs.gen import make_dict_structure_fn

from ._errors import InvalidRequest, ParseError

RequestId = str | int


@attrs.frozen
class Request:
    """A call that expects a response."""

    id: RequestId
    method: str
    params: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Notification:
    """A one-way message."""

    method: str
    params: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Response:
    """A success answer (the client answering a server→client request)."""

    id: RequestId
    result: dict[str, Any]


@attrs.frozen
class ErrorResponse:
    """An error answer (from the client, to one of our requests)."""

    id: RequestId | None
    error: dict[str, Any]


Message = Request | Notification | Response | ErrorResponse


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", bool: "boolean", float: "number"}.get(
        type(value), type(value).__name__
    )


def _strict(expected: type) -> Any:
    name = _type_name(expected())

    def hook(value: Any, _: Any) -> Any:
        if type(value) is not expected:
            raise TypeError(f"expected {name}, got {_type_name(value)}")
        return value

    return hook


def _request_id(value: Any, _: Any) -> RequestId:
    if type(value) is str or type(value) is int:
        return value
    raise TypeError(f"expected string or integer, got {_type_name(value)}")


def _params(value: Any, _: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise TypeError(f"expected object, got {_type_name(value)}")
    return value


def _nullable_id(value: Any, _: Any) -> RequestId | None:
    return None if value is None else _request_id(value, None)


def make_converter() -> cattrs.Converter:
    """The strict converter for JSON-RPC envelopes: no coercion, no extra keys."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str))
    conv.register_structure_hook(int, _strict(int))
    conv.register_structure_hook(bool, _strict(bool))
    conv.register_structure_hook(float, _strict(float))
    conv.register_structure_hook_func(lambda t: t == RequestId, _request_id)
    conv.register_structure_hook_func(lambda t: t == RequestId | None, _nullable_id)
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _params)
    for cls in (Request, Notification, Response, ErrorResponse):
        conv.register_structure_hook(
            cls, make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)
        )
    return conv


CONVERTER = make_converter()


def describe(exc: Exception) -> str:
    """Render a cattrs error as ``expected X, got Y @ $.path`` lines joined by ``; ``."""
    if isinstance(exc, cattrs.BaseValidationError):
        lines = cattrs.transform_error(exc, path="$", format_exception=_format)
        return "; ".join(lines)
    return str(exc)


def _format(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"extra fields found ({', '.join(sorted(exc.extra_fields))})"
    return str(exc)


def parse(body: bytes) -> Message:
    """Decode one JSON-RPC message; raises ``ParseError`` or ``InvalidRequest``.

    An ``InvalidRequest`` carries the message's id in ``request_id`` when one could be read.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"Parse error: the body is not JSON ({exc})") from None
    try:
        return classify(data)
    except InvalidRequest as exc:
        exc.request_id = request_id_of(data)
        raise


def classify(data: Any) -> Message:
    """Turn a decoded JSON value into a message; raises ``InvalidRequest`` on a bad shape."""
    if type(data) is not dict:
        raise InvalidRequest(f"expected a JSON-RPC object, got {_type_name(data)} @ $")
    if data.get("jsonrpc") != "2.0":
        raise InvalidRequest('expected "2.0" @ $.jsonrpc')
    body = {k: v for k, v in data.items() if k != "jsonrpc"}
    cls: type[Message]
    if "method" in body:
        cls = Request if "id" in body else Notification
    elif "result" in body:
        cls = Response
    elif "error" in body:
        cls = ErrorResponse
    else:
        raise InvalidRequest("expected method, result or error @ $")
    try:
        return CONVERTER.structure(body, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise InvalidRequest(describe(exc)) from None


def request_id_of(data: Any) -> RequestId | None:
    """Best-effort id of a malformed message, for the error response."""
    if type(data) is dict:
        rid = data.get("id")
        if type(rid) is str or type(rid) is int:
            return rid
    return None


def result_message(rid: RequestId, result: dict[str, Any]) -> dict[str, Any]:
    """A success response."""
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def error_message(rid: RequestId | None, error: dict[str, Any]) -> dict[str, Any]:
    """An error response."""
    return {"jsonrpc": "2.0", "id": rid, "error": error}


def notification_message(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A notification."""
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return msg
