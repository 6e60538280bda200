"""Approvals and interrupts from the dashboard, with the real Claude CLI running live against the
scripted model: the board and the task page show pending permission requests, Allow / Allow for
this task / Deny reach the agent (checked in the files it writes and in what the model receives),
refused forms change nothing, and a late decision gets a clear message."""

from __future__ import annotations

import pathlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from _support.dashboard import Web, csrf_of, live_dashboard, sse_events
from _support.scripted_model import BashCall, Hold, Reply, ScriptedModel, open_scripted_model

pytestmark = pytest.mark.claude_cli

WRITE = "python3 -c \"open('f.txt', 'w').write('written')\""
NOTICE = re.compile(r'<p class="notice notice-(ok|error)" id="notice" role="status">([^<]*)</p>')


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with open_scripted_model() as scripted:
        yield scripted
        assert scripted.unexpected == []


@pytest.fixture
async def web(tmp_path: pathlib.Path, model: ScriptedModel) -> AsyncIterator[Web]:
    async with live_dashboard(tmp_path, model) as served:
        yield served


async def asking(web: Web, model: ScriptedModel, command: str = WRITE) -> tuple[str, str]:
    """A live task whose agent asks to run ``command``: its id and the request's id."""
    model.script(BashCall(command, "write the file"), Reply("done"))
    created = await web.mcp.ok("create_task", title="needs bash", instructions="write f.txt")
    assert created["live"] is True
    task_id = created["task_id"]
    with trio.fail_after(60):
        while True:
            task = await web.mcp.ok("wait_task", id=task_id, timeout_s=20)
            if task["status"] == "input_required":
                return task_id, task["pending_approvals"][0]["request_id"]
            assert task["status"] == "in_progress", task


async def run_ended(web: Web, task_id: str) -> dict[str, Any]:
    """The task once its run ended (``wait_task`` returns at ``input_required`` too: the
    runner's change event wakes this instead)."""
    with trio.fail_after(60):
        while web.runner.get(task_id).running:
            await web.runner.changed(task_id).wait()
    return await web.mcp.ok("report", id=task_id)


def notice(html: str) -> tuple[str, str]:
    """The page's one-time notice: kind and text (HTML entities left as they are)."""
    found = NOTICE.search(html)
    assert found is not None, "no notice on the page"
    return found[1], found[2]


async def decide(
    web: Web, browser: httpx.AsyncClient, task_id: str, request_id: str, **fields: str
) -> str:
    """Post the approval form of the task page; the notice the page then shows."""
    page = f"/tasks/{task_id}"
    response = await web.post_form(
        browser, f"{page}/approve", page, request_id=request_id, **fields
    )
    assert (response.status_code, response.headers["location"]) == (303, page)
    kind, text = notice((await browser.get(page)).text)
    return f"{kind}: {text}"


async def log_summaries(web: Web, task_id: str, kind: str) -> list[str]:
    log: dict[str, Any] = await web.mcp.read(f"task://{task_id}/logs")
    return [event["summary"] for event in log["events"] if event["kind"] == kind]


async def test_board_shows_the_tasks_waiting_for_a_decision(web: Web, model: ScriptedModel) -> None:
    """The board names the task that waits for a decision above the rows, with a count."""
    task_id, _ = await asking(web, model)
    browser = await web.logged_in()
    board = (await browser.get("/")).text
    assert 'id="board-asking"' in board
    assert re.search(r'id="asking-count">1 task waits for your decision:', board)
    assert f'href="/tasks/{task_id}" class="asking-task"' in board
    row = board[board.index(f'id="task-row-{task_id}"') :]
    assert 'data-status="input_required"' in row[:300]
    assert "1 to decide" in row[: row.index("</tr>")]
    filtered = (await browser.get("/?status=waiting")).text
    assert 'id="board-asking"' in filtered  # a filter never hides a task that waits


