"""Supervised live runs: permission requests and their decisions, steering and interrupts.

A live turn (``RunRequest.live``) keeps the daemon's connection open both ways: the agent's
permission requests come in (the task is ``input_required`` while one waits for a person), and
decisions, steering and interrupts go out on the same stream (``_turn.LiveTurn``).
:class:`LiveDesk` is the runner's part of it: it records each request and decision
(``approval_request`` and ``approval`` events), announces new requests, and carries out
``approve``, steering (``update_task`` during a turn), ``interrupt_task`` and the closing of a
task's live session. The rule a person's "remember for the task" grants is a plain function of
the request (:func:`remembered_rule`); the elicitation form lives in :mod:`._asking`.
"""

from __future__ import annotations

import collections
import datetime
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from host_daemon import (
    AgentName,
    DaemonError,
    DaemonUnavailable,
    InputAccepted,
    PermissionDecision,
    PermissionRequest,
    PermissionResolved,
    close_session,
)

from ._errors import LiveUnsupported, NotPending, NotRunning, TaskNotFound
from ._hosts import UnknownHost
from ._model import PendingApproval, Task, answered, ask, grant
from ._store import UnknownTask
from ._turn import LiveTurn

if TYPE_CHECKING:
    from ._runner import TaskRunner

log = logging.getLogger("mcp_server.tasks")

Remember = Literal["once", "task"]

CONFIRM_TIMEOUT_S = 10.0
"""How long ``approve`` waits for the daemon to say the decision reached the agent."""
INTERRUPT_TIMEOUT_S = 30.0
"""How long an interrupted live turn may take to end before its run is stopped outright."""
CLOSE_TIMEOUT_S = 10.0
"""How long closing a task's live session may take."""
LIVE_CHECK_S = 30.0
"""How long the daemon may take to learn whether an agent's CLI runs live, when a new task asks."""
PROBE_MARGIN_S = 5.0
"""The rest of that probe's time: versions, git, the connection."""
HISTORY = 1000
"""How many decided requests are remembered, to say why a late decision is refused."""


def remembered_rule(request: PendingApproval) -> str:
    """The rule "allow for the rest of the task" grants: the agent's first suggested allow rule
    (Claude's ``addRules``), else ``Bash(<the exact command>)``, ``Edit(//<absolute path>)`` (or
    the path as given), else the tool's name."""
    for suggestion in request.suggestions:
        if suggestion.get("type") != "addRules" or suggestion.get("behavior", "allow") != "allow":
            continue
        for rule in suggestion.get("rules") or ():
            if isinstance(rule, dict) and isinstance(rule.get("toolName"), str):
                content = rule.get("ruleContent")
                name = rule["toolName"]
                return f"{name}({content})" if isinstance(content, str) and content else name
    command = request.input.get("command")
    if request.tool_name == "Bash" and isinstance(command, str) and command:
        return f"Bash({command})"
    path = request.input.get("file_path")
    if isinstance(path, str) and path:
        # ``//`` starts an absolute path in Claude's rules (``/`` alone is the settings' dir).
        absolute = "/" if path.startswith("/") else ""
        return f"{request.tool_name}({absolute}{path})"
    return request.tool_name


def describe_input(tool_name: str, tool_input: dict[str, Any], limit: int = 200) -> str:
    """``Bash `make test``` or ``Edit /src/a.py``: what a request asks, in one short line."""
    detail = tool_input.get("command") or tool_input.get("file_path") or ""
    if not isinstance(detail, str) or not detail:
        return tool_name
    detail = " ".join(detail.split())
    if len(detail) > limit:
        detail = detail[: limit - 1] + "…"
    return f"{tool_name} `{detail}`"


def _frame_data(frame: PermissionRequest | PermissionResolved) -> dict[str, Any]:
    """A frame's fields as its event's data (its number is the event's ``daemon_seq``)."""
    data = attrs.asdict(frame)
    data.pop("seq", None)
    return data


def _resolution(event: PermissionResolved) -> str:
    """Who decided, as the log says it."""
    if event.decided_by == "policy":
        return f"by policy rule {event.rule}" if event.rule else "by policy"
    if event.decided_by == "client":
        return f"by the client ({event.decider})" if event.decider else "by the client"
    if event.decided_by == "timeout":
        return "by the approval timeout"
    return "because the turn ended"


