"""Usage-limit holds: one per agent account, durable, and the gate that makes tasks wait on them.

An account is an agent on a host (each host daemon runs the agents with its own logins): a
limit hit on one host holds that agent's tasks on that host only.

When a run ends ``limited`` (the agent's own events said its account hit a usage or rate limit,
see ``host_daemon._limits``), the whole account is held, not only the task that hit it: every
waiting task of that agent waits (``queue_reason`` "usage limit of claude until 15:04:05 UTC")
until the hold's ``until``: the reset time the agent gave plus a bounded random jitter (so that
several servers on one account do not all retry in the same second), or, with no reset time, a
backoff of 1, 2, 4 … 30 minutes by the hold's ``attempt``. A hit while the hold is still on
keeps the attempt (the runs that were in flight when the limit came); a hit after it expired
(a resumed run hit it again) counts one more attempt. A run of that agent that ends otherwise
after the hold expired lifts it.

The holds live in ``holds.json`` in the state directory (attrs records through a strict cattrs
converter, replaced atomically in ``trio.to_thread``), so a restart keeps them and the
``limited`` tasks still resume at their time.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
import random
from collections.abc import Callable, Iterable
from typing import Any, Final

import attrs
import cattrs
import trio

from host_daemon import AgentName

from ._hosts import DEFAULT_HOST
from ._model import Clock, RunReport, Task, Turn, UsageLimit, limited

__all__ = [
    "CONTINUE_INSTRUCTIONS",
    "Hold",
    "HoldGate",
    "HoldPolicy",
    "Holds",
    "HoldsFileError",
    "UsageLimits",
    "limited_task",
]

log = logging.getLogger("mcp_server.tasks")

HOLDS_FILE: Final = "holds.json"
CONTINUE_INSTRUCTIONS: Final = "Continue where you left off; the usage limit has reset."
"""The turn a ``limited`` task resumes its conversation with (by its session id)."""
_FORMAT: Final = 1


class HoldsFileError(Exception):
    """``holds.json`` could not be read or is not what this server writes."""


@attrs.frozen
class HoldPolicy:
    """How long a hold lasts past the reset, and the backoff when the agent gave no reset.

    Tests shorten these through ``TaskRunner(hold_policy=...)``; nothing else sets them.
    """

    jitter_s: float = 10.0
    """At most this long, at random, after the reset time."""
    backoff_base_s: float = 60.0
    """The first wait with no reset time; doubled each attempt."""
    backoff_max_s: float = 1800.0
    """The longest wait with no reset time."""

    def backoff_s(self, attempt: int) -> float:
        """1, 2, 4 … (in ``backoff_base_s``) up to ``backoff_max_s``, for attempt 1, 2, 3 …"""
        return min(self.backoff_base_s * 2.0 ** min(attempt - 1, 32), self.backoff_max_s)


@attrs.frozen
class Hold:
    """An agent account's usage limit: its tasks wait until ``until``."""

    agent: AgentName
    until: datetime.datetime
    attempt: int
    hit_at: datetime.datetime
    resets_at: datetime.datetime | None = None
    """The reset time the agent gave (``None``: it gave none; ``until`` is a backoff)."""
    message: str | None = None
    host: str = DEFAULT_HOST
    """The host whose login of the agent hit the limit (each host has its own accounts)."""

    @property
    def key(self) -> tuple[str, AgentName]:
        return (self.host, self.agent)

    def active(self, now: datetime.datetime) -> bool:
        """Whether its tasks still wait."""
        return now < self.until


@attrs.frozen
class _HoldsFile:
    format: int
    holds: list[Hold]


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_unstructure_hook(datetime.datetime, lambda value: value.isoformat())
    converter.register_structure_hook(
        datetime.datetime, lambda value, _: _aware(datetime.datetime.fromisoformat(value))
    )
    return converter


