"""Benchmark: the task store at scale, today's tree against a reference commit, in one run.

    .venv/bin/python bench/bench_store.py [--tasks 100000] [--events 1000000]
        [--reference bd588ef] [--starts 3] [--reads 20] [--keep-store DIR]

Builds a state directory of ``--tasks`` stored tasks at rest (a year of them, 40 projects, five
statuses, each with a short log of its turns) plus one task whose log holds ``--events`` events,
with ``tests/_support/big_store.py``: written straight to disk by the store's own encoders, those
of the reference (the format a year of use left behind; the new tree must read it as it is).
``--keep-store DIR`` keeps it there and reuses it in a later run with the same sizes and reference.

Then for OLD (``git archive REFERENCE`` unpacked into a temp dir, run from there) and NEW (this
tree), each on its own copy of the state dir, it starts ``python -m mcp_server serve`` on
loopback ``--starts`` times (no host daemon: nothing runs, every task is at rest) and measures:

- start: process spawned -> ``/healthz`` answers and MCP ``initialize`` succeeded. The first start
  is shown alone (the new store builds its index from the files then: the upgrade), the others
  as their median;
- the server's resident set (``VmRSS``) once ready, and again after the reads below;
- medians of ``--reads`` reads: ``agent://tasks`` (the first page), a filtered page (the tasks
  of one status in one project, when the server's store can filter; else the same first page),
  ``report`` of the oldest task, and the last page of the big task's log
  (``task://{id}/logs/{after}``, ``after`` 50 events before the end).

Starts alternate between the sides, and so do the reads (both last servers stay up for them), so
that load changes hit both alike. Every answer is checked against what was written (ids,
statuses, seqs), so a fast wrong answer does not pass. Absolute figures depend on the machine and
its load: compare the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import httpx
import orjson
import trio
from bench_tasks import Mcp, free_port, stop

REPO = pathlib.Path(__file__).resolve().parents[1]
# This tree's packages first: tests/ holds directories named like them.
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from _support.big_store import Manifest  # noqa: E402 (needs the path above)

#: Events on the log page read at the end of the big task's log.
TAIL = 50
#: The filtered page: one status in one project (projects are numbered busiest first).
FILTER_STATUS, FILTER_PROJECT = "failed", "proj-03"
#: However slow a start of the old store on 100,000 tasks: a bound, never a pace.
START_TIMEOUT_S = 1800


class Client(Mcp):
    """The bench's MCP client, with resource reads."""

    async def read(self, uri: str) -> dict[str, Any]:
        self.next_id += 1
        rid = self.next_id
        body = {"jsonrpc": "2.0", "id": rid, "method": "resources/read", "params": {"uri": uri}}
        answer = await self.http.post(self.url, headers=self.headers, json=body)
        answer.raise_for_status()
        [message] = [m for m in _messages(answer) if m.get("id") == rid]
        if "error" in message:
            raise RuntimeError(f"reading {uri} failed: {message['error']}")
        value: dict[str, Any] = orjson.loads(message["result"]["contents"][0]["text"])
        return value

    async def templates(self) -> list[str]:
        self.next_id += 1
        rid = self.next_id
        body = {"jsonrpc": "2.0", "id": rid, "method": "resources/templates/list", "params": {}}
        answer = await self.http.post(self.url, headers=self.headers, json=body)
        answer.raise_for_status()
        [message] = [m for m in _messages(answer) if m.get("id") == rid]
        return [t["uriTemplate"] for t in message["result"]["resourceTemplates"]]


def _messages(answer: httpx.Response) -> list[dict[str, Any]]:
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        return [
            orjson.loads(line[5:])
            for line in answer.text.splitlines()
            if line.startswith("data:") and line[5:].strip()
        ]
    return [orjson.loads(answer.content)]


def rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def extract(reference: str, target: pathlib.Path) -> str:
    """``git archive REFERENCE | tar -x -C target``; returns the commit's hash."""
    target.mkdir(parents=True)
    with subprocess.Popen(["git", "archive", reference], cwd=REPO, stdout=subprocess.PIPE) as git:
        subprocess.run(["tar", "-x", "-C", str(target)], stdin=git.stdout, check=True)
    if git.returncode != 0:
        raise SystemExit(f"git archive {reference} failed (exit {git.returncode})")
    commit = ["git", "rev-parse", "--verify", f"{reference}^{{commit}}"]
    return subprocess.run(
        commit, cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def generate(tree: pathlib.Path, state: pathlib.Path, tasks: int, events: int) -> Manifest:
    """The big store, written by ``tree``'s encoders (see the module docstring)."""
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{REPO / 'tests'}")
    sizes = ["--tasks", str(tasks), "--events", str(events)]
    done = subprocess.run(
        [sys.executable, "-m", "_support.big_store", str(state), *sizes],
        env=env,
        stdout=subprocess.PIPE,
        check=True,
    )
    return Manifest.from_json(done.stdout)


class Checks:
    """What each read must answer, from the manifest."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.total = len(manifest.rows)
        self.big = manifest.row(manifest.big)
        self.filtered = [
            row.id
            for row in manifest.rows
            if row.status == FILTER_STATUS and row.project == FILTER_PROJECT
        ]

    def first_page(self, page: dict[str, Any]) -> None:
        ids = [task["task_id"] for task in page["tasks"]]
        newest = self.manifest.rows[-1].id
        assert page["total_tasks"] == self.total, (page["total_tasks"], self.total)
        assert newest in ids, f"the newest task {newest} is not on the first page"
        assert len(set(ids)) == len(ids) > 0, ids

    def filtered_page(self, page: dict[str, Any], *, filtering: bool) -> None:
        if not filtering:
            self.first_page(page)
            return
        ids = [task["task_id"] for task in page["tasks"]]
        assert ids == self.filtered[-len(ids) :], "the filtered page is not the newest matches"
        assert len(ids) == min(50, len(self.filtered)), (len(ids), len(self.filtered))
        assert page["matching_tasks"] == len(self.filtered), page["matching_tasks"]

    def report(self, view: dict[str, Any]) -> None:
        oldest = self.manifest.oldest
        assert view["task_id"] == oldest.id, view["task_id"]
        assert view["status"] == oldest.status, (view["status"], oldest.status)
        assert view["event_count"] == oldest.events, (view["event_count"], oldest.events)
        assert view["report"] is not None

    def log_tail(self, page: dict[str, Any]) -> None:
        seqs = [event["seq"] for event in page["events"]]
        last = self.big.events
        assert seqs == list(range(last - TAIL + 1, last + 1)), (seqs[:3], seqs[-3:], last)
        assert page["last_seq"] == last
        assert page["next"] is None


def filtered_uri(templates: list[str]) -> str | None:
    """The filtered listing's URI when the server offers ``agent://tasks?{query}`` (else None)."""
    if "agent://tasks?{query}" in templates:
        return f"agent://tasks?status={FILTER_STATUS}&project={FILTER_PROJECT}"
    return None


async def start_server(
    tree: pathlib.Path, state: pathlib.Path, log: pathlib.Path
) -> tuple[trio.Process, Client, httpx.AsyncClient, float]:
    """``python -m mcp_server serve`` from ``tree`` on ``state``; ready = MCP initialized."""
    port, token = free_port(), secrets.token_urlsafe(16)
    env = dict(
        os.environ,
        PYTHONPATH=str(tree),
        STATE_PATH=str(state),
        PROJECTS_PATH=str(state.parent / "root"),
        MCP_AUTH_TOKEN=token,
        PORT=str(port),
        DAEMON_TOKEN="no-daemon-runs-here",  # noqa: S106 (nothing listens on its port)
        CLAUDE_PROXY_HOST="127.0.0.1",
        CLAUDE_PROXY_PORT=str(free_port()),
    )
    (state.parent / "root").mkdir(exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    http = httpx.AsyncClient(timeout=600)
    started = time.perf_counter()
    with log.open("ab") as errors:
        server = await trio.lowlevel.open_process(
            [sys.executable, "-m", "mcp_server", "serve"],
            env=env,
            cwd=tree,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:
        with trio.fail_after(START_TIMEOUT_S):
            while server.poll() is None:
                try:
                    await http.get(base + "/healthz")
                except httpx.TransportError:
                    await trio.sleep(0.02)
                else:
                    break
            else:
                exited = f"the server exited ({server.returncode}); see {log}"
                raise RuntimeError(exited)  # noqa: TRY301 (the server is stopped below)
            client = Client(http, base + "/mcp", token)
            await client.initialize()
    except BaseException:
        await stop(server)
        await http.aclose()
        raise
    return server, client, http, time.perf_counter() - started


@attrs.define
class Side:
    """OLD or NEW: where its code and its copy of the store are, and its figures."""

    label: str
    tree: pathlib.Path
    state: pathlib.Path
    starts: list[float] = attrs.field(factory=list)
    figures: dict[str, float] = attrs.field(factory=dict)
    samples: dict[str, list[float]] = attrs.field(factory=dict)
    filtering: bool = False


@contextlib.asynccontextmanager
async def running(side: Side) -> AsyncIterator[tuple[trio.Process, Client]]:
    """A server of ``side`` started (its start time and resident set recorded), then stopped."""
    log = side.state.parent / f"{side.label}-server.log"
    server, client, http, seconds = await start_server(side.tree, side.state, log)
    try:
        side.starts.append(seconds)
        side.figures["rss_start"] = rss_mib(server.pid)
        yield server, client
    finally:
        await stop(server)
        await http.aclose()


async def bench(args: argparse.Namespace, sides: list[Side], checks: Checks) -> None:
    """``--starts`` starts per side, alternating; the last servers of both stay up for the
    reads, whose samples alternate too (so load changes hit both sides alike)."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for n in range(args.starts):
            for side in sides:
                if n < args.starts - 1:
                    async with running(side):
                        pass
                else:
                    server, client = await stack.enter_async_context(running(side))
                    clients.append((side, server, client))
        reads = [
            (side, server, await readers(side, client, checks)) for side, server, client in clients
        ]
        for n in range(args.reads + 1):  # the first round warms up, uncounted
            for name in READS:
                for side, _, readers_of in reads:
                    started = time.perf_counter()
                    await readers_of[name]()
                    if n:
                        side.samples.setdefault(name, []).append(time.perf_counter() - started)
        for side, server, _ in reads:
            side.figures["rss_reads"] = rss_mib(server.pid)
            for name, samples in side.samples.items():
                side.figures[name] = statistics.median(samples) * 1000


READS = ("first_page", "filtered", "report", "log_tail")


async def readers(
    side: Side, client: Client, checks: Checks
) -> dict[str, Callable[[], Awaitable[None]]]:
    """The timed reads of one server, each checking its answer."""
    filtered = filtered_uri(await client.templates())
    side.filtering = filtered is not None
    oldest, big = checks.manifest.oldest.id, checks.big

    async def first_page() -> None:
        checks.first_page(await client.read("agent://tasks"))

    async def filtered_page() -> None:
        page = await client.read(filtered or "agent://tasks")
        checks.filtered_page(page, filtering=filtered is not None)

    async def report() -> None:
        checks.report(await client.call("report", id=oldest))

    async def log_tail() -> None:
        checks.log_tail(await client.read(f"task://{big.id}/logs/{big.events - TAIL}"))

    return {
        "first_page": first_page,
        "filtered": filtered_page,
        "report": report,
        "log_tail": log_tail,
    }


def build(args: argparse.Namespace, work: pathlib.Path) -> tuple[list[Side], Checks]:
    """The old tree unpacked; the store generated (or reused from ``--keep-store``) and copied
    for each side into ``work/old/state`` and ``work/new/state``."""
    old_tree = work / "old-tree"
    commit = extract(args.reference, old_tree)
    store = args.keep_store or work / "store"
    key = {"tasks": args.tasks, "events": args.events, "commit": commit}
    kept = store / "manifest.json"
    if kept.exists() and orjson.loads(kept.read_bytes())["key"] == key:
        manifest = Manifest.from_json(orjson.dumps(orjson.loads(kept.read_bytes())["manifest"]))
        print(f"reusing the store in {store}", file=sys.stderr)
    else:
        if store.exists():
            shutil.rmtree(store)
        started = time.perf_counter()
        manifest = generate(old_tree, store / "state", args.tasks, args.events)
        print(
            f"built {args.tasks} tasks and a log of {args.events} events in "
            f"{time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
        kept.write_bytes(orjson.dumps({"key": key, "manifest": attrs.asdict(manifest)}))
    sides = [
        Side("old", old_tree, work / "old" / "state"),
        Side("new", REPO, work / "new" / "state"),
    ]
    for side in sides:
        side.state.parent.mkdir()
        subprocess.run(["cp", "-a", str(store / "state"), str(side.state.parent)], check=True)
    return sides, Checks(manifest)


def table(args: argparse.Namespace, old: Side, new: Side) -> list[str]:
    """The Markdown table: one row per figure, old and new side by side, and their ratio."""
    rows = [("first start (new: builds its index)", old.starts[0], new.starts[0], "s")]
    if args.starts > 1:
        later = [statistics.median(side.starts[1:]) for side in (old, new)]
        rows.append(("start (median of the later starts)", *later, "s"))
    filtered = (
        f"filtered page ({FILTER_STATUS} in {FILTER_PROJECT})"
        if new.filtering
        else "filtered page (no filter: the first page again)"
    )
    names = {
        "rss_start": ("VmRSS once ready", "MiB"),
        "first_page": ("agent://tasks, first page", "ms"),
        "filtered": (filtered, "ms"),
        "report": ("report of the oldest task", "ms"),
        "log_tail": (f"log page: the last {TAIL} events of the big log", "ms"),
        "rss_reads": ("VmRSS after the reads", "MiB"),
    }
    rows += [
        (name, old.figures[key], new.figures[key], unit) for key, (name, unit) in names.items()
    ]
    lines = [
        f"{args.tasks} tasks, one log of {args.events} events; start: {args.starts} per side; "
        f"reads: medians of {args.reads}",
        "",
        f"| metric | old ({args.reference}) | new (this tree) | new/old |",
        "|---|---:|---:|---:|",
    ]
    for name, before, after, unit in rows:
        digits = 2 if unit == "s" else 1
        lines.append(
            f"| {name} | {before:.{digits}f} {unit} | {after:.{digits}f} {unit} | "
            f"{after / before:.2f}x |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--reference", default="bd588ef", help="the OLD store's git ref")
    parser.add_argument("--starts", type=int, default=3, help="server starts per side")
    parser.add_argument("--reads", type=int, default=20, help="reads per figure (median)")
    parser.add_argument(
        "--keep-store",
        type=pathlib.Path,
        help="build the store here, or reuse the one built here with the same sizes and reference",
    )
    args = parser.parse_args()
    if args.tasks < 2 or args.events < TAIL + 6 or args.starts < 1 or args.reads < 1:
        parser.error(f"expected --tasks >= 2, --events >= {TAIL + 6}, --starts and --reads >= 1")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as work:
        sides, checks = build(args, pathlib.Path(work))
        trio.run(bench, args, sides, checks)
    print("\n".join(table(args, *sides)))


if __name__ == "__main__":
    main()
