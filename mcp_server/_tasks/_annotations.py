"""What each coding-task tool does to its world, as MCP tool annotations.

Clients use them to decide what to ask the user about: a client may run the read-only tools
without asking, and should ask before the destructive ones. Each hint is stated for every tool
(a read-only tool is also stated non-destructive, idempotent), so no client falls back to the
spec's defaults (``destructiveHint`` and ``openWorldHint`` default to true).

- Read-only: ``report``, ``check_status``, ``get_prompt``, ``wait_task`` (``wait_task`` may ask
  the user about a pending permission request by elicitation; the decision is then the user's
  own answer in that form, not the tool's).
- Destructive: ``create_task`` and ``update_task`` (the agent edits files, in its worktree or,
  with isolation ``none``, in the checkout itself, and runs the commands the rules allow),
  ``end_task`` (kills the run; the task is over), ``merge_task`` (moves the base branch, may
  update the checkout, deletes the task's branch and worktree), ``discard_task``, ``clean_state``,
  ``approve`` (an allow lets the agent run what it asked for) and ``interrupt_task`` (kills the
  agent's tools mid-command).
- Idempotent (a repeated call with the same arguments changes nothing more; it may answer an
  error such as ``not_pending``): all but ``create_task`` and ``update_task``, which start
  another task or turn each time.
- Open world: only ``create_task`` and ``update_task`` (the agent talks to its model's API and
  may fetch from the web); the rest touch only this host's daemon and state.
"""

from __future__ import annotations

from typing import Final

from mcp_server._core import ToolAnnotations


def _reads(title: str) -> ToolAnnotations:
    return ToolAnnotations(
        title, read_only=True, destructive=False, idempotent=True, open_world=False
    )


def _changes(title: str, *, idempotent: bool = True, open_world: bool = False) -> ToolAnnotations:
    return ToolAnnotations(
        title, read_only=False, destructive=True, idempotent=idempotent, open_world=open_world
    )


ANNOTATIONS: Final[dict[str, ToolAnnotations]] = {
    "create_task": _changes("Create a coding task", idempotent=False, open_world=True),
    "update_task": _changes("Send follow-up instructions", idempotent=False, open_world=True),
    "end_task": _changes("End a task"),
    "merge_task": _changes("Merge a task's branch"),
    "discard_task": _changes("Discard a task's work"),
    "report": _reads("Report on tasks"),
    "check_status": _reads("Check the host daemon"),
    "clean_state": _changes("Delete every task"),
    "approve": _changes("Answer a permission request"),
    "interrupt_task": _changes("Interrupt a task's turn"),
    "get_prompt": _reads("Get prompt templates"),
    "wait_task": _reads("Wait for a task"),
}
"""Tool name -> its annotations; ``register_tasks`` fails (KeyError naming it) on a tool without."""
