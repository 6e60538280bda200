"""The MCP Inspector's tool-schema portability lint (``--strict``), mirrored in Python.

Source: ``@modelcontextprotocol/inspector`` 2.12.0, ``clients/cli/build/index.js``, the section
``// ../../core/json/schemaLint.ts`` (``walk``, ``lintNode``, ``constrainsInstance``,
``forEachSubschema``; the keyword sets below are copied from it). It walks every subschema of a
tool's ``inputSchema`` and ``outputSchema`` and reports:

- ``boolean-schema`` (error): a bare ``true``/``false`` where a schema object is expected (allowed
  only under ``additionalProperties``, ``unevaluatedProperties``, ``additionalItems``,
  ``unevaluatedItems``);
- ``type-union`` (warning): ``type`` given as a list of JSON types;
- ``remote-ref`` (warning): a ``$ref`` not starting with ``#`` (when no ``$id`` is declared);
- ``untyped-schema`` (warning): a schema with no constraining keyword (not under ``not``).

``--strict`` prints every finding and exits 6 on an error; the Inspector counted 8
``untyped-schema`` warnings on our ``outputSchema.properties.result`` before issue 15.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

BOOLEAN_VALUED_KEYWORDS = frozenset(
    {"additionalProperties", "unevaluatedProperties", "additionalItems", "unevaluatedItems"}
)
SUBSCHEMA_KEYWORDS = (
    "items",
    "contains",
    "not",
    "propertyNames",
    "if",
    "then",
    "else",
    "additionalProperties",
    "unevaluatedProperties",
    "additionalItems",
    "unevaluatedItems",
    "contentSchema",
)
SUBSCHEMA_ARRAY_KEYWORDS = ("allOf", "anyOf", "oneOf", "prefixItems")
SUBSCHEMA_MAP_KEYWORDS = (
    "properties",
    "patternProperties",
    "dependentSchemas",
    "dependencies",
    "$defs",
    "definitions",
)
CONSTRAINING_KEYWORDS = frozenset(
    {
        # assertions
        "type",
        "enum",
        "const",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "format",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxContains",
        "minContains",
        "maxProperties",
        "minProperties",
        "required",
        "dependentRequired",
        # applicators (if/then/else count only as a pair)
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "items",
        "prefixItems",
        "contains",
        "additionalItems",
        "unevaluatedItems",
        "properties",
        "patternProperties",
        "additionalProperties",
        "unevaluatedProperties",
        "propertyNames",
        "dependentSchemas",
        "dependencies",
        # references
        "$ref",
        "$dynamicRef",
        "$recursiveRef",
    }
)
JSON_SCHEMA_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
MAX_DEPTH = 64


@attrs.frozen
class Finding:
    """One problem: which rule, how bad, where (``outputSchema.properties.result``)."""

    rule: str
    severity: str
    path: str

    def __str__(self) -> str:
        return f"{self.severity} {self.rule} @ {self.path}"


def _child(parent: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", key):
        return key if parent == "" else f"{parent}.{key}"
    return f'{parent}["{key}"]'


def _subschemas(node: dict[str, Any], path: str, visit: Callable[[Any, str, str], None]) -> None:
    for key in SUBSCHEMA_MAP_KEYWORDS:
        mapping = node.get(key)
        if isinstance(mapping, dict):
            for name, sub in mapping.items():
                visit(sub, _child(_child(path, key), name), key)
    for key in SUBSCHEMA_ARRAY_KEYWORDS:
        array = node.get(key)
        if isinstance(array, list):
            for index, sub in enumerate(array):
                visit(sub, f"{_child(path, key)}[{index}]", key)
    for key in SUBSCHEMA_KEYWORDS:
        if key not in node:
            continue
        value = node[key]
        if key == "items" and isinstance(value, list):
            for index, sub in enumerate(value):
                visit(sub, f"{_child(path, key)}[{index}]", key)
            continue
        visit(value, _child(path, key), key)


def _declares_id(node: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH or not isinstance(node, dict):
        return False
    if isinstance(node.get("$id"), str) and node["$id"] != "":
        return True
    found: list[bool] = []
    _subschemas(node, "", lambda child, _path, _key: found.append(_declares_id(child, depth + 1)))
    return any(found)


def _constrains(node: dict[str, Any]) -> bool:
    if any(key in CONSTRAINING_KEYWORDS for key in node):
        return True
    return "if" in node and ("then" in node or "else" in node)


def lint_schema(schema: Any, kind: str) -> list[Finding]:
    """Every finding in one schema (``kind``: ``inputSchema`` or ``outputSchema``)."""
    findings: list[Finding] = []
    embedded_ids = _declares_id(schema)

    def where(path: str) -> str:
        return kind if path == "" else f"{kind}.{path}"

    def walk(node: Any, path: str, keyword: str | None, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        if isinstance(node, bool):
            if keyword not in BOOLEAN_VALUED_KEYWORDS:
                findings.append(Finding("boolean-schema", "error", where(path)))
            return
        if not isinstance(node, dict):
            return
        kinds = node.get("type")
        if (
            isinstance(kinds, list)
            and kinds
            and all(isinstance(k, str) and k in JSON_SCHEMA_TYPES for k in kinds)
            and len(set(kinds)) == len(kinds)
        ):
            findings.append(Finding("type-union", "warning", where(path)))
        ref = node.get("$ref")
        if isinstance(ref, str) and ref != "" and not ref.startswith("#") and not embedded_ids:
            findings.append(Finding("remote-ref", "warning", where(path)))
        if not _constrains(node) and keyword != "not":
            findings.append(Finding("untyped-schema", "warning", where(path)))
        _subschemas(node, path, lambda child, sub, key: walk(child, sub, key, depth + 1))

    walk(schema, "", None, 0)
    return findings


def lint_tools(tools: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Tool name -> its findings (as text), for the tools that have any."""
    out: dict[str, list[str]] = {}
    for tool in tools:
        findings = [
            str(f)
            for kind in ("inputSchema", "outputSchema")
            if kind in tool
            for f in lint_schema(tool[kind], kind)
        ]
        if findings:
            out[tool["name"]] = findings
    return out
