"""The coding-task layer's one strict converter factory and its one error wording.

Both boundaries of the layer structure JSON with a converter from :func:`make_strict_converter`:
tool arguments (:mod:`._arguments`) and the state files (:mod:`._files`). Each keeps its own
instance; the rules are the same. Failures read ``expected str, got int @ $.arguments.title``:
what was expected, what came, and where (:func:`describe_error`).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

import cattrs
from cattrs.preconf.json import make_converter


class TypeMismatch(TypeError):
    """A strict hook's refusal, worded for the error path: ``expected int, got str``."""


def type_name(value: object) -> str:
    """The name an error gives a JSON value's type: Python's scalars, JSON's containers."""
    if value is None:
        return "null"
    names = {bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _strict(kind: type) -> Callable[[Any, type], Any]:
    def structure(value: Any, _: type) -> Any:
        if type(value) is not kind:
            raise TypeMismatch(f"expected {kind.__name__}, got {type_name(value)}")
        return value

    return structure


def _structure_float(value: Any, _: type) -> float:
    # JSON has one number type: an integral float arrives as an int, and that is fine.
    if type(value) not in (int, float):
        raise TypeMismatch(f"expected float, got {type_name(value)}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite float, got {value}")
    return float(value)


def _structure_datetime(value: Any, _: type) -> datetime.datetime:
    if type(value) is not str:
        raise TypeMismatch(f"expected str, got {type_name(value)}")
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got {value!r}")
    return parsed


def make_strict_converter() -> cattrs.Converter:
    """A converter that takes scalars exactly as typed (``"false"`` is no bool, ``3.7`` no int,
    ``5`` no str), timezone-aware ISO datetimes, and no extra keys."""
    converter = make_converter(forbid_extra_keys=True)
    for kind in (str, int, bool):
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(datetime.datetime, _structure_datetime)
    converter.register_unstructure_hook(datetime.datetime, lambda d: d.isoformat())
    return converter


def _literal_values(type_: Any) -> list[Any]:
    """The values a Literal admits, also inside an optional (``Literal[...] | None``)."""
    if get_origin(type_) is Literal:
        return list(get_args(type_))
    return [value for arm in get_args(type_) for value in _literal_values(arm)]


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, TypeMismatch):
        return str(exc)
    if isinstance(exc, cattrs.errors.CattrsError) and " not in literal " in str(exc) and type_:
        return f"expected one of {', '.join(map(repr, _literal_values(type_)))}"
    if isinstance(exc, ValueError) and not isinstance(exc, cattrs.BaseValidationError):
        return str(exc)  # a bound's validator or a hook: already says what it expected
    return cattrs.v.format_exception(exc, type_)


def describe_error(exc: BaseException, path: str = "$") -> str:
    """One clause per problem, joined by ``; ``: ``expected int, got str @ $.event_count``."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, path, format_exception=_format_exception))
    return str(exc) or type(exc).__name__
