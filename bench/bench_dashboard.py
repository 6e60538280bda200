"""Benchmark the dashboard in a real browser: first load, event-to-screen latency, page weight.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_dashboard.py [--loads 20] [--events 50]

Runs ``coding-agent up`` (server, dashboard and daemon in one process, as a user runs it) with
the task stand-in agent, and Debian's headless Chromium through ``/usr/bin/chromedriver``
(``apt-get install chromium chromium-driver``; the test extra's Selenium drives it).

1. First load: the board and a task page loaded ``--loads`` times each with the browser's cache
   off; the Navigation Timing of each load (time to the first byte, DOMContentLoaded, load).
2. Event to screen: ``--events`` follow-ups sent over MCP (``update_task``) to a task whose page
   is open; for each, the time from just before the MCP call to the moment a MutationObserver in
   the page sees the follow-up's turn in the event log (both clocks are the machine's wall
   clock), while the stand-in agent answers; the next one is sent once the run ended.
3. Weight: the bytes the browser fetched for each page with the cache off (Resource Timing's
   ``transferSize``, headers included, and the bodies alone), by kind: HTML, CSS, JS.

Absolute figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import httpx
import trio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from _support.agent_up import base_env, coding_agent_up
from _support.browser import chrome, wait_for
from _support.dashboard_pages import (
    BOARD_PATH,
    GIT_ENV,
    LOG,
    TASK_PATH,
    Dashboard,
    log_in,
)
from _support.task_server import Client, install_agent
from selenium.webdriver.remote.webdriver import WebDriver

# Watches the page until the log shows ``marker``: then ``window.__shown`` is the wall-clock
# time (ms) it did. Armed before the MCP call, so nothing shown is missed.
_ARM = """
const [marker, id] = arguments;
const seen = () => (document.getElementById(id)?.textContent ?? "").includes(marker);
window.__shown = null;
const observer = new MutationObserver(() => {
  if (!seen()) return;
  window.__shown = performance.timeOrigin + performance.now();
  observer.disconnect();
});
observer.observe(document.body, {childList: true, subtree: true, characterData: true});
"""

_TIMING = "return performance.getEntriesByType('navigation')[0].toJSON()"
_RESOURCES = """
return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
  .map(e => ({name: e.name, type: e.initiatorType, transfer: e.transferSize,
               body: e.encodedBodySize}));
