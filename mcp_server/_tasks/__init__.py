"""Coding tasks: the state machine, durable store, daemon runner and the MCP tools."""

from ._model import (
    TASK_STATUSES,
    InvalidTransition,
    RunReport,
    Task,
    TaskEvent,
    TaskOptions,
    TaskStatus,
)
from ._runner import (
    DaemonEndpoint,
    PathRefused,
    RunNotStarted,
    ShuttingDown,
    TaskBusy,
    TaskNotFound,
    TaskRunner,
    Workspace,
)
from ._store import TaskStore
from ._tools import TaskTools, register_tasks

__all__ = [
    "TASK_STATUSES",
    "DaemonEndpoint",
    "InvalidTransition",
    "PathRefused",
    "RunNotStarted",
    "RunReport",
    "ShuttingDown",
    "Task",
    "TaskBusy",
    "TaskEvent",
    "TaskNotFound",
    "TaskOptions",
    "TaskRunner",
    "TaskStatus",
    "TaskStore",
    "TaskTools",
    "Workspace",
    "register_tasks",
]
