"""The coding-task layer's one error base: every error it raises on purpose carries a ``code``,
the one a tool's failed answer (``structuredContent.error.code``) names."""

from __future__ import annotations


class TaskError(Exception):
    """An error of the coding-task layer; ``str()`` is its message for clients."""

    code: str = "task_error"
    """A stable snake_case code, fixed per class (or per instance, when it comes from below)."""


class TaskNotFound(TaskError, LookupError):
    """No task has this id."""

    code = "task_not_found"

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {task_id!r}")
        self.task_id = task_id


class TaskBusy(TaskError, RuntimeError):
    """The task's run is still in flight; one run per task at a time."""

    code = "busy"

    def __init__(self, task_id: str) -> None:
        super().__init__(
            f"task {task_id} is still running its last turn: wait for it (wait_task) and retry"
        )
        self.task_id = task_id


class RunNotStarted(TaskError, RuntimeError):
    """The daemon could not start the run (down, wrong token, refused): the task failed."""

    def __init__(self, task_id: str, code: str, message: str) -> None:
        super().__init__(f"task {task_id}: the run did not start: {message}")
        self.task_id = task_id
        self.code = code


class ShuttingDown(TaskError, RuntimeError):
    """The server is stopping: runs in flight get their grace period, no new run starts."""

    code = "shutting_down"


class WorktreeFailed(TaskError, RuntimeError):
    """The daemon refused or failed a worktree operation; the code and message are its own
    (``merge_conflict`` with the files listed, ``not_a_repository``, ``daemon_unavailable``…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NotPending(TaskError, LookupError):
    """A decision for a permission request that is not pending (decided, timed out, its run
    ended, or never asked)."""

    code = "not_pending"


class NotRunning(TaskError, RuntimeError):
    """The task has no run in flight to interrupt."""

    code = "not_running"


class LiveUnsupported(TaskError, ValueError):
    """A live task for an agent that cannot run live on this daemon (or live is disabled)."""

    code = "live_unsupported"