"""


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _kind(entry: dict[str, Any]) -> str | None:
    name = str(entry["name"]).split("?", 1)[0]
    if entry["type"] == "navigation":
        return "HTML"
    if name.endswith(".css"):
        return "CSS"
    if name.endswith(".js"):
        return "JS"
    return None  # the live-update stream, images: not the page's weight


def first_loads(driver: WebDriver, url: str, loads: int) -> dict[str, list[float]]:
    """Navigation Timing (ms) of ``loads`` loads of ``url`` with the cache off."""
    samples: dict[str, list[float]] = {
        "first byte": [],
        "DOM interactive": [],
        "DOMContentLoaded": [],
        "load": [],
    }
    for _ in range(loads):
        driver.get("about:blank")
        driver.get(url)
        timing = wait_for(
            driver,
            lambda d: (t := d.execute_script(_TIMING)) and t["loadEventEnd"] > 0 and t,
            "the load event",
        )
        samples["first byte"].append(timing["responseStart"])
        samples["DOM interactive"].append(timing["domInteractive"])
        samples["DOMContentLoaded"].append(timing["domContentLoadedEventEnd"])
        samples["load"].append(timing["loadEventEnd"])
    return samples


def weight(driver: WebDriver, url: str) -> dict[str, tuple[int, int]]:
    """(transferred, body) bytes by kind for one load of ``url`` with the cache off."""
    driver.get("about:blank")
    driver.get(url)
    wait_for(driver, lambda d: d.execute_script(_TIMING)["loadEventEnd"] > 0, "the load event")
    totals: dict[str, tuple[int, int]] = {"HTML": (0, 0), "CSS": (0, 0), "JS": (0, 0)}
    for entry in driver.execute_script(_RESOURCES):
        kind = _kind(entry)
        if kind is not None:
            transfer, body = totals[kind]
            totals[kind] = (transfer + int(entry["transfer"]), body + int(entry["body"]))
    return totals


async def event_latencies(driver: WebDriver, dash: Dashboard, events: int) -> list[float]:
    """Milliseconds from an ``update_task`` call to its turn showing in the open task page."""
    task_id = await dash.create("Bench", "hello")
    await dash.wait_ended(task_id)
    driver.get(dash.url(TASK_PATH.format(id=task_id)))
    wait_for(driver, lambda d: d.find_elements(*LOG), "the task's log")
    latencies = []
    for n in range(events):
        marker = f"hello bench-{n}"
        driver.execute_script(_ARM, marker, LOG[1])
        sent = time.time() * 1000
        with trio.fail_after(60):
            await dash.client.ok("update_task", id=task_id, instructions=marker)
        shown = wait_for(driver, lambda d: d.execute_script("return window.__shown"), marker)
        latencies.append(float(shown) - sent)
        await dash.wait_ended(task_id)
    return latencies


def _row(name: str, values: Sequence[float]) -> str:
    median, p90 = statistics.median(values), _percentile(values, 0.9)
    return f"{name:<34} {median:>9.1f} {p90:>9.1f} {min(values):>9.1f} {max(values):>9.1f}"


async def bench(loads: int, events: int, work: pathlib.Path) -> list[str]:
    root = work / "root"
    root.mkdir()
    env = base_env(CLAUDE_PATH=install_agent(work / "bin")) | GIT_ENV
    async with coding_agent_up(work / "state", root, env) as up:
        headers = {"Authorization": f"Bearer {up.token}"}
        async with httpx.AsyncClient(timeout=120, headers=headers) as http:
            client = Client(http, up.url)
            await client.initialize()
            dash = Dashboard(up=up, client=client, root=root)
            with chrome() as driver:
                log_in(driver, dash.base, up.token)
                task_id = await dash.create("A task on the board", "hello")
                await dash.wait_ended(task_id)
                latencies = await event_latencies(driver, dash, events)
                driver.execute_cdp_cmd("Network.enable", {})
                driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
                pages = {"board": BOARD_PATH, "task page": TASK_PATH.format(id=task_id)}
                loaded = {
                    name: first_loads(driver, dash.url(p), loads) for name, p in pages.items()
                }
                weights = {name: weight(driver, dash.url(p)) for name, p in pages.items()}
    lines = [
        f"1. first load, cache off, {loads} loads each (ms)",
        f"{'':<34} {'median':>9} {'p90':>9} {'min':>9} {'max':>9}",
    ]
    for page, samples in loaded.items():
        lines += [_row(f"{page}: {what}", values) for what, values in samples.items()]
    lines += [
        "",
        f"2. task event to screen: update_task over MCP -> shown in the open page, {events} events",
        f"{'':<34} {'median':>9} {'p90':>9} {'min':>9} {'max':>9}",
        _row("ms", latencies),
        "",
        "3. page weight, cache off (bytes transferred incl. headers / bodies)",
        f"{'':<34} {'HTML':>15} {'CSS':>15} {'JS':>15} {'total':>15}",
    ]
    for page, kinds in weights.items():
        total = (sum(t for t, _ in kinds.values()), sum(b for _, b in kinds.values()))
        cells = [f"{t:>7} / {b:>5}" for t, b in (*kinds.values(), total)]
        lines.append(f"{page:<34} " + " ".join(f"{cell:>15}" for cell in cells))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--loads", type=int, default=20, help="loads of each page (default 20)")
    parser.add_argument("--events", type=int, default=50, help="follow-ups timed (default 50)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as work:
        lines = trio.run(bench, args.loads, args.events, pathlib.Path(work))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
