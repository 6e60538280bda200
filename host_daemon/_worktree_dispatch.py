"""A worktree operation to the ``WorktreeManager``, or the answer of a daemon that has none."""

from __future__ import annotations

from typing import Final, assert_never

from ._errors import ErrorCode
from ._plan import RequestError
from ._records import (
    SweepDone,
    WorktreeCommit,
    WorktreeCommits,
    WorktreeCreate,
    WorktreeDiff,
    WorktreeDiscard,
    WorktreeMerge,
    WorktreeOperation,
    WorktreeReply,
    WorktreeSkipped,
    WorktreeSweep,
)
from ._worktrees import WorktreeManager

__all__ = ["worktree_reply"]

#: Why a daemon without a worktrees directory makes none.
_NO_WORKTREES: Final = (
    "this daemon keeps no worktrees: it has no worktrees directory "
    "(start it with --state-dir or --worktrees-dir)"
)


def _without_worktrees(operation: WorktreeOperation) -> WorktreeReply:
    """A daemon without a worktrees directory: skip an optional create, sweep nothing, refuse."""
    if isinstance(operation, WorktreeCreate) and not operation.required:
        return WorktreeSkipped(reason=_NO_WORKTREES)
    if isinstance(operation, WorktreeSweep):
        return SweepDone(removed=[], kept_branches=[])
    code: ErrorCode = "disk_budget" if isinstance(operation, WorktreeCreate) else "unknown_worktree"
    raise RequestError(code, _NO_WORKTREES)


async def worktree_reply(
    manager: WorktreeManager | None, operation: WorktreeOperation
) -> WorktreeReply:
    """The operation's reply from ``manager`` (None: the daemon keeps no worktrees)."""
    if manager is None:
        return _without_worktrees(operation)
    reply: WorktreeReply
    match operation:
        case WorktreeCreate():
            reply = await manager.create(operation)
        case WorktreeCommit():
            reply = await manager.commit(operation)
        case WorktreeDiff():
            reply = await manager.diff(operation)
        case WorktreeCommits():
            reply = await manager.commits(operation)
        case WorktreeMerge():
            reply = await manager.merge(operation)
        case WorktreeDiscard():
            reply = await manager.discard(operation)
        case WorktreeSweep():
            reply = await manager.sweep(operation)
        case _:
            assert_never(operation)
    return reply