class LiveDesk:
    """The runner's handling of live turns: requests, decisions, steering, interrupts."""

    def __init__(self, runner: TaskRunner) -> None:
        self._runner = runner
        self._decided: collections.OrderedDict[str, str] = collections.OrderedDict()
        """Request id -> how it was decided (the latest ``HISTORY``)."""

    # -- before a run ---------------------------------------------------------------------

    async def resolve(self, agent: AgentName, wanted: bool | None, host: str) -> bool:
        """Whether a new task runs live: as asked, or (``None``) when ``host``'s daemon says the
        agent can. Asked for an agent that cannot: :class:`LiveUnsupported`."""
        if wanted is False:
            return False
        try:
            # A CLI slow to answer its help (a cold node on a loaded host) would otherwise make
            # the task per-turn for good: deciding waits for the check, once per CLI file.
            info = await self._runner.probe(
                timeout=LIVE_CHECK_S + PROBE_MARGIN_S, cli_wait_s=LIVE_CHECK_S, host=host
            )
        except (DaemonError, OSError):
            return bool(wanted)  # the run itself will say why the daemon cannot be reached
        found = next((a for a in info.agents if a.name == agent), None)
        if found is not None and found.live:
            return True
        if wanted:
            why = (found.live_note or found.error) if found is not None else "not installed"
            raise LiveUnsupported(
                f"expected an agent that can run live, got {agent} that cannot here"
                + (f" ({why})" if why else "")
                + " @ $.arguments.live; leave live unset or false for per-turn runs"
            )
        return False

    # -- frames of a live turn ------------------------------------------------------------

    async def on_frame(
        self, task_id: str, turn: LiveTurn | None, frame: PermissionRequest | PermissionResolved
    ) -> None:
        """Record a permission request (the task is ``input_required``) or its resolution."""
        if isinstance(frame, PermissionRequest):
            await self._asked(task_id, frame)
        else:
            if turn is not None:
                turn.deciding.pop(frame.request_id, None)
            await self._resolved(task_id, frame)

    async def _asked(self, task_id: str, frame: PermissionRequest) -> None:
        now = self._runner.clock.wall()
        request = PendingApproval(
            request_id=frame.request_id,
            tool_name=frame.tool_name,
            input=frame.input,
            asked_at=now,
            timeout_at=now + datetime.timedelta(seconds=frame.timeout_s),
            description=frame.description,
            suggestions=frame.suggestions,
        )
        what = describe_input(frame.tool_name, frame.input)
        summary = (
            f"approval requested: {what} (request {frame.request_id}; answer with approve, "
            f"denied after {frame.timeout_s:g} s)"
        )
        data = _frame_data(frame) | {"timeout_at": request.timeout_at.isoformat()}
        event: dict[str, Any] = {"kind": "approval_request", "summary": summary, "data": data}
        event["daemon_seq"] = frame.seq
        await self._commit(task_id, lambda t: ask(t, request, self._runner.clock.wall()), event)
        notice = f"task {task_id} needs a decision: the agent asks to use {what}"
        self._runner.notify(task_id, "transition", notice=notice)

    async def _resolved(self, task_id: str, frame: PermissionResolved) -> None:
        how = f"{frame.behavior} {_resolution(frame)}"
        self._remember(frame.request_id, how)
        what = describe_input(frame.tool_name, frame.input)
        message = f": {frame.message}" if frame.message else ""
        summary = f"approval: {what} {how}{message}"
        data = _frame_data(frame)
        event: dict[str, Any] = {"kind": "approval", "summary": summary, "data": data}
        event["daemon_seq"] = frame.seq
        task = self._runner.get(task_id)
        if task.pending_request(frame.request_id) is None:  # the policy's: never pending
            self._runner.append(task_id, "approval", summary, data, daemon_seq=frame.seq)
            return
        await self._commit(
            task_id, lambda t: answered(t, frame.request_id, self._runner.clock.wall()), event
        )
        self._runner.notify(task_id, "transition")

    def turn_ended(self, task: Task | None) -> None:
        """The run ended: what was still pending was resolved ``closed`` with it."""
        for request in task.pending if task is not None else ():
            self._remember(request.request_id, "never decided: the run ended first")

    def _remember(self, request_id: str, how: str) -> None:
        self._decided[request_id] = how
        while len(self._decided) > HISTORY:
            self._decided.popitem(last=False)

    async def _commit(
        self, task_id: str, change: Callable[[Task], Task], event: dict[str, Any]
    ) -> Task:
        try:
            return await self._runner.store.commit(task_id, change, lambda t: [event])
        except UnknownTask:
            raise TaskNotFound(task_id) from None

    # -- commands -------------------------------------------------------------------------

    def deciding(self, task_id: str, request_id: str) -> bool:
        """Whether a decision for the request was sent and awaits the daemon's confirmation."""
        turn = self._runner.live_turn(task_id)
        return turn is not None and request_id in turn.deciding

    async def approve(
        self,
        task_id: str,
        request_id: str,
        behavior: Literal["allow", "deny"],
        *,
        message: str | None = None,
        remember: Remember = "once",
        decider: str = "approve tool",
    ) -> Task:
        """Send a person's decision to the agent; returns the task once the daemon confirmed it
        (or after ``CONFIRM_TIMEOUT_S``). :class:`NotPending` when it is not pending."""
        task = self._runner.get(task_id)
        request = task.pending_request(request_id)
        turn = self._runner.live_turn(task_id)
        if request is None or turn is None or turn.ended:
            raise NotPending(self._not_pending(task, request_id))
        if request_id in turn.deciding:
            raise NotPending(
                f"request {request_id} of task {task_id} is being decided already "
                f"(by {turn.deciding[request_id]})"
            )
        rule = remembered_rule(request) if remember == "task" and behavior == "allow" else None
        turn.deciding[request_id] = decider
        decision = PermissionDecision(
            request_id=request_id,
            behavior=behavior,
            message=message,
            remember_rule=rule,
            decider=decider,
        )
        try:
            if rule is not None:
                await self._commit(
                    task_id,
                    lambda t: grant(t, rule, self._runner.clock.wall()),
                    {
                        "kind": "approval",
                        "summary": f"rule {rule} allowed for the rest of the task ({decider})",
                        "data": {"granted_rule": rule, "request_id": request_id},
                    },
                )
            await turn.control.decide(decision)
        except DaemonError as exc:
            turn.deciding.pop(request_id, None)
            raise NotPending(
                f"request {request_id} of task {task_id} was not decided: the run ended before "
                f"the decision reached the agent ({exc.message})"
            ) from None
        except BaseException:
            turn.deciding.pop(request_id, None)
            raise
        with trio.move_on_after(CONFIRM_TIMEOUT_S):
            while True:
                changed = self._runner.changed(task_id)  # before reading: no missed wake-up
                if self._runner.get(task_id).pending_request(request_id) is None:
                    break
                await changed.wait()
        return self._runner.get(task_id)

    def _not_pending(self, task: Task, request_id: str) -> str:
        where = f"no pending request {request_id!r} in task {task.id}"
        how = self._decided.get(request_id)
        if how is not None:
            return f"{where}: it was decided already ({how}); the task is {task.status}"
        if not task.running:
            return f"{where}: the task is {task.status}, no run is in flight"
        pending = ", ".join(p.request_id for p in task.pending) or "none"
        return f"{where} (pending now: {pending})"

    async def steer(self, task_id: str, text: str) -> InputAccepted | None:
        """Send ``text`` into the task's live turn; ``None`` when no steerable turn is in flight."""
        turn = self._runner.live_turn(task_id)
        if turn is None or not turn.steerable:
            return None
        try:
            answer = await turn.steer(text)
        except DaemonError as exc:  # the turn ended as the instructions were sent
            answer = InputAccepted(False, f"the turn ended first ({exc.message})")
        how = "steered the running turn" if answer.steered else f"not taken: {answer.message}"
        self._runner.append(
            task_id,
            kind="steer",
            summary=f"steer: {' '.join(text.split())[:120]} ({how})",
            data={"text": text, "steered": answer.steered, "message": answer.message},
        )
        return answer

    async def interrupt(self, task_id: str) -> Task:
        """Stop the task's turn in flight, keep the task (``waiting``) and its conversation."""
        task = self._runner.get(task_id)
        active = self._runner.in_flight(task_id)
        if active is None:
            raise NotRunning(
                f"task {task_id} has no run in flight to interrupt (it is {task.status})"
            )
        active.asked_to_stop = True
        turn = active.control
        if turn is not None and turn.started.live and not turn.ended:
            try:
                await turn.control.interrupt()
            except DaemonError as exc:
                log.warning("task %s: the interrupt did not reach the daemon: %s", task_id, exc)
            with trio.move_on_after(INTERRUPT_TIMEOUT_S):
                await active.done.wait()
        if self._runner.in_flight(task_id) is active:  # not live, or the interrupt did not end it
            await self._runner.stop(task_id, "interrupted")
        return self._runner.get(task_id)

    async def close_session(self, task_id: str) -> str | None:
        """Close the task's live session on the daemon (its idle agent process); returns a note
        when the daemon could not be reached (other errors are logged and ignored)."""
        task = self._runner.store.tasks.get(task_id)
        if task is None or not task.live:
            return None
        try:
            daemon = self._runner._daemon_for(task)
            await close_session(
                daemon.host, daemon.port, daemon.token, task_id, timeout=CLOSE_TIMEOUT_S
            )
        except UnknownHost as exc:
            log.info("task %s: its live session was not closed: %s", task_id, exc)
            return None
        except DaemonUnavailable as exc:
            if exc.code != "unreachable":
                log.info("task %s: closing its live session: %s", task_id, exc)
                return None
            log.warning("task %s: its live session was not closed: %s", task_id, exc)
            return f"the daemon could not be reached to close the live session: {exc.message}"
        except DaemonError as exc:
            log.info("task %s: closing its live session: %s", task_id, exc)
        return None
