"""A big state directory of stored tasks, written straight to disk with the store's own encoders.

    PYTHONPATH=$PWD:$PWD/tests python -m _support.big_store STATE [--tasks N] [--events M]

writes ``STATE/tasks/<id>.json`` and ``<id>.events.ndjson`` for ``N`` tasks at rest (``waiting``,
``completed``, ``failed``, ``cancelled``, ``interrupted``) over a year, in 40 projects of
unequal size, each with a short log of a turn as the runner records it (turn, status, run
started, the agent's events with their raw lines, run finished, status); one task in the middle
has a log of ``M`` events. It prints the :class:`Manifest` as JSON. ``bench/bench_store.py``
builds its 100,000-task store with it; the ``big_store`` fixture a small one.

No server is involved (that would take hours for 100,000 tasks): the records and events are the
ones the server writes (:func:`encode_task`, :func:`encode_bounded` of capped events), built by
the model's own types. Same seed, same store.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import pathlib
import random
import shutil
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs
import orjson
import pytest

from host_daemon import AgentEvent
from mcp_server._tasks._files import (
    LOG_SUFFIX,
    RECORD_SUFFIX,
    cap_event,
    encode_bounded,
    encode_task,
)
from mcp_server._tasks._model import (
    RunReport,
    Task,
    TaskEvent,
    TaskOptions,
    TaskStatus,
    Turn,
    WorktreeRecord,
)
from mcp_server._tasks._report import event_data, summarize

__all__ = ["PROJECTS", "SMALL_EVENTS", "SMALL_TASKS", "Manifest", "Row", "big_store", "build_store"]

SMALL_TASKS = 2000
"""Tasks in the ``big_store`` fixture's store (the bench's shape, fiftyfold smaller)."""
SMALL_EVENTS = 20_000
"""Events in the log of the fixture's big task."""

PROJECTS = tuple(f"proj-{n:02d}" for n in range(40))
"""Projects, the first ones busiest (weights 1/(n+1))."""
STATUSES: dict[TaskStatus, float] = {
    "waiting": 0.35,
    "completed": 0.40,
    "failed": 0.10,
    "cancelled": 0.10,
    "interrupted": 0.05,
}
OUTCOMES = {
    "waiting": "success",
    "completed": "success",
    "failed": "error",
    "cancelled": "cancelled",
    "interrupted": "interrupted",
}
AGENTS = (("claude", 0.6), ("codex", 0.25), ("gemini", 0.15))
YEAR = datetime.timedelta(days=365)
WORDS = (
    *("fix", "the", "flaky", "test", "in", "parser", "module", "and", "add", "a", "regression"),
    *("for", "empty", "input", "case", "refactor", "config", "loader", "so", "that", "env"),
    *("variables", "win", "over", "file", "update", "README", "with", "new", "flags", "check"),
)
TOOLS = ("Read", "Edit", "Bash", "Grep", "Write")
POOL = 601
"""A turn's first agent events made afresh; a longer turn repeats them (the init aside)."""
FILES = ("src/app.py", "src/config.py", "tests/test_app.py", "README.md", "pyproject.toml")


@attrs.frozen
class Row:
    """What a test or the bench needs to know of one stored task."""

    id: str
    seq: int
    status: str
    project: str
    created_at: str
    events: int


@attrs.frozen
class Manifest:
    """What :func:`build_store` wrote: every task in creation order, and which one is big."""

    state: str
    rows: list[Row]
    big: str
    """The task whose log holds the requested number of events."""
    now: str
    """The generation time: the newest task is a few minutes older."""

    @property
    def oldest(self) -> Row:
        return self.rows[0]

    def row(self, task_id: str) -> Row:
        return next(row for row in self.rows if row.id == task_id)

    def counts(self) -> dict[str, Counter[str]]:
        """Tasks per status and per project."""
        return {
            "status": Counter(row.status for row in self.rows),
            "project": Counter(row.project for row in self.rows),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = orjson.loads(data)
        return cls(
            state=raw["state"],
            rows=[Row(**row) for row in raw["rows"]],
            big=raw["big"],
            now=raw["now"],
        )


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))


