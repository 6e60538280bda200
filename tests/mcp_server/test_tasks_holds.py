"""Usage-limit holds (sans-IO rules and the file): backoff, jitter, per-agent gate, durability."""

from __future__ import annotations

import datetime
import pathlib

import attrs
import pytest

from host_daemon import AgentName
from mcp_server._tasks._holds import (
    CONTINUE_INSTRUCTIONS,
    HoldGate,
    HoldPolicy,
    Holds,
    HoldsFileError,
    UsageLimits,
    limited_task,
)
from mcp_server._tasks._model import Clock, RunReport, Task, TaskOptions, Turn, new_task, start_run

NOW = datetime.datetime(2026, 12, 6, 15, 0, tzinfo=datetime.UTC)
POLICY = HoldPolicy(jitter_s=10.0, backoff_base_s=60.0, backoff_max_s=1800.0)


def _later(seconds: float) -> datetime.datetime:
    return NOW + datetime.timedelta(seconds=seconds)


def _holds(tmp_path: pathlib.Path, jitter: float = 0.5) -> Holds:
    return Holds(tmp_path, POLICY, jitter=lambda: jitter)


def _task(agent: AgentName = "claude", session_id: str | None = "s-1") -> Task:
    task = new_task(
        task_id=f"t-{agent}",
        title="t",
        agent=agent,
        project_dir="",
        cwd="/work",
        options=TaskOptions(),
        instructions="do it",
        now=NOW,
    )
    return attrs.evolve(start_run(task, NOW), session_id=session_id)


def test_a_reset_time_holds_until_it_plus_bounded_jitter(tmp_path: pathlib.Path) -> None:
    """With a reset time the hold ends at it plus jitter times ``jitter_s``."""
    hold = _holds(tmp_path, jitter=0.5).hit("claude", _later(30), "429", NOW)
    assert hold.until == _later(35)
    assert hold.attempt == 1
    assert hold.resets_at == _later(30)


def test_no_reset_time_backs_off_1_2_4_up_to_30_minutes(tmp_path: pathlib.Path) -> None:
    """Each hit after the hold expired doubles the wait: 1, 2, 4 … minutes, at most 30."""
    holds = _holds(tmp_path)
    waits = []
    now = NOW
    for _ in range(7):
        hold = holds.hit("claude", None, None, now)
        waits.append((hold.until - now).total_seconds() / 60)
        now = hold.until
    assert waits == [1, 2, 4, 8, 16, 30, 30]


def test_a_hit_during_the_hold_keeps_its_attempt(tmp_path: pathlib.Path) -> None:
    """Runs in flight that hit the limit during the hold do not count as new attempts."""
    holds = _holds(tmp_path)
    first = holds.hit("claude", None, None, NOW)
    second = holds.hit("claude", None, None, _later(5))
    assert second.attempt == first.attempt == 1
    assert second.until >= first.until


def test_a_run_after_the_hold_lifts_it(tmp_path: pathlib.Path) -> None:
    """A run of the agent that ends without a limit after the hold lifts it; during, it does not."""
    holds = _holds(tmp_path)
    hold = holds.hit("claude", None, None, NOW)
    assert holds.ran("claude", _later(1)) is False
    assert holds.ran("claude", hold.until) is True
    assert holds.holds == {}
    assert holds.hit("claude", None, None, hold.until).attempt == 1


def test_the_gate_holds_only_the_limited_agent(tmp_path: pathlib.Path) -> None:
    """A hold on claude makes claude's tasks wait with the reason; codex's tasks start."""
    holds = _holds(tmp_path, jitter=0.0)
    holds.hit("claude", _later(60), None, NOW)
    gate = HoldGate(holds)
    assert gate.blocks(_task("claude"), NOW) == "usage limit of claude until 15:01:00 UTC"
    assert gate.blocks(_task("codex"), NOW) is None
    assert gate.next_change(NOW) == _later(60)
    assert gate.blocks(_task("claude"), _later(60)) is None
    assert gate.next_change(_later(60)) is None


