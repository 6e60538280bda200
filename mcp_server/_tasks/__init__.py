"""Coding tasks: the state machine, durable store, daemon runner and their MCP surface.

Vocabulary (the word "task" means three things in this code base; here it means the first):

- **task** (coding task): one conversation with one agent CLI in one project directory, with a
  status (:data:`TaskStatus`), its turns and the last run's report: :class:`Task`, kept by
  :class:`TaskStore`, driven by :class:`TaskRunner`.
- **turn**: one set of instructions given to the agent (``create_task`` gives the first,
  each ``update_task`` the next).
- **run**: the host daemon running the agent for one turn, from start to :class:`RunReport`;
  a task has at most one run in flight.
- **MCP task**: the protocol's long-running request (``tools/call`` with ``task``), owned by
  ``mcp_server._core``; ``create_task`` and ``update_task`` may be called as one, which then
  follows the run. Its names there start with ``McpTask``.
- a **trio task** is neither: a coroutine in a nursery.

Modules: the records and transitions (``_model``), the state files (``_files``), the store
(``_store``, reading back with ``_recovery``), the runner (``_runner``, with ``_report``,
``_workspace`` and ``_turn`` for a run in flight), supervised live runs (``_live``: permission
requests and decisions, steering, interrupts; ``_asking``: elicitation), worktrees
(``_isolation`` sans-IO, ``_worktrees`` asking the daemon, ``_review`` for merge and discard);
the MCP surface: arguments and their schemas (``_arguments``), tool handlers (``_tools``),
resources (``_resources``), views of records (``_views``), change notices (``_notices``),
prompts (``_prompts``); money: the cost ledger (``_ledger``) and budgets (``_budgets``).
Both JSON boundaries use one strict converter factory (``_convert``); observers are
:class:`Listener` s given to the constructor of what they observe; every error raised on
purpose is a :class:`TaskError` with the ``code`` a failed tool answer names.
"""

from ._arguments import OUTPUT_SCHEMA, ToolFailure, input_schema, parse_args
from ._budgets import Breach, BudgetGate, Budgets, Spending
from ._convert import describe_error, make_strict_converter
from ._errors import (
    LiveUnsupported,
    NotPending,
    NotRunning,
    RunNotStarted,
    ShuttingDown,
    TaskBusy,
    TaskError,
    TaskNotFound,
    WorktreeFailed,
)
from ._hosts import DEFAULT_HOST, HOST_NAME, Host, HostTable, UnknownHost
from ._index import TaskQuery
from ._ledger import Ledger, LedgerEntry, Tokens, normalize_usage
from ._listener import Listener
from ._listing import page as task_page
from ._listing import recent as recent_tasks
from ._live import remembered_rule
from ._model import (
    TASK_STATUSES,
    WAITING_TO_START,
    InvalidTransition,
    PendingApproval,
    Priority,
    RunReport,
    Task,
    TaskEvent,
    TaskOptions,
    TaskStatus,
    UsageLimit,
    utcnow,
)
from ._notices import TaskNotices
from ._resources import TaskResources
from ._runner import LIVE_IDLE_S, ChangeKind, StoreFactory, TaskChange, TaskRunner
from ._schedule import CapacityGate, Gate, ProjectGate, Scheduler
from ._store import OutputLost, StateWriteError, StoreEvent, TaskStore, Visible
from ._tools import TOOLS, TaskTools, ToolSpec, register_tasks
from ._workspace import DaemonEndpoint, PathRefused, Workspace
from ._worktrees import SWEEP_INTERVAL_S

__all__ = [
    "DEFAULT_HOST",
    "HOST_NAME",
    "LIVE_IDLE_S",
    "OUTPUT_SCHEMA",
    "SWEEP_INTERVAL_S",
    "TASK_STATUSES",
    "TOOLS",
    "WAITING_TO_START",
    "Breach",
    "BudgetGate",
    "Budgets",
    "CapacityGate",
    "ChangeKind",
    "DaemonEndpoint",
    "Gate",
    "Host",
    "HostTable",
    "InvalidTransition",
    "Ledger",
    "LedgerEntry",
    "Listener",
    "LiveUnsupported",
    "NotPending",
    "NotRunning",
    "OutputLost",
    "PathRefused",
    "PendingApproval",
    "Priority",
    "ProjectGate",
    "RunNotStarted",
    "RunReport",
    "Scheduler",
    "ShuttingDown",
    "Spending",
    "StateWriteError",
    "StoreEvent",
    "StoreFactory",
    "Task",
    "TaskBusy",
    "TaskChange",
    "TaskError",
    "TaskEvent",
    "TaskNotFound",
    "TaskNotices",
    "TaskOptions",
    "TaskQuery",
    "TaskResources",
    "TaskRunner",
    "TaskStatus",
    "TaskStore",
    "TaskTools",
    "Tokens",
    "ToolFailure",
    "ToolSpec",
    "UnknownHost",
    "UsageLimit",
    "Visible",
    "Workspace",
    "WorktreeFailed",
    "describe_error",
    "input_schema",
    "make_strict_converter",
    "normalize_usage",
    "parse_args",
    "recent_tasks",
    "register_tasks",
    "remembered_rule",
    "task_page",
    "utcnow",
]
