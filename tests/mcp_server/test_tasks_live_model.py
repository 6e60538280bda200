"""Supervised live runs, sans-IO: the input_required transitions, the records on disk, the rule a
"remember for the task" grants, the elicitation form's answers and the views."""

from __future__ import annotations

import datetime
import pathlib
from typing import Any

import attrs
import pytest

from host_daemon._rules import parse_rule
from mcp_server._core import JSON, LogMessage, ResourceUpdated
from mcp_server._core._context import SessionState
from mcp_server._core._listen import ListenFilter, session_notification, session_wants
from mcp_server._tasks._asking import APPROVAL_FORM, approval_message, read_answer
from mcp_server._tasks._files import decode_task, encode_task
from mcp_server._tasks._live import remembered_rule
from mcp_server._tasks._model import (
    InvalidTransition,
    PendingApproval,
    RunReport,
    Task,
    TaskOptions,
    WorktreeRecord,
    answered,
    ask,
    finish_run,
    grant,
    new_task,
    start_run,
)
from mcp_server._tasks._model_review import check_reviewable
from mcp_server._tasks._store import TaskStore
from mcp_server._tasks._views import task_view

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(seconds=5)


def request(request_id: str = "r1", tool: str = "Bash", **fields: Any) -> PendingApproval:
    tool_input = fields.pop("input", {"command": "make test"})
    return PendingApproval(
        request_id=request_id,
        tool_name=tool,
        input=tool_input,
        asked_at=T0,
        timeout_at=T0 + datetime.timedelta(seconds=900),
        **fields,
    )


def running(**options: Any) -> Task:
    task = new_task(
        title="t",
        instructions="run the tests",
        agent="claude",
        project_dir="",
        cwd="/w",
        options=TaskOptions(**options),
        now=T0,
        live=True,
    )
    return start_run(task, T0)


def report(outcome: Any) -> RunReport:
    return RunReport(outcome=outcome, started_at=T0, finished_at=T1)


def test_a_request_makes_the_task_input_required() -> None:
    """ask: in_progress → input_required with the request pending."""
    task = ask(running(), request(), T1)
    assert task.status == "input_required"
    assert [p.request_id for p in task.pending] == ["r1"]
    assert task.running


def test_the_same_request_twice_is_pending_once() -> None:
    """A repeated request id does not add a second pending entry."""
    task = ask(ask(running(), request(), T1), request(), T1)
    assert len(task.pending) == 1


def test_the_task_runs_again_once_no_request_is_pending() -> None:
    """answered: input_required until the last pending request is decided, then in_progress."""
    task = ask(ask(running(), request("r1"), T1), request("r2"), T1)
    task = answered(task, "r1", T1)
    assert (task.status, [p.request_id for p in task.pending]) == ("input_required", ["r2"])
    task = answered(task, "r2", T1)
    assert (task.status, task.pending) == ("in_progress", ())


def test_an_answer_for_no_pending_request_changes_nothing() -> None:
    """answered for an unknown request id returns the task as it was."""
    task = ask(running(), request(), T1)
    assert answered(task, "other", T1) is task


def test_a_request_outside_a_run_is_refused() -> None:
    """ask on a task without a run in flight is an invalid transition."""
    done = finish_run(running(), report("success"), T1)
    with pytest.raises(InvalidTransition, match="allowed from in_progress, input_required"):
        ask(done, request(), T1)


def test_the_runs_end_drops_pending_requests() -> None:
    """finish_run from input_required: the status follows the outcome, nothing stays pending."""
    task = finish_run(ask(running(), request(), T1), report("killed"), T1)
    assert (task.status, task.pending) == ("failed", ())


def test_a_turn_the_client_interrupted_waits_for_the_next() -> None:
    """Outcome interrupted: waiting when the client asked to stop, interrupted when not."""
    asked = finish_run(running(), report("interrupted"), T1, asked_to_stop=True)
    crashed = finish_run(running(), report("interrupted"), T1)
    assert (asked.status, crashed.status) == ("waiting", "interrupted")


def test_input_required_counts_as_running_for_review() -> None:
    """merge and discard refuse an input_required task as they refuse an in_progress one."""
    worktree = WorktreeRecord("coding-agent/t", "main", "0" * 40, "/w", "")
    task = ask(attrs.evolve(running(), worktree=worktree), request(), T1)
    with pytest.raises(InvalidTransition, match="any status but in_progress, input_required"):
        check_reviewable(task, "merge")
    check_reviewable(task, "discard", running=True)


def test_granted_rules_are_kept_once() -> None:
    """grant adds a rule to the task once."""
    task = grant(grant(running(), "Bash(make test)", T1), "Bash(make test)", T1)
    assert task.granted_rules == ("Bash(make test)",)


def test_the_record_keeps_pending_requests_and_live_options() -> None:
    """A record with pending requests, granted rules and live options reads back equal."""
    task = grant(
        ask(
            running(allow_rules=("Bash(make:*)",), deny_rules=("Bash(rm:*)",), live=True),
            request(description="Run make", suggestions=[{"type": "addRules"}]),
            T1,
        ),
        "Read",
        T1,
    )
    assert decode_task(encode_task(task)) == task


async def test_a_restart_interrupts_an_input_required_task(tmp_path: pathlib.Path) -> None:
    """A task found input_required at startup becomes interrupted with nothing pending."""
    store = TaskStore(tmp_path)
    await store.load()
    task = running()
    await store.create(task)
    await store.commit(task.id, lambda t: ask(t, request(), T1))
    (loaded,) = await TaskStore(tmp_path).load()
    assert (loaded.status, loaded.pending) == ("interrupted", ())