async def test_holds_survive_in_their_file(tmp_path: pathlib.Path) -> None:
    """Saved holds load back equal in a new ``Holds`` (a restart)."""
    holds = _holds(tmp_path)
    holds.hit("claude", _later(30), "429", NOW)
    holds.hit("gemini", None, "quota", NOW)
    await holds.save()
    again = Holds(tmp_path, POLICY)
    await again.load()
    assert again.holds == holds.holds


async def test_a_bad_holds_file_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    """A holds.json this server did not write is refused naming what and where."""
    (tmp_path / "holds.json").write_text('{"format": 1, "holds": [{"agent": "claude"}]}')
    with pytest.raises(HoldsFileError, match=r"expected the holds this server writes @ .*until"):
        await Holds(tmp_path, POLICY).load()


def test_a_limited_task_resumes_its_session_with_a_continue_turn(tmp_path: pathlib.Path) -> None:
    """The limited task keeps its session and gets a short "continue" turn; without a session
    its last turn runs again as it was."""
    hold = _holds(tmp_path).hit("claude", None, "429", NOW)
    report = RunReport(outcome="limited", started_at=NOW, finished_at=NOW, session_id="s-1")
    after = limited_task(_task(), hold, report, NOW)
    assert after.status == "limited"
    assert after.limit is not None
    assert after.limit.attempt == 1
    assert after.turns[-1] == Turn(CONTINUE_INSTRUCTIONS, NOW)
    no_session = attrs.evolve(report, session_id=None)
    fresh = limited_task(_task(session_id=None), hold, no_session, NOW)
    assert [turn.instructions for turn in fresh.turns] == ["do it"]


async def test_a_bad_holds_file_is_moved_aside_at_start(tmp_path: pathlib.Path) -> None:
    """The runner's load keeps a bad holds.json as holds.json.bad and starts with no holds."""
    (tmp_path / "holds.json").write_text("not json")
    woken: list[bool] = []
    limits = UsageLimits(tmp_path, Clock(), lambda: woken.append(True), POLICY)
    await limits.load()
    assert limits.holds.holds == {}
    assert (tmp_path / "holds.json.bad").read_text() == "not json"
    assert not (tmp_path / "holds.json").exists()
    assert woken == [True]


def test_a_hold_holds_the_agent_on_its_own_host_only(tmp_path: pathlib.Path) -> None:
    """Each host has its own logins: claude's limit on host a holds a's claude tasks only, and
    the reason names the host."""
    holds = _holds(tmp_path, jitter=0.0)
    holds.hit("claude", _later(60), None, NOW, host="a")
    gate = HoldGate(holds)
    on_a = attrs.evolve(_task("claude"), host="a")
    on_b = attrs.evolve(_task("claude"), host="b")
    assert gate.blocks(on_a, NOW) == "usage limit of claude on host a until 15:01:00 UTC"
    assert gate.blocks(on_b, NOW) is None
    assert gate.blocks(_task("claude"), NOW) is None  # the host "default"
    assert [(v["agent"], v["host"]) for v in holds.view([on_a, on_b], NOW)] == [("claude", "a")]


async def test_a_holds_file_from_before_hosts_loads_on_the_default_host(
    tmp_path: pathlib.Path,
) -> None:
    """A hold saved without ``host`` loads as the host ``default``'s."""
    (tmp_path / "holds.json").write_text(
        '{"format": 1, "holds": [{"agent": "claude", "until": "2026-12-06T15:01:00+00:00", '
        '"attempt": 1, "hit_at": "2026-12-06T15:00:00+00:00"}]}'
    )
    holds = Holds(tmp_path, POLICY)
    await holds.load()
    assert list(holds.holds) == [("default", "claude")]
    assert HoldGate(holds).blocks(_task("claude"), NOW) == (
        "usage limit of claude until 15:01:00 UTC (no reset time given: attempt 1)"
    )