async def test_task_page_shows_the_pending_request_with_its_buttons(
    web: Web, model: ScriptedModel
) -> None:
    """The task page shows the request's tool, command, description, times and three buttons."""
    task_id, request_id = await asking(web, model)
    browser = await web.logged_in()
    html = (await browser.get(f"/tasks/{task_id}")).text
    start = html.index('<article class="approval"')
    card = html[start : html.index("</article>", start)]
    assert f'data-request-id="{request_id}"' in card
    assert '<dd class="approval-tool">Bash</dd>' in card
    assert (
        "python3 -c &#34;open(&#39;f.txt&#39;, &#39;w&#39;).write(&#39;written&#39;)&#34;" in card
    )
    assert '<dd class="approval-description">write the file</dd>' in card
    assert re.search(r'<time class="approval-left" datetime="[^"]+">1[45]m</time>', card)
    assert f'name="csrf" value="{csrf_of(html)}"' in card
    for value in ("allow", "allow_task", "deny"):
        assert f'name="decision" value="{value}"' in card
    assert 'id="interrupt-button"' in html


async def test_allow_runs_the_command_and_logs_who_decided(web: Web, model: ScriptedModel) -> None:
    """Allow reaches the agent: the command runs, the turn ends, the log names the dashboard."""
    task_id, request_id = await asking(web, model)
    browser = await web.logged_in()
    said = await decide(web, browser, task_id, request_id, decision="allow")
    assert said.startswith("ok: Bash request allowed; the task is ")
    task = await run_ended(web, task_id)
    assert (task["status"], task["pending_approvals"]) == ("waiting", [])
    assert (web.root / "f.txt").read_text() == "written"
    approvals = await log_summaries(web, task_id, "approval")
    assert any("allow by the client (dashboard)" in line for line in approvals), approvals
    html = (await browser.get(f"/tasks/{task_id}")).text
    assert '<article class="approval"' not in html
    assert 'class="log-line kind-approval"' in html


async def test_deny_with_a_message_reaches_the_model(web: Web, model: ScriptedModel) -> None:
    """Deny with a message: nothing runs and the model receives the message."""
    task_id, request_id = await asking(web, model)
    browser = await web.logged_in()
    said = await decide(
        web, browser, task_id, request_id, decision="deny", message="not on this machine"
    )
    assert said.startswith("ok: Bash request denied; the task is ")
    await run_ended(web, task_id)
    assert not (web.root / "f.txt").exists()
    last = model.main_requests[-1]["messages"]
    received = str([m for m in last if m["role"] == "user"][-1]["content"])
    assert "not on this machine" in received
    approvals = await log_summaries(web, task_id, "approval")
    assert any("deny by the client (dashboard): not on this machine" in a for a in approvals)


async def test_allow_for_this_task_grants_the_rule(web: Web, model: ScriptedModel) -> None:
    """ "Allow for this task" allows the command and keeps its rule for the task's later turns."""
    task_id, request_id = await asking(web, model)
    browser = await web.logged_in()
    html = (await browser.get(f"/tasks/{task_id}")).text
    assert (
        f'<code class="approval-grants">Bash({WRITE})</code>'.replace("'", "&#39;")
        .replace('"', "&#34;")
        .replace("class=&#34;approval-grants&#34;", 'class="approval-grants"')
        in html
    )
    said = await decide(web, browser, task_id, request_id, decision="allow_task")
    assert said.startswith("ok: Bash request allowed for the rest of the task; ")
    await run_ended(web, task_id)
    assert (web.root / "f.txt").read_text() == "written"
    report = await web.mcp.ok("report", id=task_id)
    assert report["granted_rules"] == [f"Bash({WRITE})"]


