"""A task's page in a real browser: its log streams, and follow-up / end reach the agent."""

from __future__ import annotations

import pathlib
import uuid

import pytest
from _support.browser import body_text, wait_for
from _support.dashboard_pages import (
    Dashboard,
    agent_pids,
    confirm,
    follow_up_field,
    log_text,
    mark_page,
    open_task,
    still_marked,
)
from _support.polling import eventually
from _support.task_server import all_events
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser


async def test_log_streams_into_the_open_task_page(
    logged_in: WebDriver, dashboard: Dashboard
) -> None:
    """Events of a run started over MCP show in the open task page's log without reload."""
    task_id = await dashboard.create("Streams", "hello")
    await dashboard.wait_ended(task_id)
    open_task(logged_in, dashboard, task_id)
    mark_page(logged_in)
    await dashboard.client.ok("update_task", id=task_id, instructions="lines 3")
    wait_for(logged_in, lambda d: "line 2" in log_text(d), "the follow-up's lines in the log")
    assert still_marked(logged_in), "the page was reloaded to show the log"


async def test_follow_up_from_the_page_reaches_the_agent(
    logged_in: WebDriver, dashboard: Dashboard
) -> None:
    """A follow-up typed on the task page starts the next turn in the agent's conversation."""
    task_id = await dashboard.create("Follow me", "hello")
    first = await dashboard.wait_ended(task_id)
    open_task(logged_in, dashboard, task_id)
    field = follow_up_field(logged_in)
    field.send_keys("hello from the page")
    field.submit()
    wait_for(logged_in, lambda d: "hello from the page" in body_text(d), "the follow-up's turn")
    task = await dashboard.wait_ended(task_id)
    assert task["turns"] == 2
    texts = [event["summary"] for event in await all_events(dashboard.client, task_id)]
    assert any(f"resumed {first['session_id']}" in text for text in texts), texts


async def test_follow_up_form_works_with_the_keyboard(
    logged_in: WebDriver, dashboard: Dashboard
) -> None:
    """Tab reaches the follow-up box, then its send button; Enter on the button sends it."""
    task_id = await dashboard.create("Keyboard follow-up", "hello")
    await dashboard.wait_ended(task_id)
    open_task(logged_in, dashboard, task_id)
    field = follow_up_field(logged_in)
    focused = logged_in.switch_to.active_element
    for _ in range(60):
        if focused == field:
            break
        focused.send_keys(Keys.TAB)
        focused = logged_in.switch_to.active_element
    else:
        raise AssertionError("Tab never reached the follow-up box")
    focused.send_keys("hello by keyboard")
    focused.send_keys(Keys.TAB)
    button = logged_in.switch_to.active_element
    assert button.tag_name == "button", button.get_attribute("outerHTML")
    button.send_keys(Keys.ENTER)
    task = await dashboard.wait_ended(task_id)
    assert task["turns"] == 2
    assert "hello by keyboard" in (await dashboard.task(task_id))["instructions"][-1]


async def test_end_from_the_page_stops_the_agent(
    logged_in: WebDriver, dashboard: Dashboard, tmp_path: pathlib.Path
) -> None:
    """End, confirmed on the page, kills the running agent and completes the task."""
    never = tmp_path / f"never-{uuid.uuid4()}"
    task_id = await dashboard.create("Runs until ended", f"waitfile {never}")
    await eventually(lambda: bool(agent_pids(str(never))), "the agent's process")
    pids = agent_pids(str(never))
    open_task(logged_in, dashboard, task_id)
    confirm(logged_in, "end")
    task = await dashboard.wait_ended(task_id)
    assert task["status"] == "completed"
    await eventually(lambda: not agent_pids(str(never)), f"the agent {pids} to be gone")
