"""The MCP tools of coding tasks: the original's tools plus ``wait_task``, and their declaration.

Every tool takes the attrs class of its arguments (:mod:`._arguments`, which also makes its
input schema), answers in the original's shape (:mod:`._views`) and sets ``isError`` when it
failed. ``create_task`` and ``update_task`` may run as MCP tasks: they then return when the
run ends, with its report, sending progress meanwhile and keeping the MCP task's status message
current (:mod:`._status_line`). ``create_task`` run as an MCP task gives the coding task the MCP
task's id, so a client that shows only the MCP task shows the id the other tools take.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio

from host_daemon import rule_errors
from mcp_server._core import JSON, Registry, RequestContext, Tool, ToolResult

from ._annotations import ANNOTATIONS
from ._arguments import (
    DEFAULT_WAIT_S,
    MAX_WAIT_S,
    OUTPUT_SCHEMA,
    ApproveArgs,
    CreateArgs,
    IdArgs,
    MergeArgs,
    NoArgs,
    OptionalIdArgs,
    PromptIdArgs,
    RunOptionsArgs,
    ToolFailure,
    UpdateArgs,
    WaitArgs,
    input_schema,
    parse_args,
)
from ._asking import (
    APPROVAL_FORM,
    approval_message,
    ask_while_pending,
    can_elicit,
    input_key,
    read_answer,
)
from ._budgets import task_usage_view, usage_view
from ._errors import NotPending, RunNotStarted, TaskBusy, TaskError, WorktreeFailed
from ._hosts import DEFAULT_HOST
from ._index import TaskQuery
from ._isolation import REPORT_FILES, diffstat_view
from ._listing import page, stats
from ._model import PendingApproval, Task, TaskOptions, new_task_id
from ._notices import TaskNotices
from ._progress import progress_while
from ._prompts import PROMPTS, prompt_view
from ._resources import TaskResources
from ._review import TaskReview
from ._runner import TaskRunner
from ._status_line import StatusReporter
from ._views import LIST_TASKS, failure, queue_view, statistics_view, success, task_view

log = logging.getLogger("mcp_server.tasks")

PROGRESS_INTERVAL_S = 1.0


@attrs.frozen
class TaskTools:
    """The handlers, bound to the runner they command and the resources they share views with."""

    runner: TaskRunner
    resources: TaskResources
    review: TaskReview
    check_notify_url: Callable[[str], object] | None = None
    """Refuses a ``notify_url`` the owner's allowlist does not admit (``None``: refuses all)."""

    def handler(self, spec: ToolSpec) -> Callable[[RequestContext, JSON], Awaitable[ToolResult]]:
        """The tool's handler: parse its arguments, run it, turn known failures into answers."""

        async def handle(ctx: RequestContext, arguments: JSON) -> ToolResult:
            try:
                args = parse_args(spec.arguments, arguments)
                task_id = getattr(args, "id", None)
                if isinstance(task_id, str):
                    await self.runner.store.fetch(task_id)  # a task at rest: read in a thread
                return await spec.run(self, ctx, args)
            except ToolFailure as exc:
                return failure(exc.code, exc.message, exc.result)
            except RunNotStarted as exc:
                task = self.runner.get(exc.task_id)
                return failure(exc.code, str(exc), self._view(task, full=True))
            except TaskError as exc:  # not found, busy, refused path or transition, …
                return failure(exc.code, str(exc))

        return handle

    async def create_task(self, ctx: RequestContext, args: CreateArgs) -> ToolResult:
        errors = rule_errors(args.allow_rules or [], "$.arguments.allow_rules")
        errors += rule_errors(args.deny_rules or [], "$.arguments.deny_rules")
        if errors:
            raise ToolFailure("invalid_arguments", "; ".join(errors))
        if args.notify_url is not None:
            self._check_notify_url(args.notify_url)
        task = await self.runner.create(
            title=args.title,
            instructions=args.instructions,
            agent=args.agent,
            project_dir=args.project_dir,
            options=attrs.evolve(_options(args), notify_url=args.notify_url),
            isolation=args.isolation,
            base_ref=args.base_ref,
            include_uncommitted=args.include_uncommitted,
            task_id=ctx.task_id,  # as an MCP task: its id, minted by new_task_id
            priority=args.priority,
            host=args.host,
        )
        return await self._started(ctx, task, f"created ({task.isolation_text()})")

    def _check_notify_url(self, url: str) -> None:
        if self.check_notify_url is None:
            raise ToolFailure(
                "invalid_arguments",
                "notify_url: this server sends no notifications to tasks' URLs (the allowlist "
                "NOTIFY_ALLOWED_HOSTS or --notify-allowed-host is empty) @ $.arguments.notify_url",
            )
        self.check_notify_url(url)

    async def update_task(self, ctx: RequestContext, args: UpdateArgs) -> ToolResult:
        self.runner.get(args.id)
        if self.runner.in_flight(args.id) is not None:
            steered = await self.runner.live.steer(args.id, args.instructions)
            if steered is None:
                raise TaskBusy(args.id)
            task = self.runner.get(args.id)
            if not steered.steered:
                return failure(
                    "busy",
                    f"task {task.id}: the instructions did not reach the running turn "
                    f"({steered.message}); wait for it (wait_task) and retry",
                    self._view(task),
                )
            return success(
                f"task {task.id}: the instructions went into the running turn (steered)",
                self._view(task) | {"steered": True},
            )
        task = await self.runner.follow_up(args.id, args.instructions)
        return await self._started(ctx, task, "updated")

    async def _started(self, ctx: RequestContext, task: Task, verb: str) -> ToolResult:
        if not ctx.as_task and task.status == "queued":
            return success(
                f"task {task.id} {verb} and queued ({_place_text(self.runner, task)}); it "
                f"starts by itself (follow it with wait_task or task://{task.id})",
                self._view(task),
            )
        if not ctx.as_task:
            return success(
                f"task {task.id} {verb}; the agent is working "
                f"(follow it with wait_task or task://{task.id})",
                self._view(task),
            )
        task = await self._follow(ctx, task.id)
        view = self._view(task, full=True)
        if task.status == "waiting":
            return success(
                f"task {task.id}: the run succeeded; the task waits for follow-ups", view
            )
        if task.running:  # the server stopped following it: it shuts down
            why = "the server shut down; the run goes on and the next server re-attaches to it"
            return failure("shutting_down", f"task {task.id}: {why}", view)
        return failure("run_" + task.status, f"task {task.id}: the run ended {task.status}", view)

    async def _follow(self, ctx: RequestContext, task_id: str) -> Task:
        """Wait for the run's end, sending progress, keeping the MCP task's status message
        current and asking about permission requests (when the client can elicit); a cancelled
        MCP task stops the run."""
        declined: set[str] = set()
        status = StatusReporter(self.runner, task_id)
        try:
            while self.runner.run_pending(task_id):
                await status.update(ctx)
                seq = self.runner.last_seq(task_id)
                await ctx.progress(float(seq), None, f"{seq} events")
                await self._supervise(ctx, task_id, PROGRESS_INTERVAL_S, declined)
            await status.update(ctx)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self.runner.stop(task_id)
            raise
        return self.runner.get(task_id)

    async def end_task(self, ctx: RequestContext, args: IdArgs) -> ToolResult:
        task = await self.runner.end(args.id)
        return success(f"task {task.id} ended", self._view(task, full=True))

    async def merge_task(self, ctx: RequestContext, args: MergeArgs) -> ToolResult:
        task, done = await self.review.merge(args.id, args.strategy, args.message)
        where = "the checkout was updated" if done.checkout_updated else "only the branch moved"
        return success(
            f"task {task.id} merged into {done.base_branch} at {done.commit[:12]} "
            f"({done.strategy}, {len(done.files)} files; {where}); the task is {task.status}",
            self._view(task, full=True)
            | {"merge": attrs.asdict(done) | {"files": done.files[:200]}},
        )

    async def discard_task(self, ctx: RequestContext, args: IdArgs) -> ToolResult:
        task, done = await self.review.discard(args.id)
        return success(
            f"task {task.id}: worktree {'removed' if done.removed_worktree else 'was gone'}, "
            f"branch {'deleted' if done.deleted_branch else 'was gone'}; the task is "
            f"{task.status}",
            self._view(task, full=True) | {"discard": attrs.asdict(done)},
        )

    async def report(self, ctx: RequestContext, args: OptionalIdArgs) -> ToolResult:
        if args.id is not None:
            task = self.runner.get(args.id)
            view = self._view(task, full=True)
            spending = self.runner.spending  # seam (S3): the task's totals from the ledger
            view["usage"] = task_usage_view(
                spending.ledger, spending.budgets, task, self.runner.clock.wall()
            )
            if task.has_open_worktree:
                try:
                    done = await self.review.diff(task.id)
                except WorktreeFailed as exc:
                    view["diffstat"] = {"error": str(exc)}
                else:
                    stat = diffstat_view(task.id, done, limit=REPORT_FILES)
                    view["diffstat"] = stat | {"full": f"task://{task.id}/diffstat"}
            return success(f"task {task.id} is {task.status}", view)
        counts = await stats(self.runner.store)
        _, latest = await page(self.runner.store, TaskQuery(limit=LIST_TASKS))
        view = statistics_view(counts, latest, self.runner.queue.place_map())
        view["queue"] = self._queue_view()
        view["usage"] = usage_view(self.runner.spending.ledger, self.runner.clock.wall())
        return success(f"{counts.total} tasks", view)

    def _queue_view(self) -> JSON:
        self.runner.queue.plan_now()  # the places as of now (it starts what may start)
        return queue_view(self.runner.store.tasks.resident, self.runner.queue.places())

    def _view(self, task: Task, *, full: bool = False) -> JSON:
        """The task's view with its place in the queue."""
        return task_view(task, full=full, place=self.runner.queue.place(task.id))

    async def check_status(self, ctx: RequestContext, args: NoArgs) -> ToolResult:
        status = await self.resources.status_view()
        status["queue"] = self._queue_view()
        runner = self.runner
        status["holds"] = runner.limits.holds.view(
            runner.store.tasks.resident.values(), runner.clock.wall()
        )
        if not status["state"]["writable"]:
            return failure("state_unwritable", status["state"]["error"], status)
        hosts = status["hosts"]
        down = [h for h in hosts if not h["healthy"]]
        if len(down) == len(hosts):
            return failure("daemon_unavailable", _down_text(down), status)
        if len(hosts) > 1:
            up = ", ".join(h["name"] for h in hosts if h["healthy"])
            answer = f"hosts {up} answer" + (f"; {_down_text(down)}" if down else "")
            return success(answer, status)
        git = status["daemon"].get("git")
        return success(
            "the host daemon answers; "
            + (
                f"{git}: tasks get worktrees" if git else "git missing: tasks run without worktrees"
            ),
            status,
        )

    async def clean_state(self, ctx: RequestContext, args: NoArgs) -> ToolResult:
        deleted = await self.runner.clean()
        return success(f"deleted {deleted} tasks (runs stopped first)", {"deleted": deleted})

    async def wait_task(self, ctx: RequestContext, args: WaitArgs) -> ToolResult:
        self.runner.get(args.id)
        log.info("wait_task: waiting for task %s (up to %g s)", args.id, args.timeout_s)
        async with progress_while(ctx, self.runner, args.id):
            task = await self._supervise(ctx, args.id, args.timeout_s, set(), stop_when_asked=True)
        if task.pending:
            asked = ", ".join(f"{p.request_id} ({p.tool_name})" for p in task.pending)
            message = (
                f"task {task.id} is input_required: the agent waits for a decision on {asked}; "
                "answer with approve, then call wait_task again"
            )
        elif task.status == "in_progress":
            message = f"task {task.id} is still running; call wait_task again"
        elif task.status == "queued":
            message = f"task {task.id} is still queued ({_place_text(self.runner, task)})"
        else:
            message = f"task {task.id} is {task.status}"
        return success(message, self._view(task, full=not task.running))

    async def _supervise(
        self,
        ctx: RequestContext,
        task_id: str,
        timeout_s: float,
        declined: set[str],
        *,
        stop_when_asked: bool = False,
    ) -> Task:
        """Wait until the run ends or ``timeout_s`` passed, asking the client's user about each
        pending request meanwhile (when it can elicit; an answer is not cut short by the
        timeout). A declined form leaves its request pending (in ``declined``, not asked again).
        ``stop_when_asked``: return as soon as a request is pending that nobody is asked about.
        """
        deadline = trio.current_time() + timeout_s
        eliciting = can_elicit(ctx)
        while self.runner.run_pending(task_id):
            changed = self.runner.changed(task_id)  # before reading: no missed wake-up
            task = self.runner.get(task_id)
            unasked = [
                p
                for p in task.pending
                if p.request_id not in declined
                and not self.runner.live.deciding(task_id, p.request_id)
            ]
            if eliciting and unasked:
                if not await self._elicit(ctx, task, unasked[0]):
                    declined.add(unasked[0].request_id)
                continue
            if stop_when_asked and task.pending:
                break
            if trio.current_time() >= deadline:
                break
            with trio.move_on_at(deadline):
                await changed.wait()
        return self.runner.get(task_id)

    async def _elicit(self, ctx: RequestContext, task: Task, request: PendingApproval) -> bool:
        """Ask about ``request`` and apply the answer; False when the user declined."""

        def still_pending() -> bool:
            current = self.runner.store.tasks.get(task.id)
            return current is not None and current.pending_request(request.request_id) is not None

        result = await ask_while_pending(
            still_pending,
            lambda: self.runner.changed(task.id),
            lambda: ctx.elicit(
                approval_message(task, request), APPROVAL_FORM, key=input_key(request)
            ),
        )
        if result is None:
            return True  # decided elsewhere meanwhile
        answer = read_answer(result)
        if answer is None:
            return False
        # NotPending: decided elsewhere, or the run ended, while the user answered.
        with contextlib.suppress(NotPending):
            await self.runner.live.approve(
                task.id,
                request.request_id,
                answer.behavior,
                message=answer.message,
                remember="task" if answer.remember else "once",
                decider="elicitation",
            )
        return True

    async def approve(self, ctx: RequestContext, args: ApproveArgs) -> ToolResult:
        task = await self.runner.live.approve(
            args.id, args.request_id, args.decision, message=args.message, remember=args.remember
        )
        done = task.pending_request(args.request_id) is None
        return success(
            f"task {task.id}: request {args.request_id} {args.decision}ed"
            + ("" if done else " (sent; the daemon has not confirmed it yet)")
            + f"; the task is {task.status}",
            self._view(task),
        )

    async def interrupt_task(self, ctx: RequestContext, args: IdArgs) -> ToolResult:
        task = await self.runner.live.interrupt(args.id)
        return success(
            f"task {task.id}: the turn was interrupted; the task is {task.status} "
            "(update_task goes on in the same conversation)",
            self._view(task, full=True),
        )

    async def get_prompt(self, ctx: RequestContext, args: PromptIdArgs) -> ToolResult:
        if args.prompt_id is None:
            return success(f"{len(PROMPTS)} prompts", [prompt_view(p) for p in PROMPTS.values()])
        spec = PROMPTS.get(args.prompt_id)
        if spec is None:
            raise ToolFailure(
                "prompt_not_found",
                f"no prompt {args.prompt_id!r}; known: {', '.join(PROMPTS)}",
            )
        return success(f"prompt {spec.name}", prompt_view(spec))