@pytest.mark.parametrize("refusal", ["no-csrf", "foreign-origin"])
async def test_refused_decision_changes_nothing(
    web: Web, model: ScriptedModel, refusal: str
) -> None:
    """A decision without the CSRF token, or from another origin, is refused: still pending."""
    task_id, request_id = await asking(web, model)
    browser = await web.logged_in()
    page = f"/tasks/{task_id}"
    csrf = csrf_of((await browser.get(page)).text)
    data = {"request_id": request_id, "decision": "allow"}
    origin = web.base
    if refusal == "no-csrf":
        data["csrf"] = ""
    else:
        data["csrf"] = csrf
        origin = "http://evil.example"
    response = await browser.post(f"{page}/approve", data=data, headers={"Origin": origin})
    assert response.status_code == 403
    task = await web.mcp.ok("report", id=task_id)
    assert task["status"] == "input_required"
    assert [p["request_id"] for p in task["pending_approvals"]] == [request_id]
    assert await log_summaries(web, task_id, "approval") == []
    assert not (web.root / "f.txt").exists()
    await web.mcp.ok("approve", id=task_id, request_id=request_id, decision="deny")
    await run_ended(web, task_id)


async def test_decision_on_a_request_no_longer_pending_says_so(
    web: Web, model: ScriptedModel
) -> None:
    """Deciding a request a second time (the first decision won) gives a clear message."""
    task_id, request_id = await asking(web, model)
    browser = await web.logged_in()
    await decide(web, browser, task_id, request_id, decision="allow")
    await run_ended(web, task_id)
    said = await decide(web, browser, task_id, request_id, decision="deny")
    assert said.startswith(f"error: decision refused: no pending request &#39;{request_id}&#39;")
    assert "it was decided already (allow by the client (dashboard))" in said
    assert (web.root / "f.txt").read_text() == "written"


async def test_unknown_decision_is_refused_with_a_message(web: Web, model: ScriptedModel) -> None:
    """A decision the page never offers, or no request id, is refused naming what is expected;
    the request stays pending."""
    task_id, request_id = await asking(web, model)
    browser = await web.logged_in()
    said = await decide(web, browser, task_id, request_id, decision="maybe")
    assert said == (
        "error: decision refused: expected decision allow, allow_task, deny, "
        "got &#39;maybe&#39; @ decision"
    )
    said = await decide(web, browser, task_id, "", decision="allow")
    assert said == (
        "error: decision refused: expected at least 1 characters, got 0 @ $.arguments.request_id"
    )
    assert (await web.mcp.ok("report", id=task_id))["status"] == "input_required"
    await web.mcp.ok("approve", id=task_id, request_id=request_id, decision="deny")
    await run_ended(web, task_id)


async def test_interrupt_stops_the_turn_and_keeps_the_task(web: Web, model: ScriptedModel) -> None:
    """Interrupt while the agent waits: the turn ends, the task waits for a follow-up."""
    task_id, _ = await asking(web, model)
    browser = await web.logged_in()
    page = f"/tasks/{task_id}"
    response = await web.post_form(browser, f"{page}/interrupt", page)
    assert response.status_code == 303
    html = (await browser.get(page)).text
    assert notice(html) == (
        "ok",
        "turn interrupted: the task is waiting (a follow-up goes on from here)",
    )
    assert 'id="interrupt-button"' not in html
    report = await web.mcp.ok("report", id=task_id)
    assert (report["status"], report["pending_approvals"]) == ("waiting", [])
    assert not (web.root / "f.txt").exists()
    await web.post_form(browser, f"{page}/interrupt", page)
    kind, text = notice((await browser.get(page)).text)
    assert (kind, text) == (
        "error",
        f"interrupt refused: task {task_id} has no run in flight to interrupt (it is waiting)",
    )


