"""The coding tasks as MCP resources: the status, the task list, and each task's record, result
and log pages (``task://{id}/logs`` is the first page, ``task://{id}/logs/{after}`` the events
after seq ``after``; each page names the next one); for a worktree task its diff (paged alike:
``task://{id}/diff``, then ``task://{id}/diff/{offset}``), diffstat and commits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import attrs
import orjson
import trio

from host_daemon import CommitsDone, DaemonError, DiffDone
from mcp_server._core import (
    JSON,
    InternalError,
    InvalidParams,
    Registry,
    Resource,
    ResourceContents,
    ResourceNotFound,
    ResourceTemplate,
)

from ._budgets import budgets_view, usage_by_day_view, usage_view
from ._errors import WorktreeFailed
from ._hosts import Host
from ._isolation import DIFF_PAGE_CHARS, commit_view, diff_page, diffstat_view
from ._listing import MAX_PAGE, BadQuery, complete, page, page_links, parse_query
from ._model import InvalidTransition, Task
from ._notices import TASK_TEMPLATE
from ._review import TaskReview
from ._runner import TaskRunner
from ._views import (
    LIST_TASKS,
    LOG_PAGE_EVENTS,
    MAX_TEXT_CHARS,
    event_view,
    json_contents,
    report_view,
    task_view,
)


@attrs.frozen
class TaskResources:
    """The readers of the coding-task resources, bound to the runner they read."""

    runner: TaskRunner
    features: Mapping[str, bool] = attrs.field(factory=dict)
    sections: Mapping[str, Callable[[], JSON]] = attrs.field(factory=dict)
    """More keys of the status view, each from its owner (``notifications``)."""

    def register(self, registry: Registry) -> None:
        """Declare the fixed resources and the templates on ``registry``."""
        registry.add_resource(
            Resource(
                uri="agent://status",
                name="agent-status",
                description="The host daemons' probes (daemon: the first host's; hosts: each "
                "host's health, agents and load) and task counts.",
                mime_type="application/json",
                read=self._read_status,
            )
        )
        registry.add_resource(
            Resource(
                uri="agent://tasks",
                name="agent-tasks",
                description=f"The tasks (the latest {LIST_TASKS}), newest last; "
                "agent://tasks?{query} filters and pages them.",
                mime_type="application/json",
                read=self._read_tasks,
            )
        )
        registry.add_template(
            ResourceTemplate(
                uri_template="agent://tasks?{query}",
                name="agent-tasks-query",
                description="A page of the tasks, newest last: query parameters status "
                "(comma-separated), project, cwd, host, created_after, updated_after (ISO "
                f"times), q (words), limit (at most {MAX_PAGE}), before/after (the cursors "
                "'older' and 'newer' name); values percent-encoded ('/' as %2F).",
                mime_type="application/json",
                read=self._read_tasks_query,
            )
        )
        registry.add_resource(
            Resource(
                uri="agent://usage",
                name="agent-usage",
                description="Money and tokens the agents reported (the cost ledger): today per "
                "project, this month per agent and per project and day (UTC days), and the "
                "budgets.",
                mime_type="application/json",
                read=self._read_usage,
            )
        )
        templates = [
            (
                TASK_TEMPLATE,
                "task",
                "A task: status, turns, last report.",
                self._read_task_template,
            ),
            (
                "task://{id}/logs",
                "task-logs",
                f"A task's events from the start, at most {LOG_PAGE_EVENTS} per page; "
                "'next' names the following page.",
                self._read_logs_first,
            ),
            (
                "task://{id}/logs/{after}",
                "task-logs-after",
                "A task's events with seq > after (a page; 'next' names the following one).",
                self._read_logs,
            ),
            ("task://{id}/result", "task-result", "A task's last run report.", self._read_result),
            (
                "task://{id}/diff",
                "task-diff",
                "A worktree task's unified diff against its base, from the start, at most "
                f"{DIFF_PAGE_CHARS} characters per page; 'next' names the following page.",
                self._read_diff_first,
            ),
            (
                "task://{id}/diff/{offset}",
                "task-diff-after",
                "A worktree task's diff from character offset (a page; 'next' names the next).",
                self._read_diff,
            ),
            (
                "task://{id}/diffstat",
                "task-diffstat",
                "A worktree task's changed files with lines added and removed, and totals.",
                self._read_diffstat,
            ),
            (
                "task://{id}/commits",
                "task-commits",
                "A worktree task's commits since its base, oldest first.",
                self._read_commits,
            ),
        ]
        for uri_template, name, description, read in templates:
            registry.add_template(
                ResourceTemplate(
                    uri_template=uri_template,
                    name=name,
                    description=description,
                    mime_type="application/json",
                    read=read,
                    complete=self._complete_id,
                )
            )

    async def _complete_id(
        self, argument: str, partial: str, _context: Mapping[str, str]
    ) -> list[str]:
        if argument != "id":
            return []
        return await complete(self.runner.store, partial)

    async def status_view(self) -> JSON:
        """The daemon's probe (or why it failed), the state disk's condition, the task counts."""
        store = self.runner.store
        await store.retry(probe=True)
        state: JSON = {
            "path": str(store.root),
            "writable": store.fault is None,
            "error": None if store.fault is None else str(store.fault),
            "unsaved_tasks": store.unsaved(),
        }
        views: dict[str, JSON] = {}
        async with trio.open_nursery() as nursery:
            for host in self.runner.hosts:
                nursery.start_soon(self._probe_view, host, views)
        first = self.runner.hosts.hosts[0]
        tasks = self.runner.active_tasks()
        total = await self.runner.store.index.call(lambda db: db.count())
        spending, now = self.runner.spending, self.runner.clock.wall()
        return {
            "daemon": views[first.name],
            "hosts": [self._host_view(host, views[host.name], tasks) for host in self.runner.hosts],
            "state": state,
            "features": dict(self.features),
            "active_tasks": sum(task.running for task in tasks),
            "input_required_tasks": sum(task.status == "input_required" for task in tasks),
            "total_tasks": total,
            "running_processes": self.runner.running(),
            "budgets": budgets_view(spending.ledger, spending.budgets, now),
            "usage_today": usage_view(spending.ledger, now)["today"],
        } | {name: section() for name, section in self.sections.items()}

    async def _probe_view(self, host: Host, views: dict[str, JSON]) -> None:
        """The host daemon's probe (or why it failed) into ``views[host.name]``."""
        daemon: JSON
        try:
            info = await self.runner.probe(host=host.name)
        except DaemonError as exc:
            daemon = {"reachable": False, "error": f"{exc.code}: {exc.message}"}
        except OSError as exc:
            daemon = {"reachable": False, "error": f"connection failed: {exc}"}
        else:
            daemon = {
                "reachable": True,
                "version": info.daemon_version,
                "protocol_version": info.protocol_version,
                "agents": [attrs.asdict(agent) for agent in info.agents],
                "roots": info.roots,
                "active_runs": info.active_runs,
                "max_concurrent_runs": info.max_concurrent_runs,
                "git": info.git,
                "live_sessions": info.live_sessions,
                "max_live_sessions": info.max_live_sessions,
                "policy": {"allow_rules": info.allow_rules, "deny_rules": info.deny_rules},
            }
        daemon["host"] = host.daemon.host
        daemon["port"] = host.daemon.port
        views[host.name] = daemon

    def _host_view(self, host: Host, daemon: JSON, tasks: list[Task]) -> JSON:
        """One host in ``check_status``: where, healthy or why not, its agents and its load."""
        agents = daemon.get("agents") or []
        return {
            "name": host.name,
            "address": f"{host.daemon.host}:{host.daemon.port}",
            "roots": [str(root.client_root) for root in host.roots],
            "healthy": daemon["reachable"],
            "error": daemon.get("error"),
            "agents": [a["name"] for a in agents if a.get("path") and not a.get("error")],
            "active_runs": daemon.get("active_runs"),
            "max_concurrent_runs": daemon.get("max_concurrent_runs"),
            "running": self.runner.running(host.name),
            "queued": sum(t.waiting_to_start and t.host == host.name for t in tasks),
        }

    async def _read_task_template(
        self, uri: str, variables: Mapping[str, str]
    ) -> list[ResourceContents]:
        task = await self._task_or_not_found(uri, variables["id"])
        return json_contents(uri, task_view(task, full=True))

    async def _read_result(self, uri: str, variables: Mapping[str, str]) -> list[ResourceContents]:
        task = await self._task_or_not_found(uri, variables["id"])
        return json_contents(
            uri,
            {"task_id": task.id, "status": task.status, "report": report_view(task, task.report)},
        )

    async def _read_logs_first(
        self, uri: str, variables: Mapping[str, str]
    ) -> list[ResourceContents]:
        return await self._read_logs(uri, {"id": variables["id"], "after": "0"})

    async def _read_logs(self, uri: str, variables: Mapping[str, str]) -> list[ResourceContents]:
        task = await self._task_or_not_found(uri, variables["id"])
        after_text = variables["after"]
        # str.isdigit() alone admits '²' (int() then fails) and '٣' (int() reads 3).
        if not (after_text.isascii() and after_text.isdigit()) or len(after_text) > 12:
            raise InvalidParams(f"expected a sequence number, got {after_text!r} @ $.params.uri")
        after = int(after_text)
        events = await self.runner.events(task.id, after, LOG_PAGE_EVENTS)
        page: list[JSON] = []
        size = 0
        for event in events:
            item = event_view(event, task.id)
            size += len(orjson.dumps(item))
            if page and size > MAX_TEXT_CHARS:
                break
            page.append(item)
        last = page[-1]["seq"] if page else after
        latest = self.runner.last_seq(task.id)
        return json_contents(
            uri,
            {
                "task_id": task.id,
                "status": task.status,
                "after": after,
                "events": page,
                "last_seq": latest,
                "next": f"task://{task.id}/logs/{last}" if last < latest else None,
                "follow": f"task://{task.id}/logs/{last}",
            },
        )

    async def _read_diff_first(
        self, uri: str, variables: Mapping[str, str]
    ) -> list[ResourceContents]:
        return await self._read_diff(uri, {"id": variables["id"], "offset": "0"})

    async def _read_diff(self, uri: str, variables: Mapping[str, str]) -> list[ResourceContents]:
        task = await self._task_or_not_found(uri, variables["id"])
        offset_text = variables["offset"]
        if not (offset_text.isascii() and offset_text.isdigit()) or len(offset_text) > 12:
            raise InvalidParams(f"expected a character offset, got {offset_text!r} @ $.params.uri")
        done = await self._diff(uri, task)
        offset = int(offset_text)
        if offset > len(done.diff):
            raise InvalidParams(
                f"expected an offset <= {len(done.diff)} (the diff's length), got {offset} "
                "@ $.params.uri"
            )
        return json_contents(uri, diff_page(task.id, done, offset))

    async def _read_diffstat(
        self, uri: str, variables: Mapping[str, str]
    ) -> list[ResourceContents]:
        task = await self._task_or_not_found(uri, variables["id"])
        done = await self._diff(uri, task)
        return json_contents(uri, diffstat_view(task.id, done))

    async def _read_commits(self, uri: str, variables: Mapping[str, str]) -> list[ResourceContents]:
        task = await self._task_or_not_found(uri, variables["id"])
        done = await self._commits(uri, task)
        commits = [commit_view(commit) for commit in done.commits]
        return json_contents(uri, {"task_id": task.id, "commits": commits})

    async def _diff(self, uri: str, task: Task) -> DiffDone:
        with _worktree_errors(uri):
            return await TaskReview(self.runner).diff(task.id)

    async def _commits(self, uri: str, task: Task) -> CommitsDone:
        with _worktree_errors(uri):
            return await TaskReview(self.runner).commits(task.id)

    async def _task_or_not_found(self, uri: str, task_id: str) -> Task:
        task = await self.runner.store.fetch(task_id)
        if task is None:
            raise ResourceNotFound(uri)
        return task

    async def _read_usage(self, uri: str) -> list[ResourceContents]:
        spending, now = self.runner.spending, self.runner.clock.wall()
        view = usage_view(spending.ledger, now)
        view["projects_by_day_this_month"] = usage_by_day_view(spending.ledger, now)
        view["budgets"] = budgets_view(spending.ledger, spending.budgets, now)
        return json_contents(uri, view)

    async def _read_status(self, uri: str) -> list[ResourceContents]:
        return json_contents(uri, await self.status_view())

    async def _read_tasks(self, uri: str) -> list[ResourceContents]:
        return await self._read_tasks_query(uri, {"query": ""})

    async def _read_tasks_query(
        self, uri: str, variables: Mapping[str, str]
    ) -> list[ResourceContents]:
        """A page of tasks from the index (the newest ``LIST_TASKS`` without a cursor)."""
        text = variables["query"]
        try:
            query = parse_query(text, uri, LIST_TASKS)
        except BadQuery as exc:
            raise InvalidParams(str(exc)) from None
        listing, tasks = await page(self.runner.store, query)
        total = await self.runner.store.index.call(lambda db: db.count())
        views = [task_view(task) for task in tasks]
        return json_contents(
            uri,
            {
                "total_tasks": total,
                "matching_tasks": listing.matching,
                "tasks_omitted": listing.matching - len(views),
                "tasks": views,
            }
            | page_links("agent://tasks", text, listing),
        )


@contextlib.contextmanager
def _worktree_errors(uri: str) -> Iterator[None]:
    """A task without an open worktree (none, merged, discarded) or a daemon that cannot answer:
    a resource error that says which."""
    try:
        yield
    except InvalidTransition as exc:
        raise InvalidParams(f"{exc} @ {uri}") from None
    except WorktreeFailed as exc:
        raise InternalError(f"{exc} @ {uri}") from None