@pytest.mark.parametrize(
    ("pending", "rule"),
    [
        pytest.param(
            request(
                suggestions=[
                    {
                        "type": "addRules",
                        "rules": [{"toolName": "Bash", "ruleContent": "make:*"}],
                        "behavior": "allow",
                        "destination": "localSettings",
                    }
                ]
            ),
            "Bash(make:*)",
            id="claude-suggestion",
        ),
        pytest.param(
            request(
                tool="Read",
                input={"file_path": "/w/a.txt"},
                suggestions=[
                    {"type": "addDirectories", "directories": ["/w"]},
                    {"type": "addRules", "rules": [{"toolName": "Read"}], "behavior": "allow"},
                ],
            ),
            "Read",
            id="suggestion-without-content",
        ),
        pytest.param(request(), "Bash(make test)", id="bash-exact-command"),
        pytest.param(
            request(tool="Edit", input={"file_path": "/w/src/a.py"}),
            "Edit(//w/src/a.py)",
            id="edit-absolute-path",
        ),
        pytest.param(request(tool="WebFetch", input={"url": "x"}), "WebFetch", id="other-tool"),
    ],
)
def test_remember_for_the_task_grants_a_rule_the_daemon_parses(
    pending: PendingApproval, rule: str
) -> None:
    """The remembered rule: the agent's suggestion, else the exact command or path; it parses."""
    assert remembered_rule(pending) == rule
    assert str(parse_rule(rule)) == rule


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"action": "accept", "content": {"decision": "allow"}}, ("allow", None, False)),
        (
            {"action": "accept", "content": {"decision": "deny", "message": "no", "remember": 1}},
            ("deny", "no", False),
        ),
        (
            {
                "action": "accept",
                "content": {"decision": "allow", "message": " ", "remember": True},
            },
            ("allow", None, True),
        ),
        ({"action": "decline"}, None),
        ({"action": "cancel"}, None),
        ({"action": "accept", "content": {"decision": "maybe"}}, None),
        ({"action": "accept"}, None),
        ("accept", None),
    ],
)
def test_the_forms_answer(result: Any, expected: tuple[str, str | None, bool] | None) -> None:
    """accept with a valid decision is an answer; decline, cancel or anything else is none."""
    answer = read_answer(result)
    got = None if answer is None else (answer.behavior, answer.message, answer.remember)
    assert got == expected


def test_the_form_names_the_task_the_tool_and_the_command() -> None:
    """The elicitation's message says which task, tool and command; the form asks a decision."""
    task = running()
    message = approval_message(task, request(description="Run the tests"))
    assert task.id in message
    assert "Bash `make test`" in message
    assert "Run the tests" in message
    assert APPROVAL_FORM["required"] == ["decision"]
    assert APPROVAL_FORM["properties"]["decision"]["enum"] == ["allow", "deny"]


def test_views_show_pending_requests_and_how_to_answer() -> None:
    """A task's view lists its pending requests with the approve call that answers them."""
    task = ask(running(), request(description="Run the tests"), T1)
    view = task_view(task)
    assert view["status"] == "input_required"
    (pending,) = view["pending_approvals"]
    assert pending["request_id"] == "r1"
    assert pending["tool_name"] == "Bash"
    assert pending["input"] == {"command": "make test"}
    assert pending["description"] == "Run the tests"
    assert pending["asked_at"] == T0.isoformat()
    assert pending["timeout_at"] == (T0 + datetime.timedelta(seconds=900)).isoformat()
    assert '"request_id": "r1"' in pending["answer_with"]


def _session(log_level: Any = None, subscriptions: set[str] | None = None) -> SessionState:
    state = SessionState("s", "2025-11-25", {}, {}, log_level=log_level)
    state.subscriptions = subscriptions or set()
    state.initialized = True
    return state


@pytest.mark.parametrize(
    ("state", "wanted"),
    [
        pytest.param(_session(), False, id="neither-logging-nor-subscribed"),
        pytest.param(_session("warning"), True, id="logging-at-warning"),
        pytest.param(_session("error"), False, id="logging-at-error-only"),
        pytest.param(_session(subscriptions={"task://t1"}), True, id="subscribed"),
        pytest.param(
            _session("error", subscriptions={"task://t1"}), False, id="subscribed-level-above"
        ),
    ],
)
def test_a_warning_reaches_sessions_that_log_or_subscribed(
    state: SessionState, wanted: bool
) -> None:
    """A log message goes to sessions whose level lets it through, or (no level) subscribers."""
    event = LogMessage("warning", {"message": "m"}, "coding-agent", "task://t1")
    assert session_wants(state, event) is wanted
    expected: JSON = {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "warning", "data": {"message": "m"}, "logger": "coding-agent"},
    }
    assert session_notification(event) == expected


def test_a_warning_reaches_listen_streams_subscribed_to_its_task() -> None:
    """A 2026-07-28 listen stream subscribed to the task hears the message, others not."""
    event = LogMessage("warning", {"message": "m"}, None, "task://t1")
    subscribed = ListenFilter(1, frozenset(), frozenset({"task://t1"}), None)
    other = ListenFilter(2, frozenset(), frozenset({"task://t2"}), None)
    message = subscribed.on_registry(event)
    assert message is not None
    assert message["method"] == "notifications/message"
    assert message["params"]["level"] == "warning"
    assert other.on_registry(event) is None
    assert other.on_registry(ResourceUpdated("task://t2")) is not None
