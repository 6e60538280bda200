"""The cost ledger: every run's cost and tokens, as its agent reported them, kept for good.

One entry per run (key: task id and run number), written once to ``ledger.ndjson`` in the state
directory: an append-only file of JSON lines, each fsync'd before the run's end is recorded.
Days and months are UTC days and months of the run's end. :class:`LedgerBook` is the sans-IO
part (entries in, totals out); :class:`Ledger` adds the file: it reads it back at start-up (a
torn last line, left by a crash mid-append, is moved to ``quarantine/``, never a whole entry)
and appends in a worker thread.

Memory is bounded: the book keeps totals, not entries: per project per day (the last
``KEEP_DAYS`` days), per agent per month (the last ``KEEP_MONTHS`` months), and per task (tasks
that still exist at start-up, and those that ran since).
"""

from __future__ import annotations

import datetime
import logging
import os
import pathlib
from collections.abc import Iterable
from typing import Any

import attrs
import orjson
import trio

from host_daemon import AgentName

from ._convert import describe_error, make_strict_converter
from ._files import StateWriteError, copy_range, fsync_dir, writing
from ._model import RunReport, Task, utcnow

log = logging.getLogger("mcp_server.tasks")

LEDGER_FILE = "ledger.ndjson"
"""The ledger's file in the state directory."""
KEEP_DAYS = 62
"""Per-project daily totals kept in memory (the file keeps every entry)."""
KEEP_MONTHS = 24
"""Per-agent monthly totals kept in memory."""
MAX_RAW_USAGE_BYTES = 16 * 1024
"""An entry keeps the agent's own usage object up to this size (then a preview of it)."""

_CONVERTER = make_strict_converter()

# The agents' own names for the four token counts (Claude, Codex exec and app-server, Gemini).
_INPUT = ("input_tokens",)
_OUTPUT = ("output_tokens",)
_CACHE_READ = ("cache_read_input_tokens", "cached_input_tokens", "cached")
_CACHE_WRITE = ("cache_creation_input_tokens", "cache_write_input_tokens")


@attrs.frozen
class Tokens:
    """A run's tokens in one vocabulary (``None``: the agent did not say)."""

    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None