def _agent_events(rng: random.Random, session: str, count: int) -> Iterator[AgentEvent]:
    """``count`` agent events as a Claude-like stream: init, tool calls and results, text."""
    yield AgentEvent(
        kind="init",
        raw=orjson.dumps(
            {"type": "system", "subtype": "init", "session_id": session, "model": "sonnet"}
        ).decode(),
        session_id=session,
        data={"model": "sonnet"},
    )
    for n in range(1, count):
        if n % 3 == 1:
            tool, use = rng.choice(TOOLS), f"toolu_{rng.getrandbits(64):016x}"
            tool_input = {"file_path": rng.choice(FILES)}
            content = [{"type": "tool_use", "id": use, "name": tool, "input": tool_input}]
            message = {"type": "assistant", "message": {"content": content}, "session_id": session}
            yield AgentEvent(
                kind="tool_use",
                raw=orjson.dumps(message).decode(),
                tool_name=tool,
                tool_use_id=use,
                tool_input=tool_input,
            )
        elif n % 3 == 2:
            text = _words(rng, 10, 60)
            content = [{"type": "tool_result", "tool_use_id": "toolu_x", "content": text}]
            message = {"type": "user", "message": {"content": content}, "session_id": session}
            yield AgentEvent(kind="tool_result", raw=orjson.dumps(message).decode(), text=text)
        else:
            text = _words(rng, 5, 40)
            content = [{"type": "text", "text": text}]
            message = {"type": "assistant", "message": {"content": content}, "session_id": session}
            yield AgentEvent(kind="text", raw=orjson.dumps(message).decode(), text=text)


def _turn_events(
    rng: random.Random,
    task: Task,
    turn: int,
    agent_count: int,
    *,
    start: datetime.datetime,
    end: datetime.datetime,
) -> Iterator[dict[str, Any]]:
    """One turn's events as the runner records them (without seq and time)."""
    assert task.report is not None
    instructions = task.turns[turn - 1].instructions
    yield {"kind": "turn", "summary": f"turn {turn}: {instructions[:119]}", "data": {"turn": turn}}
    yield {"kind": "status", "summary": "in_progress", "data": {"status": "in_progress"}}
    pid = rng.randint(1000, 99999)
    yield {"kind": "run_started", "summary": f"run started: pid {pid}", "data": {"pid": pid}}
    pool: list[dict[str, Any]] = []
    for event in _agent_events(rng, task.session_id or "", min(agent_count, POOL)):
        pool.append(
            {
                "kind": "agent",
                "summary": summarize(event),
                "data": event_data(event),
                "raw": event.raw,
            }
        )
        yield pool[-1]
    for n in range(POOL, agent_count):  # a long turn repeats its first events (not the init)
        yield pool[1 + (n - 1) % (POOL - 1)]
    outcome = task.report.outcome if turn == len(task.turns) else "success"
    yield {
        "kind": "run_finished",
        "summary": f"run finished: {outcome}",
        "data": {"outcome": outcome, "duration_s": (end - start).total_seconds()},
    }
    status = task.status if turn == len(task.turns) else "waiting"
    if status == "completed":
        status = "waiting"  # ended later by end_task, below
    yield {"kind": "status", "summary": status, "data": {"status": status}}


def _log_lines(
    rng: random.Random, task: Task, per_turn: int, start: datetime.datetime
) -> Iterator[bytes]:
    """The task's log, encoded as the store writes it; times spread over its runs."""
    assert task.report is not None
    seq = 0
    span = (task.updated_at - start) / max(1, len(task.turns))
    for turn in range(1, len(task.turns) + 1):
        begin = start + span * (turn - 1)
        fields = _turn_events(rng, task, turn, per_turn, start=begin, end=begin + span)
        ended = turn == len(task.turns) and task.status == "completed"
        if ended:
            end = {"kind": "status", "summary": "completed", "data": {"status": "completed"}}
            fields = itertools.chain(fields, [end])
        step = span / (per_turn + 5 + ended + 1)
        for n, field in enumerate(fields, start=1):
            seq += 1
            event = TaskEvent(seq=seq, time=begin + step * n, **field)
            yield encode_bounded(cap_event(event))