def _down_text(down: list[JSON]) -> str:
    """``connection failed: …`` (one host) or ``host b is down (connection failed: …)``."""
    if len(down) == 1 and down[0]["name"] == DEFAULT_HOST:
        return str(down[0]["error"])
    return "; ".join(f"host {h['name']} is down ({h['error']})" for h in down)


def _place_text(runner: TaskRunner, task: Task) -> str:
    """``position 3: the daemon runs at most 2 at once (2 in flight)``."""
    place = runner.queue.place(task.id)
    if place is None:
        return task.queue_reason or "waiting for its turn"
    return f"position {place.position}: {place.reason}"


def _options(args: RunOptionsArgs) -> TaskOptions:
    return TaskOptions(
        model=args.model,
        max_turns=args.max_turns,
        max_budget_usd=args.max_budget_usd,
        timeout_s=args.timeout_s,
        permission_mode=args.permission_mode,
        live=args.live,
        allow_rules=None if args.allow_rules is None else tuple(args.allow_rules),
        deny_rules=tuple(args.deny_rules or ()),
        approval_timeout_s=args.approval_timeout_s,
    )


@attrs.frozen
class ToolSpec:
    """One tool: its name, description, arguments class (hence schema) and handler."""

    name: str
    description: str
    arguments: type[Any]
    run: Callable[[TaskTools, RequestContext, Any], Awaitable[ToolResult]]
    as_task: bool = False
    """Whether a client may run it as an MCP task (it then returns when the run ends)."""
    mint_task_id: Callable[[], str] | None = None
    """Run as an MCP task, the task's id comes from here (``Tool.mint_task_id``)."""


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "create_task",
        "Create a coding task and start an agent on it; returns at once with the task "
        "id (as an MCP task it returns when the run ends, with its report, and the MCP task's "
        "id is the task id).",
        CreateArgs,
        TaskTools.create_task,
        as_task=True,
        mint_task_id=new_task_id,
    ),
    ToolSpec(
        "update_task",
        "Send follow-up instructions to a task: the agent continues the same "
        "conversation. While a live turn is in flight they go into it (the result says "
        "steered: true) where the agent can take them; otherwise refused with code 'busy' "
        "while a run is in flight (wait_task).",
        UpdateArgs,
        TaskTools.update_task,
        as_task=True,
    ),
    ToolSpec(
        "end_task",
        "End a task: stops its run if one is in flight (the agent's whole process "
        "tree), then marks it completed. Its worktree and branch stay (merge_task or "
        "discard_task them later).",
        IdArgs,
        TaskTools.end_task,
    ),
    ToolSpec(
        "merge_task",
        "Merge a worktree task's branch into its base branch (strategy merge, squash or "
        "rebase); all or nothing: refused with the files listed when it would conflict or when "
        "the checkout has uncommitted changes in them, and with 'busy' while a run is in "
        "flight. The task is then completed and its worktree and branch are removed.",
        MergeArgs,
        TaskTools.merge_task,
    ),
    ToolSpec(
        "discard_task",
        "Discard a worktree task's work: stops a run in flight, removes its worktree and "
        "branch; the task is then cancelled.",
        IdArgs,
        TaskTools.discard_task,
    ),
    ToolSpec(
        "report",
        "One task's details and last report, or every task with statistics.",
        OptionalIdArgs,
        TaskTools.report,
    ),
    ToolSpec(
        "check_status",
        "Probe the host daemon (reachability, agents found), check the state disk "
        "(an error while it refuses writes) and count tasks.",
        NoArgs,
        TaskTools.check_status,
    ),
    ToolSpec(
        "clean_state",
        "Delete every task (runs in flight are stopped first).",
        NoArgs,
        TaskTools.clean_state,
    ),
    ToolSpec(
        "approve",
        "Answer a live task's pending permission request (wait_task, report and task://{id} "
        "list them as pending_approvals): allow or deny (a deny's message reaches the agent); "
        "remember 'task' also allows the same use for the rest of the task. An error when the "
        "request is not pending (already decided, timed out, its run ended).",
        ApproveArgs,
        TaskTools.approve,
    ),
    ToolSpec(
        "interrupt_task",
        "Stop a task's current turn (the agent's tools included) and keep the task and its "
        "conversation: the task waits for update_task. end_task still ends everything.",
        IdArgs,
        TaskTools.interrupt_task,
    ),
    ToolSpec(
        "get_prompt",
        "One prompt template, or all of them.",
        PromptIdArgs,
        TaskTools.get_prompt,
    ),
    ToolSpec(
        "wait_task",
        f"Wait until a task's run ends or timeout_s passes (at most {MAX_WAIT_S:g} s, "
        f"default {DEFAULT_WAIT_S:g} s); returns the task. A permission request of a live "
        "task is asked about by elicitation when the client can; otherwise wait_task returns "
        "at once with status input_required and the request in pending_approvals (approve). "
        "With a progress token it sends progress on each new event or status change (the "
        "message: the status and the latest event's summary).",
        WaitArgs,
        TaskTools.wait_task,
    ),
)


