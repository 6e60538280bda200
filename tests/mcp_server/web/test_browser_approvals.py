"""A pending permission request in a real browser: it appears on the open task page without a
reload, and Allow resolves it (the real Claude CLI runs live under ``coding-agent up`` against
the scripted model, which answers in this test's event loop: every browser wait runs in a
thread so the model keeps answering)."""

from __future__ import annotations

import functools
import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio
from _support.agent_up import base_env, coding_agent_up
from _support.browser import body_text, wait_for
from _support.claude_cli import claude_env, claude_executable
from _support.dashboard_pages import Dashboard, log_in, log_text, mark_page, open_task, still_marked
from _support.scripted_model import BashCall, Hold, Reply, ScriptedModel, open_scripted_model
from _support.task_server import Client
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = [pytest.mark.browser, pytest.mark.claude_cli]

WRITE = "python3 -c \"open('f.txt', 'w').write('written')\""


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with open_scripted_model() as scripted:
        yield scripted
        assert scripted.unexpected == []


@pytest.fixture
async def live(tmp_path: pathlib.Path, model: ScriptedModel) -> AsyncIterator[Dashboard]:
    """``coding-agent up`` whose daemon runs the real Claude CLI live against ``model``."""
    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text("{}")
    env = base_env(**claude_env(model.base_url, home), CLAUDE_PATH=claude_executable())
    async with coding_agent_up(tmp_path / "state", root, env) as up:
        headers = {"Authorization": f"Bearer {up.token}"}
        async with httpx.AsyncClient(timeout=120, headers=headers) as http:
            client = Client(http, up.url)
            await client.initialize()
            yield Dashboard(up=up, client=client, root=root)


def status_shown(driver: WebDriver) -> str | None:
    """The status badge's text, read in one script (the stream may swap the badge any time)."""
    shown = driver.execute_script(
        "var badge = document.getElementById('task-status-badge');return badge && badge.textContent"
    )
    return str(shown) if shown else None


async def waited(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """``wait_for`` in a thread: the scripted model in this event loop goes on answering."""
    return await trio.to_thread.run_sync(
        functools.partial(wait_for, driver, condition, what, timeout=60)
    )


async def test_pending_request_appears_live_and_allow_resolves_it(
    browser: WebDriver, live: Dashboard, model: ScriptedModel
) -> None:
    """The agent's request shows on the open page (no reload); Allow runs the command."""
    held = Hold(then=BashCall(WRITE, "write the file"))
    model.script(held, Reply("all done"))
    task_id = await live.create("Needs bash", "write f.txt")
    with trio.fail_after(60):
        await held.reached.wait()
    log_in(browser, live.base, live.up.token)
    open_task(browser, live, task_id)
    assert not browser.find_elements(By.CSS_SELECTOR, "article.approval")
    mark_page(browser)
    held.release()
    card = await waited(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "article.approval"),
        "the pending request on the page",
    )
    assert "Bash" in card[0].text
    assert WRITE in card[0].text
    assert "write the file" in card[0].text
    assert still_marked(browser), "the page was reloaded to show the request"
    assert status_shown(browser) == "input_required"
    assert browser.find_element(By.ID, "interrupt-button").is_displayed()
    card[0].find_element(By.CSS_SELECTOR, "button.approval-allow").click()
    await waited(
        browser,
        lambda d: "Bash request allowed" in body_text(d),
        "the notice saying the request was allowed",
    )
    await waited(
        browser,
        lambda d: status_shown(d) == "waiting",
        "the task waiting after its turn",
    )
    assert not browser.find_elements(By.CSS_SELECTOR, "article.approval")
    assert "allow by the client (dashboard)" in log_text(browser)
    assert (live.root / "f.txt").read_text() == "written"
    task = await live.task(task_id)
    assert (task["status"], task["report"]["final_text"]) == ("waiting", "all done")