async def test_timed_out_request_shows_as_an_approval_event(
    tmp_path: pathlib.Path, model: ScriptedModel
) -> None:
    """A request nobody decides is denied by the timeout; the page's log says so."""
    async with live_dashboard(tmp_path, model) as web:
        model.script(BashCall(WRITE), Reply("done"))
        created = await web.mcp.ok(
            "create_task", title="t", instructions="write f.txt", approval_timeout_s=1
        )
        task_id = created["task_id"]
        await run_ended(web, task_id)
        browser = await web.logged_in()
        html = (await browser.get(f"/tasks/{task_id}")).text
        lines = re.findall(r'class="log-line kind-approval"[^>]*>(.*?)</li>', html)
        assert any("deny by the approval timeout" in line for line in lines), lines
        assert not (web.root / "f.txt").exists()


async def test_task_stream_sends_a_new_request_without_reload(
    web: Web, model: ScriptedModel
) -> None:
    """An open task page's stream sends the request (with its buttons) when the agent asks."""
    held = Hold(then=BashCall(WRITE))
    model.script(held, Reply("done"))
    created = await web.mcp.ok("create_task", title="t", instructions="write f.txt")
    task_id = created["task_id"]
    with trio.fail_after(60):
        await held.reached.wait()
    browser = await web.logged_in()
    page = (await browser.get(f"/tasks/{task_id}")).text
    assert '<article class="approval"' not in page
    last = web.runner.last_seq(task_id)
    path = f"/tasks/{task_id}/events?after={last}&status=in_progress&review=&turns=1&pending="
    with trio.fail_after(60):
        async with browser.stream("GET", path) as response:
            events = sse_events(response)
            held.release()
            async for event in events:
                if event.event == "approvals":
                    approvals = event.data
                    break
    assert 'name="decision" value="allow"' in approvals
    assert f'name="csrf" value="{csrf_of(page)}"' in approvals
    request_id = (await web.mcp.ok("report", id=task_id))["pending_approvals"][0]["request_id"]
    assert f'data-request-id="{request_id}"' in approvals
    await web.mcp.ok("approve", id=task_id, request_id=request_id, decision="allow")
    await run_ended(web, task_id)


async def test_board_stream_shows_a_new_request_without_reload(
    web: Web, model: ScriptedModel
) -> None:
    """An open board's stream sends the banner and the row's count when the agent asks."""
    held = Hold(then=BashCall(WRITE))
    model.script(held, Reply("done"))
    created = await web.mcp.ok("create_task", title="asks soon", instructions="write f.txt")
    task_id = created["task_id"]
    with trio.fail_after(60):
        await held.reached.wait()
    browser = await web.logged_in()
    with trio.fail_after(60):
        async with browser.stream("GET", "/events/board") as response:
            events = sse_events(response)
            first = await anext(events)
            assert 'id="board-asking"' not in first.data
            held.release()
            async for event in events:
                if 'id="board-asking"' in event.data:
                    rows = event.data
                    break
    assert 'id="asking-count">1 task waits for your decision:' in rows
    assert f'href="/tasks/{task_id}" class="asking-task"' in rows
    assert "1 to decide" in rows
    request_id = (await web.mcp.ok("report", id=task_id))["pending_approvals"][0]["request_id"]
    await web.mcp.ok("approve", id=task_id, request_id=request_id, decision="deny")
    await run_ended(web, task_id)


async def test_task_stream_resends_the_approvals_when_the_pages_differ(
    web: Web, model: ScriptedModel
) -> None:
    """A page showing other requests than the task's (same status) gets the approvals again."""
    task_id, request_id = await asking(web, model)
    browser = await web.logged_in()
    last = web.runner.last_seq(task_id)
    path = (
        f"/tasks/{task_id}/events?after={last}&status=input_required&review=&turns=1"
        "&pending=0123456789abcdef"
    )
    with trio.fail_after(60):
        async with browser.stream("GET", path) as response:
            async for event in sse_events(response):
                if event.event == "approvals":
                    approvals = event.data
                    break
    assert f'data-request-id="{request_id}"' in approvals
    await web.mcp.ok("approve", id=task_id, request_id=request_id, decision="deny")
    await run_ended(web, task_id)
