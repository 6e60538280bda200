"""Benchmark: how long a live agent's permission request waits for an MCP client's decision.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_approvals.py [--requests 100]

A real daemon and server on loopback (in this process, as the tests run them), the real Claude
Code CLI live against the scripted model (``tests/_support``), and the official MCP SDK client.
One live turn runs ``--requests`` Bash steps, each asked of the client, answered at once:

- ``approve``: a client without elicitation: ``wait_task`` returns ``input_required``, then
  ``approve`` allows the request;
- ``elicitation``: a legacy client that declared elicitation: ``wait_task`` asks the form, the
  callback accepts at once.

Each request's latency is from the server receiving the daemon's ``permission_request`` (its
``approval_request`` event) to the daemon's ``permission_resolved`` (the ``approval`` event:
the decision was written to the agent), both stamped by the server's clock. Prints the median
and p99 per path.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import statistics
import sys
import tempfile
import uuid
from typing import Any

import trio

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tests"))

import mcp_types as types
from _support.claude_cli import claude_env, claude_executable
from _support.scripted_model import BashCall, Reply, open_scripted_model
from _support.sdk_tasks import events, ok
from _support.task_server import task_server
from mcp import Client
from mcp.client.session import ClientRequestContext


async def accept(
    context: ClientRequestContext, params: types.ElicitRequestParams
) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"decision": "allow"})


def _stamp(event: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(event["time"])


async def one_path(path: str, requests: int) -> list[float]:
    """Run one live turn of ``requests`` asked Bash steps; each request's latency in ms."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = pathlib.Path(tmp)
        home = tmp_path / "home"
        (home / ".claude").mkdir(parents=True)
        async with open_scripted_model() as model:
            model.script(*(BashCall(f"sh step.sh {n}") for n in range(requests)), Reply("Done."))
            env = claude_env(model.base_url, home) | {"CLAUDE_PATH": claude_executable()}
            async with task_server(tmp_path, daemon_env=env) as server:
                (server.root / "step.sh").write_text('echo "$1" >> steps.txt\n')
                elicit = accept if path == "elicitation" else None
                async with Client(
                    server.client.url, mode="legacy", elicitation_callback=elicit
                ) as sdk:
                    title = f"bench {uuid.uuid4().hex[:8]}"
                    created = await ok(sdk, "create_task", title=title, instructions="steps")
                    task_id = created["task_id"]
                    while True:
                        task = await ok(sdk, "wait_task", id=task_id, timeout_s=50)
                        for pending in task["pending_approvals"]:
                            await ok(
                                sdk,
                                "approve",
                                id=task_id,
                                request_id=pending["request_id"],
                                decision="allow",
                            )
                        if task["status"] not in ("in_progress", "input_required"):
                            break
                    assert task["status"] == "waiting", task
                    logged = await events(sdk, task_id)
                steps = (server.root / "steps.txt").read_text().split()
                assert steps == [str(n) for n in range(requests)], steps
    asked = {e["data"]["request_id"]: _stamp(e) for e in logged if e["kind"] == "approval_request"}
    latencies = [
        (_stamp(e) - asked[e["data"]["request_id"]]).total_seconds() * 1000
        for e in logged
        if e["kind"] == "approval" and e["data"].get("request_id") in asked
    ]
    assert len(latencies) == requests, (len(latencies), requests)
    return latencies


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def main(requests: int) -> None:
    for path in ("approve", "elicitation"):
        latencies = await one_path(path, requests)
        print(
            f"{path:12} n={len(latencies)}  median {statistics.median(latencies):7.1f} ms  "
            f"p99 {_p99(latencies):7.1f} ms  max {max(latencies):7.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    trio.run(main, parser.parse_args().requests)
