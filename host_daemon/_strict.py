"""The package's one strict converter, and the one wording of its errors.

Every boundary where outside data becomes records (today: the wire) structures through a
converter from ``make_strict_converter``, and words a failure as ``expected int, got str @
$.max_turns``: the Python name of a scalar type, JSON's name (``array``, ``object``, ``null``)
of anything else, and where it was found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cattrs
from cattrs.cols import is_mapping, is_mutable_sequence, list_structure_factory
from cattrs.preconf.orjson import make_converter


class _Mismatch(TypeError):
    """A strict hook's refusal, already worded for the error path: ``expected int, got str``."""


def json_type_name(value: object) -> str:
    """How an error names a value's type: ``int``, ``str``, ``bool``, ``float``, ``array``, ..."""
    names = {bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _strict(expected: type[Any]) -> Callable[[object, type[Any]], Any]:
    def hook(value: object, _: type[Any]) -> Any:
        if type(value) is expected:
            return value
        raise _Mismatch(f"expected {expected.__name__}, got {json_type_name(value)}")

    return hook


def _strict_float(value: object, _: type[Any]) -> float:
    # JSON has one number type: an integral float arrives as an int, and that is fine.
    if type(value) in (float, int):
        return float(value)  # type: ignore[arg-type]  # narrowed by the type check above
    raise _Mismatch(f"expected float, got {json_type_name(value)}")


def _strict_list_factory(
    type_: Any, converter: cattrs.Converter
) -> Callable[[object, type[Any]], Any]:
    inner = list_structure_factory(type_, converter)

    def hook(value: object, cl: type[Any]) -> Any:
        if type(value) is not list:
            raise _Mismatch(f"expected array, got {json_type_name(value)}")
        return inner(value, cl)

    return hook


def _strict_dict(value: object, _: type[Any]) -> dict[str, Any]:
    # Every dict on the wire is a free-form ``dict[str, Any]``: JSON keys are strings already.
    if type(value) is not dict:
        raise _Mismatch(f"expected object, got {json_type_name(value)}")
    return value


def make_strict_converter() -> cattrs.Converter:
    """A converter that refuses coercion (``"false"`` is no bool, ``3.7`` no int) and extra keys."""
    converter = make_converter(forbid_extra_keys=True)
    for scalar in (bool, int, str):
        converter.register_structure_hook(scalar, _strict(scalar))
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook_factory(is_mutable_sequence, _strict_list_factory)
    converter.register_structure_hook_func(is_mapping, _strict_dict)
    return converter


def _format_exception(exc: BaseException, type_: type[Any] | None) -> str:
    if isinstance(exc, _Mismatch):
        return str(exc)
    if isinstance(exc, cattrs.errors.CattrsError) and " not in literal " in str(exc):
        return f"expected one of {', '.join(map(repr, type_.__args__))}" if type_ else str(exc)
    return cattrs.v.format_exception(exc, type_)


def describe_structure_error(exc: Exception, path: str = "$") -> str:
    """Render a cattrs failure as ``expected int, got str @ $.max_turns; …``."""
    return "; ".join(cattrs.transform_error(exc, path, format_exception=_format_exception))
