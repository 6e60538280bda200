"""Debian's Chromium driven by Selenium, for the dashboard's tests in a real browser.

``ensure_chromium()`` installs ``chromium`` and ``chromium-driver`` from Debian's archive when
either is missing (as root, the way ``container_host`` installs Docker); ``chrome()`` starts the
browser headless through ``/usr/bin/chromedriver``, named explicitly so that Selenium Manager
never runs and nothing is downloaded. Every address but loopback goes to a dead proxy: the
browser cannot reach the network. ``other_origin(html)`` serves a page from another loopback
port (another origin), in a process of its own, for cross-site requests.

Selenium's calls block: the tests run the server they drive in another process
(``coding-agent up``), so nothing waits on the test's own event loop meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Literal, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

REPO = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMEDRIVER = pathlib.Path("/usr/bin/chromedriver")
PHONE = (390, 844)
DESKTOP = (1280, 800)
POLL_S = 0.02
# Loopback is never proxied; anything else goes to the discard port, where nothing listens.
NO_NETWORK = ("--proxy-server=http://127.0.0.1:9",)
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    *NO_NETWORK,
)

T = TypeVar("T")


def ensure_chromium() -> None:
    """Install Debian's chromium and chromium-driver when either is missing (needs root)."""
    wanted = {CHROMIUM: "chromium", CHROMEDRIVER: "chromium-driver"}
    missing = [package for path, package in wanted.items() if not path.exists()]
    if not missing:
        return
    assert os.geteuid() == 0, f"{missing} missing: install them (apt-get install -y {missing})"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"


@contextlib.contextmanager
def chrome(size: tuple[int, int] = DESKTOP) -> Iterator[WebDriver]:
    """A headless Chromium of its own (fresh profile), its viewport ``size``; quit on exit."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="coding-agent-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        log = pathlib.Path(profile, "chromedriver.log")
        service = Service(str(CHROMEDRIVER), log_output=str(log))
        driver = webdriver.Chrome(service=service, options=options)
        try:
            set_viewport(driver, size)
            yield driver
        finally:
            driver.quit()


def set_viewport(driver: WebDriver, size: tuple[int, int]) -> None:
    """Make the page's viewport exactly ``size`` CSS pixels; a phone's width emulates a phone."""
    width, height = size
    phone = width < 600
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 2 if phone else 1, "mobile": phone},
    )


def wait_for(
    driver: WebDriver,
    condition: Callable[[WebDriver], T | Literal[False] | None],
    what: str,
    *,
    timeout: float = 10.0,
) -> T:
    """Poll ``condition`` (every 20 ms) until it is truthy, and return what it gave then; at
    ``timeout`` fail naming ``what``."""
    wait = WebDriverWait(driver, timeout, poll_frequency=POLL_S)
    found = wait.until(condition, f"{what} (waited {timeout} s at {driver.current_url})")
    assert found is not None
    return found


def body_text(driver: WebDriver) -> str:
    """The text the page shows."""
    return str(driver.execute_script("return document.body ? document.body.innerText : ''"))


def screenshot(driver: WebDriver, name: str) -> pathlib.Path:
    """Save the viewport as ``build/screenshots/NAME.png`` (kept as a CI artifact)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot saved to {path}"
    return path


@contextlib.contextmanager
def other_origin(html: str) -> Iterator[str]:
    """Serve ``html`` as ``/index.html`` from another loopback port; yields the page's URL."""
    with tempfile.TemporaryDirectory(prefix="coding-agent-other-origin-") as directory:
        pathlib.Path(directory, "index.html").write_text(html)
        argv = [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"]
        server = subprocess.Popen(
            argv,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stdout is not None
            # "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
            banner = server.stdout.readline()
            assert "(http://" in banner, f"http.server said {banner!r}"
            yield banner.split("(", 1)[1].split(")", 1)[0] + "index.html"
        finally:
            server.terminate()
            server.wait(timeout=30)
            if server.stdout is not None:
                server.stdout.close()