def register_tasks(
    registry: Registry,
    runner: TaskRunner,
    *,
    features: Mapping[str, bool] | None = None,
    status_sections: Mapping[str, Callable[[], JSON]] | None = None,
    check_notify_url: Callable[[str], object] | None = None,
) -> TaskTools:
    """Declare the coding-task surface on ``registry``: tools, resources (the tasks that exist
    already among them), templates and prompts. The runner's changes reach clients through the
    :class:`TaskNotices` it was built with. ``status_sections`` add keys to ``check_status``
    (``notifications``); ``check_notify_url`` admits a task's ``notify_url`` or raises."""
    resources = TaskResources(
        runner=runner, features=dict(features or {}), sections=dict(status_sections or {})
    )
    tools = TaskTools(
        runner=runner,
        resources=resources,
        review=TaskReview(runner),
        check_notify_url=check_notify_url,
    )
    for spec in TOOLS:
        annotations = ANNOTATIONS[spec.name]
        registry.add_tool(
            Tool(
                name=spec.name,
                description=spec.description,
                input_schema=input_schema(spec.arguments),
                output_schema=OUTPUT_SCHEMA,
                handler=tools.handler(spec),
                title=annotations.title,
                annotations=annotations,
                task_support="optional" if spec.as_task else "forbidden",
                mint_task_id=spec.mint_task_id,
            )
        )
    resources.register(registry)
    TaskNotices(registry).list_tasks(runner.active_tasks())
    for prompt in PROMPTS.values():
        registry.add_prompt(prompt.prompt())
    return tools
