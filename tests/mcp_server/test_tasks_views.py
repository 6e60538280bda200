"""Answers sized for a model's context, summaries and prompt rendering (no I/O)."""

from __future__ import annotations

import datetime
import pathlib

import attrs
import orjson
import pytest

from host_daemon import AgentEvent
from mcp_server import InvalidParams
from mcp_server._tasks import TaskQuery, TaskStore
from mcp_server._tasks._files import RECORD_SUFFIX, encode_task
from mcp_server._tasks._listing import page
from mcp_server._tasks._listing import stats as count_tasks
from mcp_server._tasks._model import (
    RunReport,
    Task,
    TaskOptions,
    finish_run,
    new_task,
    start_run,
)
from mcp_server._tasks._prompts import PROMPTS
from mcp_server._tasks._report import SUMMARY_CHARS, summarize
from mcp_server._tasks._views import (
    LIST_TASKS,
    MAX_FIELD_CHARS,
    MAX_TEXT_CHARS,
    report_view,
    statistics_view,
    success,
    task_view,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def finished(final_text: str, n: int = 0) -> Task:
    task = new_task(
        title=f"t{n}",
        instructions="x",
        agent="claude",
        project_dir="",
        cwd="/w",
        options=TaskOptions(),
        now=T0,
    )
    report = RunReport(outcome="success", started_at=T0, finished_at=T0, final_text=final_text)
    return finish_run(start_run(task, T0), report, T0)


def test_long_final_text_is_cut_with_a_pointer() -> None:
    """A huge final text is cut and the marker names the task's logs resource."""
    task = finished("x" * (MAX_FIELD_CHARS * 3))
    view = report_view(task, task.report)
    assert view is not None
    assert len(view["final_text"]) < MAX_FIELD_CHARS + 200
    assert f"task://{task.id}/logs" in view["final_text"]


def test_tool_text_is_capped() -> None:
    """A tool answer's text block never exceeds the cap (plus its marker)."""
    result = success("big", {"blob": "y" * (MAX_TEXT_CHARS * 2)})
    assert len(result.content[0]["text"]) < MAX_TEXT_CHARS + 200
    assert "more characters" in result.content[0]["text"]


async def test_statistics_list_is_bounded(tmp_path: pathlib.Path) -> None:
    """Statistics count every task but list only the latest ones, under the size cap."""
    (tmp_path / "tasks").mkdir()
    for n in range(LIST_TASKS + 70):
        task = attrs.evolve(finished("done", n), seq=n + 1)
        (tmp_path / "tasks" / (task.id + RECORD_SUFFIX)).write_bytes(encode_task(task))
    store = TaskStore(tmp_path)
    await store.load()
    _, latest = await page(store, TaskQuery(limit=LIST_TASKS))
    stats = statistics_view(await count_tasks(store), latest)
    assert stats["total_tasks"] == LIST_TASKS + 70
    assert stats["tasks_omitted"] == 70
    assert len(stats["tasks"]) == LIST_TASKS
    assert stats["success_rate"] == 1.0
    assert len(orjson.dumps(stats)) < MAX_TEXT_CHARS


def test_task_view_keeps_original_fields() -> None:
    """A task's view keeps the original's field names next to the new ones."""
    view = task_view(finished("ok"), full=True)
    for name in ("task_id", "description", "tool", "status", "created_at", "report"):
        assert name in view


def test_summary_is_one_short_line() -> None:
    """An agent event's summary is one line, cut at the summary length."""
    event = AgentEvent(kind="text", raw="{}", text="a\nb " + "z" * 1000)
    summary = summarize(event)
    assert "\n" not in summary
    assert len(summary) <= SUMMARY_CHARS + len("text: ")


def test_tool_use_summary_names_tool_and_target() -> None:
    """A tool use reads as the tool's name and its first string argument."""
    event = AgentEvent(
        kind="tool_use", raw="{}", tool_name="Edit", tool_input={"file_path": "a.py"}
    )
    assert summarize(event) == "tool_use: Edit a.py"


async def test_prompt_requires_its_arguments() -> None:
    """A prompt without a required argument is refused, naming it."""
    with pytest.raises(InvalidParams, match="bug_description"):
        await PROMPTS["fix_bug"].prompt().render({})


async def test_prompt_refuses_unknown_arguments() -> None:
    """An argument the prompt does not declare is refused."""
    with pytest.raises(InvalidParams, match="colour"):
        await PROMPTS["fix_bug"].prompt().render({"bug_description": "x", "colour": "red"})


async def test_prompt_renders_given_arguments() -> None:
    """Given arguments are substituted; lines of missing optional ones are dropped."""
    rendered = await PROMPTS["create_unit_tests"].prompt().render({"file_path": "src/a.py"})
    text = rendered.messages[0]["content"]["text"]
    assert "src/a.py" in text
    assert "Coverage target" not in text