def _task(
    rng: random.Random, seq: int, created: datetime.datetime, status: TaskStatus, project: str
) -> Task:
    agent = rng.choices([a for a, _ in AGENTS], [w for _, w in AGENTS])[0]
    turns = rng.choices((1, 2, 3), (0.6, 0.3, 0.1))[0]
    run_s = rng.uniform(20, 1800)
    finished = created + datetime.timedelta(seconds=run_s * turns + 60 * (turns - 1))
    session = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    worktree = status == "completed" and rng.random() < 0.5
    report = RunReport(
        outcome=OUTCOMES[status],  # type: ignore[arg-type]
        started_at=finished - datetime.timedelta(seconds=run_s),
        finished_at=finished,
        final_text=_words(rng, 20, 80),
        cost_usd=round(rng.uniform(0.01, 3.0), 4),
        num_turns=rng.randint(1, 40),
        usage={"input_tokens": rng.randint(1000, 200000), "output_tokens": rng.randint(100, 20000)},
        files_changed=rng.sample(FILES, rng.randint(0, 3)),
        error="the agent exited with code 1" if status == "failed" else None,
        exit_code=1 if status == "failed" else 0,
        session_id=session,
        duration_s=run_s,
    )
    return Task(
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        title=_words(rng, 3, 10),
        agent=agent,  # type: ignore[arg-type]
        project_dir=project,
        cwd=f"/home/dev/src/{project}",
        options=TaskOptions(model=rng.choice((None, "sonnet", "opus"))),
        status=status,
        turns=tuple(
            Turn(
                instructions=_words(rng, 15, 80), at=created + datetime.timedelta(seconds=n * run_s)
            )
            for n in range(turns)
        ),
        created_at=created,
        updated_at=finished + datetime.timedelta(seconds=5 if status == "completed" else 0),
        started_at=created + datetime.timedelta(seconds=1),
        completed_at=finished + datetime.timedelta(seconds=5) if status == "completed" else None,
        session_id=session,
        report=report,
        runs=turns,
        seq=seq,
        isolation="worktree" if worktree else "none",
        isolation_note=f"branch coding-agent/{seq}" if worktree else "not a git repository",
        worktree=WorktreeRecord(
            branch=f"coding-agent/{seq}",
            base_branch="main",
            base_commit=f"{rng.getrandbits(160):040x}",
            repo=f"/home/dev/src/{project}",
            subdir="",
        )
        if worktree
        else None,
        commits=(f"{rng.getrandbits(160):040x}",) if worktree else (),
        review=rng.choice(("merged", "discarded")) if worktree else None,
    )


def build_store(
    state: pathlib.Path,
    tasks: int,
    events: int,
    *,
    seed: int = 14,
    now: datetime.datetime | None = None,
) -> Manifest:
    """Write ``tasks`` tasks into ``state`` (one of them with ``events`` events); see the module."""
    rng = random.Random(seed)  # noqa: S311 (made-up test data, reproducible from its seed)
    now = now or datetime.datetime.now(datetime.UTC)
    tasks_dir = state / "tasks"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    weights = [1 / (n + 1) for n in range(len(PROJECTS))]
    statuses, status_weights = list(STATUSES), list(STATUSES.values())
    rows: list[Row] = []
    big_seq = max(1, tasks // 2)
    big = ""
    step = (YEAR - datetime.timedelta(hours=2)) / max(1, tasks)
    for seq in range(1, tasks + 1):
        created = now - YEAR + step * (seq - 1) + datetime.timedelta(seconds=rng.uniform(0, 1))
        status: TaskStatus = (
            "waiting" if seq == big_seq else rng.choices(statuses, status_weights)[0]
        )
        project = rng.choices(PROJECTS, weights)[0]
        task = _task(rng, seq, created, status, project)
        per_turn = rng.randint(2, 8)
        if seq == big_seq:
            # One turn: 5 bookkeeping events around ``events - 5`` agent events.
            task = attrs.evolve(task, turns=task.turns[:1], runs=1)
            per_turn = max(1, events - 5)
            big = task.id
        count = 0
        with (tasks_dir / (task.id + LOG_SUFFIX)).open("wb") as log:
            for line in _log_lines(rng, task, per_turn, created + datetime.timedelta(seconds=1)):
                log.write(line)
                count += 1
        task = attrs.evolve(task, event_count=count)
        (tasks_dir / (task.id + RECORD_SUFFIX)).write_bytes(encode_task(task))
        rows.append(Row(task.id, seq, task.status, project, task.created_at.isoformat(), count))
    return Manifest(state=str(state), rows=rows, big=big, now=now.isoformat())


@pytest.fixture(scope="session")
def _big_store_template(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """One store of ``SMALL_TASKS`` tasks per session; tests get copies of it."""
    state = tmp_path_factory.mktemp("big-store") / "state"
    return build_store(state, SMALL_TASKS, SMALL_EVENTS)


@pytest.fixture
def big_store(_big_store_template: Manifest, tmp_path: pathlib.Path) -> Manifest:
    """A state dir of its own (``manifest.state``) holding ``SMALL_TASKS`` tasks at rest and one
    log of ``SMALL_EVENTS`` events (``manifest.big``), built by :func:`build_store`."""
    state = tmp_path / "state"
    shutil.copytree(_big_store_template.state, state)
    return attrs.evolve(_big_store_template, state=str(state))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state", type=pathlib.Path)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    manifest = build_store(args.state, args.tasks, args.events, seed=args.seed)
    sys.stdout.buffer.write(manifest.to_json() + b"\n")


if __name__ == "__main__":
    main()
