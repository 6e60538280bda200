"""Budgets: what a task, a project per day and the server per day may spend (sans-IO).

A run that would start over a budget waits ``queued`` (:class:`BudgetGate`, a scheduler gate:
the reason is its ``queue_reason``; day budgets lift at the next UTC midnight, its
``next_change``). A run that crosses one ends its turn as usual and says so
(:func:`crossed`): a live agent is not kept for another turn, and the next turn queues.
Money is what the agents report (Claude: ``total_cost_usd``; Codex and Gemini report tokens
only, so only the task budget's ``--max-budget-usd`` and Claude's costs count).
"""

from __future__ import annotations

import datetime
from typing import Any

import attrs

from ._ledger import Ledger, LedgerBook, Totals, month_of, next_utc_midnight, utc_day
from ._model import RunReport, Task


@attrs.frozen
class Budgets:
    """The configured limits in US dollars (``None``: no limit)."""

    project_day_usd: float | None = None
    """Per project per UTC day (``BUDGET_PROJECT_DAY_USD``)."""
    server_day_usd: float | None = None
    """For the whole server per UTC day (``BUDGET_SERVER_DAY_USD``)."""


def _project_name(project: str) -> str:
    return project or "(the workspace)"


def _usd(value: float) -> str:
    return f"${value:.4f}".rstrip("0").rstrip(".") if value else "$0"


@attrs.frozen
class Breach:
    """A budget reached: which, its limit, what was spent, and when it lifts (``None``: never)."""

    budget: str  # "task", "project_day", "server_day"
    limit_usd: float
    spent_usd: float
    lifts_at: datetime.datetime | None
    text: str

    def view(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "limit_usd": self.limit_usd,
            "spent_usd": round(self.spent_usd, 6),
            "over_by_usd": round(max(0.0, self.spent_usd - self.limit_usd), 6),
            "lifts_at": None if self.lifts_at is None else self.lifts_at.isoformat(),
            "message": self.text,
        }


def breaches(
    book: LedgerBook, budgets: Budgets, task: Task, now: datetime.datetime
) -> list[Breach]:
    """The budgets the task's next run would start over (spent >= limit), task budget first."""
    found: list[Breach] = []
    day = utc_day(now)
    midnight = next_utc_midnight(now)
    limit = task.options.max_budget_usd
    if limit is not None:
        spent = book.task(task.id).cost_usd
        if spent >= limit:
            found.append(
                Breach(
                    "task",
                    limit,
                    spent,
                    None,
                    f"budget: task {task.id} spent {_usd(spent)} of its max_budget_usd "
                    f"{_usd(limit)} (end_task it, or create a new task)",
                )
            )
    if budgets.project_day_usd is not None:
        spent = book.project_day(task.project_dir, day).cost_usd
        if spent >= budgets.project_day_usd:
            found.append(
                Breach(
                    "project_day",
                    budgets.project_day_usd,
                    spent,
                    midnight,
                    f"budget: project {_project_name(task.project_dir)} spent {_usd(spent)} "
                    f"today (UTC {day}) of its {_usd(budgets.project_day_usd)} a day; "
                    f"starts after {midnight.isoformat()}",
                )
            )
    if budgets.server_day_usd is not None:
        spent = book.server_day(day).cost_usd
        if spent >= budgets.server_day_usd:
            found.append(
                Breach(
                    "server_day",
                    budgets.server_day_usd,
                    spent,
                    midnight,
                    f"budget: the server spent {_usd(spent)} today (UTC {day}) of its "
                    f"{_usd(budgets.server_day_usd)} a day; starts after {midnight.isoformat()}",
                )
            )
    return found


def crossed(
    book: LedgerBook, budgets: Budgets, task: Task, cost_usd: float | None, now: datetime.datetime
) -> list[Breach]:
    """The budgets a run that cost ``cost_usd`` (already in the book) took from under their
    limit to at or over it."""
    if not cost_usd:
        return []
    return [
        breach
        for breach in breaches(book, budgets, task, now)
        if breach.spent_usd - cost_usd < breach.limit_usd
    ]


def crossing_text(found: list[Breach]) -> str:
    """``budget crossed: the project demo's $1 a day by $0.25 …``, for the turn's events."""
    parts = []
    for breach in found:
        over = _usd(breach.spent_usd - breach.limit_usd)
        what = {
            "task": "the task's max_budget_usd",
            "project_day": "the project's daily budget",
            "server_day": "the server's daily budget",
        }[breach.budget]
        parts.append(
            f"{what} of {_usd(breach.limit_usd)} by {over} (spent {_usd(breach.spent_usd)})"
        )
    return "budget crossed: " + "; ".join(parts) + "; the next turn waits queued"


