"""The coding-task layer's one error base: every error it raises on purpose carries a ``code``,
the one a tool's failed answer (``structuredContent.error.code``) names."""

from __future__ import annotations


class TaskError(Exception):
    """An error of the coding-task layer; ``str()`` is its message for clients."""

    code: str = "task_error"
    """A stable snake_case code, fixed per class (or per instance, when it comes from below)."""
