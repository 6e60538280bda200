"""Fixtures shared by the MCP server's tests: the big store (``_support.big_store``)."""

from _support.big_store import _big_store_template, big_store

__all__ = ["_big_store_template", "big_store"]
