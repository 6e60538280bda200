"""A real server on the benchmark's store, smaller (2,000 tasks, one log of 20,000 events):
what it lists, reports and pages is what was written."""

from __future__ import annotations

import contextlib
import datetime
import pathlib
from collections.abc import AsyncIterator

import httpx
import pytest
from _support.big_store import SMALL_EVENTS, SMALL_TASKS, Manifest
from _support.serving import serving
from _support.task_server import Client

from mcp_server._config import stored_mcp_token

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def client_of(store: Manifest) -> AsyncIterator[Client]:
    """``serve`` on the store's state dir, and an initialized MCP client of it."""
    state = pathlib.Path(store.state)
    async with serving(state) as served:
        token = stored_mcp_token({}, state)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=120, headers=headers) as http:
            client = Client(http, served.url)
            await client.initialize()
            yield client


async def test_listing_shows_the_newest_tasks_of_all(big_store: Manifest) -> None:
    """agent://tasks counts every stored task and lists the newest, in creation order."""
    async with client_of(big_store) as client:
        page = await client.read("agent://tasks")
    listed = [(task["task_id"], task["status"], task["project_dir"]) for task in page["tasks"]]
    newest = [(row.id, row.status, row.project) for row in big_store.rows[-len(listed) :]]
    assert page["total_tasks"] == SMALL_TASKS
    assert page["tasks_omitted"] == SMALL_TASKS - len(listed)
    assert len(listed) == 50
    assert listed == newest


async def test_report_of_the_oldest_task_is_its_record(big_store: Manifest) -> None:
    """report of the task stored first: its status, project, event count and last run."""
    oldest = big_store.oldest
    async with client_of(big_store) as client:
        view = await client.ok("report", id=oldest.id)
    assert view["task_id"] == oldest.id
    assert (view["status"], view["project_dir"]) == (oldest.status, oldest.project)
    assert view["event_count"] == oldest.events
    assert datetime.datetime.fromisoformat(view["created_at"]) == datetime.datetime.fromisoformat(
        oldest.created_at
    )
    assert view["report"]["outcome"] in {"success", "error", "cancelled", "interrupted"}


async def test_last_page_of_the_big_log_ends_the_turn(big_store: Manifest) -> None:
    """The page after seq N-50 of the 20,000-event log: its last 50 events, ending the turn."""
    after = SMALL_EVENTS - 50
    async with client_of(big_store) as client:
        page = await client.read(f"task://{big_store.big}/logs/{after}")
        first = await client.read(f"task://{big_store.big}/logs")
    assert [event["seq"] for event in page["events"]] == list(range(after + 1, SMALL_EVENTS + 1))
    assert (page["last_seq"], page["next"]) == (SMALL_EVENTS, None)
    kinds = [event["kind"] for event in page["events"]]
    assert kinds[-3:] == ["agent", "run_finished", "status"]
    assert page["events"][-1]["data"] == {"status": "waiting"}
    assert first["events"][0]["kind"] == "turn"
    assert first["next"] == f"task://{big_store.big}/logs/{first['events'][-1]['seq']}"


async def test_filtered_pages_are_the_matching_tasks(big_store: Manifest) -> None:
    """agent://tasks?status=failed&project=proj-01: the newest matches, then the older page."""
    matching = [
        row.id for row in big_store.rows if row.status == "failed" and row.project == "proj-01"
    ]
    assert len(matching) > 10  # the generator's mix gives this query two pages at limit=10
    async with client_of(big_store) as client:
        page = await client.read("agent://tasks?status=failed&project=proj-01&limit=10")
        older = await client.read(page["older"])
    assert [task["task_id"] for task in page["tasks"]] == matching[-10:]
    assert page["matching_tasks"] == len(matching)
    assert page["total_tasks"] == SMALL_TASKS
    assert [task["task_id"] for task in older["tasks"]] == matching[-20:-10]