def _count(usage: dict[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def normalize_usage(usage: dict[str, Any] | None) -> Tokens:
    """The four token counts of an agent's usage object, whichever agent wrote it.

    Claude: ``input_tokens``, ``output_tokens``, ``cache_read_input_tokens``,
    ``cache_creation_input_tokens``; Codex: ``input_tokens``, ``cached_input_tokens``,
    ``cache_write_input_tokens``, ``output_tokens``; Gemini: ``input_tokens``, ``output_tokens``,
    ``cached``. Counts are taken as the agent gives them (Codex's input includes its cached part).
    """
    if not usage:
        return Tokens()
    return Tokens(
        input=_count(usage, _INPUT),
        output=_count(usage, _OUTPUT),
        cache_read=_count(usage, _CACHE_READ),
        cache_write=_count(usage, _CACHE_WRITE),
    )


@attrs.frozen
class LedgerEntry:
    """One run's cost and tokens: a line of the ledger."""

    task_id: str
    run: int
    project: str
    """The task's project dir as the client gave it ("" for the workspace itself)."""
    agent: AgentName
    at: datetime.datetime
    """When the run ended (its UTC day and month are the entry's)."""
    outcome: str
    cost_usd: float | None
    tokens: Tokens
    usage: dict[str, Any] | None = None
    """The agent's own usage object, as it reported it."""

    @property
    def day(self) -> datetime.date:
        return utc_day(self.at)

    @property
    def month(self) -> str:
        return month_of(self.day)


def utc_day(moment: datetime.datetime) -> datetime.date:
    """The UTC calendar day of ``moment``."""
    return moment.astimezone(datetime.UTC).date()


def month_of(day: datetime.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def next_utc_midnight(moment: datetime.datetime) -> datetime.datetime:
    """The start of the UTC day after ``moment``'s."""
    day = utc_day(moment) + datetime.timedelta(days=1)
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)


def entry_for(task: Task, report: RunReport) -> LedgerEntry:
    """The ledger entry of the task's latest run, which ended with ``report``."""
    usage = report.usage
    if usage is not None and len(orjson.dumps(usage)) > MAX_RAW_USAGE_BYTES:
        text = orjson.dumps(usage).decode()
        usage = {"cut": text[:MAX_RAW_USAGE_BYTES]}
    return LedgerEntry(
        task_id=task.id,
        run=task.runs,
        project=task.project_dir,
        agent=task.agent,
        at=report.finished_at,
        outcome=report.outcome,
        cost_usd=report.cost_usd,
        tokens=normalize_usage(report.usage),
        usage=usage,
    )


@attrs.define
class Totals:
    """Money and tokens summed over runs."""

    cost_usd: float = 0.0
    runs: int = 0
    runs_without_cost: int = 0
    """Runs whose agent reported no cost (Codex and Gemini report tokens only)."""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def add(self, entry: LedgerEntry) -> None:
        self.runs += 1
        if entry.cost_usd is None:
            self.runs_without_cost += 1
        else:
            self.cost_usd += entry.cost_usd
        self.input_tokens += entry.tokens.input or 0
        self.output_tokens += entry.tokens.output or 0
        self.cache_read_tokens += entry.tokens.cache_read or 0
        self.cache_write_tokens += entry.tokens.cache_write or 0

    def view(self) -> dict[str, Any]:
        """As clients see it (the cost rounded to a hundredth of a cent)."""
        return attrs.asdict(self) | {"cost_usd": round(self.cost_usd, 6)}


@attrs.define
class TaskTotals(Totals):
    last_run: int = 0
    """The highest run number recorded: a run is recorded once."""


@attrs.define
class LedgerBook:
    """The ledger's totals in memory (sans-IO): entries go in, totals come out."""

    by_project_day: dict[tuple[datetime.date, str], Totals] = attrs.field(factory=dict)
    by_agent_month: dict[tuple[str, str], Totals] = attrs.field(factory=dict)
    by_task: dict[str, TaskTotals] = attrs.field(factory=dict)

    def recorded(self, task_id: str, run: int) -> bool:
        """True when the task's run ``run`` is in the ledger already."""
        totals = self.by_task.get(task_id)
        return totals is not None and run <= totals.last_run

    def add(self, entry: LedgerEntry, *, keep_task: bool = True) -> None:
        """Count ``entry`` in its day's, month's and (if kept) its task's totals."""
        day = entry.day
        self.by_project_day.setdefault((day, entry.project), Totals()).add(entry)
        self.by_agent_month.setdefault((entry.month, entry.agent), Totals()).add(entry)
        if keep_task:
            task = self.by_task.setdefault(entry.task_id, TaskTotals())
            task.add(entry)
            task.last_run = max(task.last_run, entry.run)

    def prune(self, today: datetime.date) -> None:
        """Forget daily totals older than ``KEEP_DAYS`` and monthly ones beyond ``KEEP_MONTHS``."""
        oldest = today - datetime.timedelta(days=KEEP_DAYS)
        for day_key in [key for key in self.by_project_day if key[0] < oldest]:
            del self.by_project_day[day_key]
        months = sorted({month for month, _ in self.by_agent_month})
        for month in months[:-KEEP_MONTHS]:
            for month_key in [key for key in self.by_agent_month if key[0] == month]:
                del self.by_agent_month[month_key]

    def task(self, task_id: str) -> Totals:
        return self.by_task.get(task_id) or Totals()

    def project_day(self, project: str, day: datetime.date) -> Totals:
        return self.by_project_day.get((day, project)) or Totals()

    def server_day(self, day: datetime.date) -> Totals:
        total = Totals()
        for (when, _), totals in self.by_project_day.items():
            if when == day:
                _merge(total, totals)
        return total

    def projects_on(self, day: datetime.date) -> dict[str, Totals]:
        return {project: t for (when, project), t in self.by_project_day.items() if when == day}

    def agents_in(self, month: str) -> dict[str, Totals]:
        return {agent: t for (when, agent), t in self.by_agent_month.items() if when == month}

    def month(self, month: str) -> Totals:
        total = Totals()
        for totals in self.agents_in(month).values():
            _merge(total, totals)
        return total


def _merge(into: Totals, other: Totals) -> None:
    for field in attrs.fields(Totals):
        setattr(into, field.name, getattr(into, field.name) + getattr(other, field.name))


def encode_entry(entry: LedgerEntry) -> bytes:
    return orjson.dumps(_CONVERTER.unstructure(entry)) + b"\n"


def decode_entry(line: bytes) -> LedgerEntry:
    return _CONVERTER.structure(orjson.loads(line), LedgerEntry)


@attrs.frozen
class LedgerRead:
    """What reading the ledger file found: its entries, and where its good part ends."""

    entries: list[LedgerEntry]
    size: int
    quarantined: list[pathlib.Path]


def read_ledger(path: pathlib.Path, quarantine_dir: pathlib.Path) -> LedgerRead:
    """Read the ledger file (blocking): a torn last line is moved to quarantine and cut off; a
    line that does not parse is moved there too, and the file rewritten without it."""
    if not path.exists():
        return LedgerRead([], 0, [])
    entries: list[LedgerEntry] = []
    bad: list[bytes] = []
    good_end = 0
    torn = False
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                torn = True
                break
            try:
                entries.append(decode_entry(line))
            except Exception as exc:
                log.warning("ledger %s: unreadable line: %s", path, describe_error(exc))
                bad.append(line)
            good_end += len(line)
        total = handle.seek(0, os.SEEK_END)
    quarantined: list[pathlib.Path] = []
    if torn:
        quarantine_dir.mkdir(parents=True, exist_ok=True)
        target = quarantine_dir / f"{path.name}.torn.{_stamp()}"
        copy_range(path, good_end, total, target)
        with path.open("r+b") as handle:
            handle.truncate(good_end)
            os.fsync(handle.fileno())
        log.warning(
            "quarantined the torn last line of %s (%d bytes) to %s",
            path,
            total - good_end,
            target,
        )
        quarantined.append(target)
    if bad:
        quarantined.append(_set_aside(path, bad, entries, quarantine_dir))
        good_end = path.stat().st_size
    if quarantined:
        fsync_dir(quarantine_dir)
        fsync_dir(path.parent)
    return LedgerRead(entries, good_end, quarantined)


def _set_aside(
    path: pathlib.Path, bad: list[bytes], entries: list[LedgerEntry], quarantine_dir: pathlib.Path
) -> pathlib.Path:
    """Move unreadable lines to quarantine, and rewrite the file with the readable ones."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / f"{path.name}.unreadable.{_stamp()}"
    with target.open("wb") as out:
        out.write(b"".join(bad))
        out.flush()
        os.fsync(out.fileno())
    kept = path.with_name(path.name + ".tmp")
    with kept.open("wb") as out:
        out.write(b"".join(encode_entry(entry) for entry in entries))
        out.flush()
        os.fsync(out.fileno())
    os.replace(kept, path)
    log.warning("quarantined %d unreadable lines of %s to %s", len(bad), path, target)
    return target


def _stamp() -> str:
    return utcnow().strftime("%Y%m%dT%H%M%S%fZ")


def append_line(path: pathlib.Path, size: int, line: bytes) -> int:
    """Append ``line`` at ``size`` (the end of the last whole entry) and fsync; the new size.

    A failed write is cut back off, so the file always ends with a whole entry.
    """
    with writing(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
    return size + len(line)


class Ledger:
    """The durable ledger (``state/ledger.ndjson``) and its totals in memory."""

    def __init__(self, state_dir: pathlib.Path) -> None:
        self.path = state_dir / LEDGER_FILE
        self.quarantine_dir = state_dir / "quarantine"
        self.book = LedgerBook()
        self.quarantined: list[pathlib.Path] = []
        self.fault: StateWriteError | None = None
        """Why the last append failed, until one succeeds (its entries wait in memory)."""
        self._size = 0
        self._unwritten: list[LedgerEntry] = []
        self._lock = trio.Lock()

    @property
    def unsaved(self) -> int:
        """Entries counted in memory that the disk has refused so far (retried)."""
        return len(self._unwritten)

    async def load(self, tasks: Iterable[str], today: datetime.date) -> None:
        """Read the file back into totals (per-task totals for ``tasks``, those that exist)."""
        keep = set(tasks)
        async with self._lock:
            read = await trio.to_thread.run_sync(read_ledger, self.path, self.quarantine_dir)
            self.quarantined.extend(read.quarantined)
            self._size = read.size
            for entry in read.entries:
                self.book.add(entry, keep_task=entry.task_id in keep)
            self.book.prune(today)

    async def record(self, task: Task, report: RunReport) -> LedgerEntry | None:
        """Count the task's latest run (once: a run already recorded is skipped) and append it
        durably; ``None`` when it was recorded before, or the agent reported neither a cost nor
        tokens (a run that never started, one cut short). A disk that refuses the write leaves the
        entry counted in memory, written at the next record (``fault`` says why)."""
        if self.book.recorded(task.id, task.runs):
            return None
        if report.cost_usd is None and report.usage is None:
            return None
        entry = entry_for(task, report)
        self.book.add(entry)
        self.book.prune(entry.day)
        self._unwritten.append(entry)
        await self.flush()
        return entry

    async def flush(self) -> None:
        """Append the entries that wait for the disk (shielded: an entry is never half-written)."""
        with trio.CancelScope(shield=True):
            async with self._lock:
                while self._unwritten:
                    line = encode_entry(self._unwritten[0])
                    try:
                        self._size = await trio.to_thread.run_sync(
                            append_line, self.path, self._size, line
                        )
                    except StateWriteError as exc:
                        log.warning("ledger: could not append an entry: %s", exc)
                        self.fault = exc
                        return
                    self._unwritten.pop(0)
                self.fault = None