@attrs.frozen
class BudgetGate:
    """The scheduler's gate for budgets: a run does not start over one (see :func:`breaches`)."""

    ledger: Ledger
    budgets: Budgets

    def blocks(self, task: Task, now: datetime.datetime) -> str | None:
        found = breaches(self.ledger.book, self.budgets, task, now)
        return found[0].text if found else None

    def next_change(self, now: datetime.datetime) -> datetime.datetime | None:
        """The next UTC midnight while a day budget is reached today (the day's spending then
        starts from nothing); ``None`` otherwise."""
        day = utc_day(now)
        book = self.ledger.book
        server = self.budgets.server_day_usd
        project = self.budgets.project_day_usd
        if server is not None and book.server_day(day).cost_usd >= server:
            return next_utc_midnight(now)
        if project is not None and any(
            totals.cost_usd >= project for totals in book.projects_on(day).values()
        ):
            return next_utc_midnight(now)
        return None


def _totals_list(key: str, totals: dict[str, Totals]) -> list[dict[str, Any]]:
    return [{key: name} | totals[name].view() for name in sorted(totals)]


def usage_view(ledger: Ledger, now: datetime.datetime) -> dict[str, Any]:
    """The totals of ``agent://usage`` and of ``report``: today per project, this month per
    agent, and the server's day and month."""
    book = ledger.book
    day = utc_day(now)
    month = month_of(day)
    return {
        "day": day.isoformat(),
        "month": month,
        "timezone": "UTC",
        "today": book.server_day(day).view(),
        "this_month": book.month(month).view(),
        "projects_today": _totals_list("project", book.projects_on(day)),
        "agents_this_month": _totals_list("agent", book.agents_in(month)),
        "ledger": {"path": str(ledger.path), "unsaved_entries": ledger.unsaved},
    }


def usage_by_day_view(ledger: Ledger, now: datetime.datetime) -> list[dict[str, Any]]:
    """Per project and day, this month's days, newest first."""
    month = month_of(utc_day(now))
    rows = [
        {"day": day.isoformat(), "project": project} | totals.view()
        for (day, project), totals in ledger.book.by_project_day.items()
        if month_of(day) == month
    ]
    return sorted(rows, key=lambda row: (row["day"], row["project"]), reverse=True)


def budgets_view(ledger: Ledger, budgets: Budgets, now: datetime.datetime) -> dict[str, Any]:
    """``check_status``'s budgets: the limits, what was spent today, which are reached."""
    book = ledger.book
    day = utc_day(now)
    server_spent = book.server_day(day).cost_usd
    projects = book.projects_on(day)
    limit = budgets.project_day_usd
    return {
        "day": day.isoformat(),
        "timezone": "UTC",
        "project_day_usd": limit,
        "server_day_usd": budgets.server_day_usd,
        "server_spent_today_usd": round(server_spent, 6),
        "server_day_reached": budgets.server_day_usd is not None
        and server_spent >= budgets.server_day_usd,
        "projects_reached_today": sorted(
            name for name, t in projects.items() if limit is not None and t.cost_usd >= limit
        ),
        "resets_at": next_utc_midnight(now).isoformat(),
        "task_budget": "max_budget_usd of create_task: per run (the agent's flag) and across "
        "the task's turns",
    }


def task_usage_view(
    ledger: Ledger, budgets: Budgets, task: Task, now: datetime.datetime
) -> dict[str, Any]:
    """A task's own totals, and the budget that would keep its next turn queued, if any."""
    found = breaches(ledger.book, budgets, task, now)
    return ledger.book.task(task.id).view() | {
        "max_budget_usd": task.options.max_budget_usd,
        "budget_reached": found[0].view() if found else None,
    }


@attrs.frozen
class Spending:
    """The runner's ledger and budgets: what it records after each run, and its gate."""

    ledger: Ledger
    budgets: Budgets = attrs.field(factory=Budgets)

    @property
    def gate(self) -> BudgetGate:
        return BudgetGate(self.ledger, self.budgets)

    async def run_finished(self, task: Task, report: RunReport) -> list[Breach]:
        """Record the task's latest run in the ledger (once); the budgets it crossed."""
        entry = await self.ledger.record(task, report)
        if entry is None:
            return []
        return crossed(self.ledger.book, self.budgets, task, entry.cost_usd, report.finished_at)

    def run_budget(self, task: Task) -> float | None:
        """What the task's next run may spend (the agent's ``--max-budget-usd``): its
        ``max_budget_usd`` less what its runs spent (``None``: no task budget)."""
        limit = task.options.max_budget_usd
        if limit is None:
            return None
        return max(0.0, limit - self.ledger.book.task(task.id).cost_usd)
