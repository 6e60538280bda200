"""A small strict JSON Schema validator for the subset tool input schemas use.

Covers ``type`` (incl. lists of types), ``required``, ``properties``, ``additionalProperties``
(bool or schema), ``items``, ``enum``, ``const``, ``minLength``/``maxLength``,
``minimum``/``maximum``, ``minItems``/``maxItems`` and ``anyOf``/``oneOf`` (first match).
Unknown keywords are ignored, like JSON Schema does. Errors read
``expected integer, got string @ $.arguments.limit``.
"""

from __future__ import annotations

from typing import Any


def _kind(value: Any) -> str:  # noqa: PLR0911 (one return per JSON type reads best)
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
        return f"no value allowed @ {path}"
    if not isinstance(schema, dict):
        return None
    kind = _kind(value)
    expected = schema.get("type")
    if expected is not None:
        options = expected if isinstance(expected, list) else [expected]
        if not any(_matches(kind, t, value) for t in options):
            return f"expected {' or '.join(options)}, got {kind} @ {path}"
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        return f"expected one of {allowed} @ {path}"
    if "const" in schema and value != schema["const"]:
        return f"expected {schema['const']!r} @ {path}"
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema and all(validate(s, value, path) for s in schema[keyword]):
            return f"value matches none of the allowed shapes @ {path}"
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
        return f"expected at least {schema['minLength']} characters @ {path}"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"expected at most {schema['maxLength']} characters @ {path}"
    return None


def _number(schema: dict[str, Any], value: float, path: str) -> str | None:
    if "minimum" in schema and value < schema["minimum"]:
        return f"expected a value >= {schema['minimum']} @ {path}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"expected a value <= {schema['maximum']} @ {path}"
    return None


def _array(schema: dict[str, Any], value: list[Any], path: str) -> str | None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        return f"expected at least {schema['minItems']} items @ {path}"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"expected at most {schema['maxItems']} items @ {path}"
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
            return f"required property missing @ {path}.{name}"
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        sub = properties.get(name)
        if sub is None:
            if extra is False:
                return f"unexpected property @ {path}.{name}"
            sub = extra
        error = validate(sub, item, f"{path}.{name}")
        if error:
            return error
    return None