def _aware(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        raise ValueError(f"expected a time with its UTC offset, got {value.isoformat()}")
    return value


_CONVERTER: Final = _converter()


class Holds:
    """The holds per agent and their file; see the module docstring."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        policy: HoldPolicy | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.path = state_dir / HOLDS_FILE
        self.policy = policy or HoldPolicy()
        self._jitter = jitter
        self.holds: dict[tuple[str, AgentName], Hold] = {}
        """(host, agent) -> its hold."""
        self._lock = trio.Lock()

    # -- the rules (plain code) ---------------------------------------------------------

    def hit(
        self,
        agent: AgentName,
        resets_at: datetime.datetime | None,
        message: str | None,
        now: datetime.datetime,
        host: str = DEFAULT_HOST,
    ) -> Hold:
        """A run of ``agent`` on ``host`` hit its limit: the account's hold from now on."""
        previous = self.holds.get((host, agent))
        attempt = 1
        if previous is not None:
            attempt = previous.attempt if previous.active(now) else previous.attempt + 1
        if resets_at is not None and resets_at > now:
            until = resets_at + datetime.timedelta(seconds=self._jitter() * self.policy.jitter_s)
        else:
            resets_at = None
            until = now + datetime.timedelta(seconds=self.policy.backoff_s(attempt))
        if previous is not None and previous.active(now) and previous.until > until:
            until = previous.until
        hold = Hold(agent, until, attempt, now, resets_at, message, host)
        self.holds[hold.key] = hold
        return hold

    def ran(self, agent: AgentName, now: datetime.datetime, host: str = DEFAULT_HOST) -> bool:
        """A run of ``agent`` on ``host`` ended without a limit: an expired hold is lifted
        (True if so)."""
        hold = self.holds.get((host, agent))
        if hold is None or hold.active(now):
            return False
        del self.holds[hold.key]
        return True

    def active(
        self, agent: AgentName, now: datetime.datetime, host: str = DEFAULT_HOST
    ) -> Hold | None:
        """The agent's hold on ``host`` while its tasks wait, else ``None``."""
        hold = self.holds.get((host, agent))
        return hold if hold is not None and hold.active(now) else None

    def view(self, tasks: Iterable[Task], now: datetime.datetime) -> list[dict[str, Any]]:
        """Each hold for ``check_status``: agent, host, until, attempt, and the tasks it holds."""
        held: dict[tuple[str, AgentName], list[str]] = {}
        for task in tasks:
            if task.waiting_to_start:
                held.setdefault((task.host, task.agent), []).append(task.id)
        return [
            {
                "agent": hold.agent,
                "host": hold.host,
                "until": hold.until.isoformat(),
                "active": hold.active(now),
                "attempt": hold.attempt,
                "resets_at": None if hold.resets_at is None else hold.resets_at.isoformat(),
                "hit_at": hold.hit_at.isoformat(),
                "message": hold.message,
                "tasks": held.get(hold.key, []) if hold.active(now) else [],
            }
            for hold in sorted(self.holds.values(), key=lambda h: (h.agent, h.host))
        ]

    # -- the file (trio.to_thread) ------------------------------------------------------

    async def load(self) -> None:
        """Read ``holds.json`` (none yet: no holds)."""
        holds = await trio.to_thread.run_sync(self._read)
        self.holds = {hold.key: hold for hold in holds}
        if holds:
            log.info("holds: %s", ", ".join(f"{h.agent} until {h.until}" for h in holds))

    async def save(self) -> None:
        """Replace ``holds.json`` with the holds now (atomically)."""
        data = json.dumps(
            _CONVERTER.unstructure(_HoldsFile(_FORMAT, list(self.holds.values()))), indent=1
        ).encode()
        async with self._lock:
            await trio.to_thread.run_sync(self._write, data)

    def _read(self) -> list[Hold]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise HoldsFileError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            file = _CONVERTER.structure(json.loads(raw), _HoldsFile)
        except (ValueError, cattrs.BaseValidationError) as exc:
            detail = (
                "; ".join(cattrs.transform_error(exc))
                if isinstance(exc, cattrs.BaseValidationError)
                else str(exc)
            )
            raise HoldsFileError(
                f"expected the holds this server writes @ {self.path}: {detail}"
            ) from None
        if file.format != _FORMAT:
            raise HoldsFileError(f"expected format {_FORMAT}, got {file.format} @ {self.path}")
        return file.holds

    def _write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, self.path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def limited_task(task: Task, hold: Hold, report: RunReport, now: datetime.datetime) -> Task:
    """The task after its run hit the limit: ``limited``, resuming with a short "continue" turn.

    With no session id (the agent never started its conversation) the task's last turn is run
    again as it was.
    """
    limit = UsageLimit(
        agent=task.agent,
        resets_at=hold.resets_at,
        hit_at=now,
        attempt=hold.attempt,
        message=report.error,
    )
    after = limited(task, limit, report, now)
    if after.session_id is None:
        return after
    return attrs.evolve(after, turns=(*after.turns, Turn(CONTINUE_INSTRUCTIONS, now)))


class HoldGate:
    """The scheduler's gate for holds: a task of a held agent waits until the hold's end."""

    def __init__(self, holds: Holds) -> None:
        self.holds = holds

    def blocks(self, task: Task, now: datetime.datetime) -> str | None:
        hold = self.holds.active(task.agent, now, task.host)
        if hold is None:
            return None
        until = hold.until.astimezone(datetime.UTC).strftime("%H:%M:%S UTC")
        on = "" if task.host == DEFAULT_HOST else f" on host {task.host}"
        if hold.resets_at is None:
            why = f"no reset time given: attempt {hold.attempt}"
            return f"usage limit of {task.agent}{on} until {until} ({why})"
        return f"usage limit of {task.agent}{on} until {until}"

    def next_change(self, now: datetime.datetime) -> datetime.datetime | None:
        ends = [hold.until for hold in self.holds.holds.values() if hold.active(now)]
        return min(ends, default=None)


class UsageLimits:
    """The runner's side of usage limits: the holds, their gate, and the finish path's change."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        clock: Clock,
        wake: Callable[[], None],
        policy: HoldPolicy | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.holds = Holds(state_dir, policy, jitter)
        self.gate = HoldGate(self.holds)
        self._clock = clock
        self._wake = wake

    async def load(self) -> None:
        """Read the holds kept before a restart (before the queue plans).

        An unreadable file is moved aside (``holds.json.bad``) and logged, and the server starts
        with no holds: a task that hits the limit again is held again.
        """
        try:
            await self.holds.load()
        except HoldsFileError as exc:
            aside = self.holds.path.with_name(f"{HOLDS_FILE}.bad")
            log.warning("holds: %s; moved aside to %s, starting with no holds", exc, aside)
            await trio.to_thread.run_sync(self.holds.path.replace, aside)
        self._wake()

    async def finish_change(
        self, task: Task | None, report: RunReport, asked_to_stop: bool
    ) -> Callable[[Task], Task] | None:
        """The transition of a run that hit a limit (and its hold, saved first); ``None`` for
        any other end (which lifts an expired hold of the agent)."""
        if task is None:
            return None
        now = self._clock.wall()
        if report.outcome != "limited" or asked_to_stop:
            if self.holds.ran(task.agent, now, task.host):
                log.info("holds: %s ran again after its hold: lifted", task.agent)
                await self._save()
            return None
        hold = self.holds.hit(task.agent, report.limit_resets_at, report.error, now, task.host)
        log.info(
            "task %s: usage limit of %s: held until %s (attempt %d)",
            task.id,
            task.agent,
            hold.until.isoformat(),
            hold.attempt,
        )
        await self._save()
        self._wake()
        return lambda current: limited_task(current, hold, report, now)

    async def _save(self) -> None:
        try:
            await self.holds.save()
        except OSError as exc:  # the hold still holds in memory; the next change retries
            log.warning("holds: cannot write %s: %s", self.holds.path, exc)
