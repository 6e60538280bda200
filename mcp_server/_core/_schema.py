"""A small strict JSON Schema validator for the subset tool input schemas use.

Covers ``type`` (incl. lists of types), ``required``, ``properties``, ``additionalProperties``
(bool or schema), ``items``, ``enum``, ``const``, ``minLength``/``maxLength``,
``minimum``/``maximum``/``exclusiveMinimum``, ``minItems``/``maxItems`` and
``anyOf``/``oneOf`` (first match).
Unknown keywords are ignored, like JSON Schema does. Errors read
``expected integer, got string @ $.arguments.limit``. Names and values quoted in errors
are cut by :func:`clip`, so an oversized input never comes back whole in the error.
"""

from __future__ import annotations

from typing import Any

CLIP_CHARS = 64
"""The most characters of a client-supplied name or value an error message quotes."""

_PATH_CHARS = 256


def clip(text: object, limit: int = CLIP_CHARS) -> str:
    """Return ``str(text)`` cut to ``limit`` characters, ending in ``…`` when cut."""
    shown = str(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _at(path: str) -> str:
    # Each name is clipped as it is appended; deep nesting is bounded here, keeping the tail.
    return path if len(path) <= _PATH_CHARS else "…" + path[-(_PATH_CHARS - 1) :]


def kind_of(value: Any) -> str:  # noqa: PLR0911 (one return per JSON type reads best)
    """The JSON type name of ``value`` (``integer``, ``string``, ...), as errors word it."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    if type(value) is int:
        return "integer"
    if type(value) is float:
        return "number"
    if type(value) is str:
        return "string"
    if type(value) is list:
        return "array"
    if type(value) is dict:
        return "object"
    return type(value).__name__


def _matches(kind: str, expected: str, value: Any) -> bool:
    if kind == expected:
        return True
    if expected == "number" and kind == "integer":
        return True
    # JSON Schema counts 2.0 as an integer.
    return expected == "integer" and kind == "number" and float(value).is_integer()


def validate(schema: Any, value: Any, path: str = "$") -> str | None:  # noqa: PLR0911 (one return per keyword)
    """Return the first error as ``message @ path``, or None when ``value`` conforms."""
    if schema is False:
        return f"no value allowed @ {_at(path)}"
    if not isinstance(schema, dict):
        return None
    kind = kind_of(value)
    expected = schema.get("type")
    if expected is not None:
        options = expected if isinstance(expected, list) else [expected]
        if not any(_matches(kind, t, value) for t in options):
            return f"expected {' or '.join(options)}, got {kind} @ {_at(path)}"
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(clip(repr(v)) for v in schema["enum"])
        return f"expected one of {allowed} @ {_at(path)}"
    if "const" in schema and value != schema["const"]:
        return f"expected {clip(repr(schema['const']))} @ {_at(path)}"
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema and all(validate(s, value, path) for s in schema[keyword]):
            return f"value matches none of the allowed shapes @ {_at(path)}"
    if kind == "string":
        return _string(schema, value, path)
    if kind in ("integer", "number"):
        return _number(schema, value, path)
    if kind == "array":
        return _array(schema, value, path)
    if kind == "object":
        return _object(schema, value, path)
    return None


def _string(schema: dict[str, Any], value: str, path: str) -> str | None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        return f"expected at least {schema['minLength']} characters @ {_at(path)}"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"expected at most {schema['maxLength']} characters @ {_at(path)}"
    return None


def _number(schema: dict[str, Any], value: float, path: str) -> str | None:
    if "minimum" in schema and value < schema["minimum"]:
        return f"expected a value >= {schema['minimum']} @ {_at(path)}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"expected a value <= {schema['maximum']} @ {_at(path)}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        return f"expected a value > {schema['exclusiveMinimum']} @ {_at(path)}"
    return None


def _array(schema: dict[str, Any], value: list[Any], path: str) -> str | None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        return f"expected at least {schema['minItems']} items @ {_at(path)}"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"expected at most {schema['maxItems']} items @ {_at(path)}"
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            error = validate(items, item, f"{path}[{index}]")
            if error:
                return error
    return None


def _object(schema: dict[str, Any], value: dict[str, Any], path: str) -> str | None:
    for name in schema.get("required", ()):
        if name not in value:
            return f"required property missing @ {_at(f'{path}.{clip(name)}')}"
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        sub = properties.get(name)
        if sub is None:
            if extra is False:
                return f"unexpected property @ {_at(f'{path}.{clip(name)}')}"
            sub = extra
        error = validate(sub, item, f"{path}.{clip(name)}")
        if error:
            return error
    return None
