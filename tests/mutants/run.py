"""Mutation check: break each guarantee that matters on purpose and require a test to notice.

Every mutant below is one exact edit (an original snippet, found exactly once, and its
replacement) to a copy of the repository under a temporary directory, never the working tree.
Its test selection then runs with pytest in that copy (``PYTHONPATH`` pointing there, so the
daemons the tests start run the mutated code too) and must FAIL: the mutant is *killed*. A
mutant whose tests pass *survived*: the guarantee could regress unnoticed. A mutant whose
original snippet is gone or no longer unique is *stale* and fails the check, so the list cannot
rot silently when the code moves. The unmutated selection runs first, as a baseline: a test
that fails anyway would make every kill meaningless.

A short script of our own rather than mutmut: the point is a few chosen mutants of named
guarantees, each with the tests aimed at it, not a sweep of generated operator swaps over
every line (hours on this suite, and a survivor list nobody reads). Usage (repository root)::

    python tests/mutants/run.py                  # every mutant, two at a time
    python tests/mutants/run.py --only auth-accepts-any-client-proof
    python tests/mutants/run.py --list           # the mutants and their tests, nothing run

Exits 0 only when the baseline passes and every mutant is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import attrs
import trio

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT_S = 900.0
# Not copied: version control, caches, build output, virtualenvs.
IGNORED = shutil.ignore_patterns(
    ".git", ".tox", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)

Status = Literal["killed", "survived", "stale", "error", "passed"]  # "passed": the baseline


@attrs.frozen
class Mutant:
    """One deliberate break of a guarantee, and the tests that must catch it."""

    name: str
    guarantee: str
    path: str  # relative to the repository root
    original: str  # must occur exactly once in ``path``
    replacement: str
    tests: tuple[str, ...]  # pytest arguments, relative to the repository root


@attrs.frozen
class Outcome:
    """What happened to one mutant (or the baseline)."""

    name: str
    guarantee: str
    status: Status
    seconds: float
    detail: str = ""  # why it was not killed, shown under the table
    killed_by: str = ""  # the first failing test


MUTANTS = (
    Mutant(
        name="auth-accepts-any-client-proof",
        guarantee="the daemon refuses a client without the token",
        path="host_daemon/_connection.py",
        original=(
            '    if not _auth.verify_proof(token, "client", server_nonce, hello.client_nonce,'
            " hello.proof):\n"
        ),
        replacement="    if False:\n",
        tests=(
            "tests/host_daemon/test_daemon_auth_wire.py",
            "tests/host_daemon/test_daemon_auth.py",
            "tests/host_daemon/test_daemon_server.py::test_wrong_token_refused",
        ),
    ),
    Mutant(
        name="paths-everything-inside-roots",
        guarantee="agents are confined to the configured roots",
        path="host_daemon/_paths.py",
        original="    return os.path.commonpath([candidate, root]) == root\n",
        replacement="    return True\n",
        tests=("tests/host_daemon/test_daemon_paths.py",),
    ),
    Mutant(
        name="kill-leader-only",
        guarantee="ending a run signals its whole process group",
        path="host_daemon/_tree.py",
        original=(
            "                        os.killpg(self.pid, signal.SIGTERM)\n"
            "                        os.killpg(self.pid, signal.SIGCONT)"
        ),
        replacement=(
            "                        os.kill(self.pid, signal.SIGTERM)\n"
            "                        os.kill(self.pid, signal.SIGCONT)"
        ),
        tests=(
            "tests/host_daemon/test_daemon_process.py",
            "tests/host_daemon/test_daemon_process_proc.py",
        ),
    ),
    Mutant(
        name="no-restart-recovery",
        guarantee="tasks in flight at a restart without a detachable run come back interrupted",
        path="mcp_server/_tasks/_store.py",
        original=(
            '            if task.status == "pending" or (task.running and not task.reattachable):\n'
        ),
        replacement="            if False:\n",
        tests=(
            "tests/mcp_server/test_tasks_store.py",
            "tests/mcp_server/test_tasks_tools.py::test_restart_interrupts_and_resumes",
        ),
    ),
    Mutant(
        name="no-update-on-transition",
        guarantee="subscribers hear of every status change",
        path="mcp_server/_tasks/_notices.py",
        original='        uri = f"task://{change.task_id}"\n        if change.kind == "created":\n',
        replacement=(
            '        if change.kind == "transition":\n'
            "            return\n"
            '        uri = f"task://{change.task_id}"\n'
            '        if change.kind == "created":\n'
        ),
        tests=(
            "tests/mcp_server/test_tasks_tools.py::test_status_change_updates_result_and_task_list",
            "tests/mcp_server/test_tasks_tools.py::test_status_change_reaches_a_listen_stream",
        ),
    ),
    Mutant(
        name="conformance-always-passes",
        guarantee="a failing conformance suite fails the run",
        path="tests/conformance/run.py",
        original="    return failure is None\n",
        replacement="    return True\n",
        tests=("tests/conformance/test_conformance_runner.py",),
    ),
    Mutant(
        name="no-output-backpressure",
        guarantee="an agent whose output is not read blocks on its pipe",
        path="host_daemon/_output.py",
        original="        while self._used > 0 and self._used + amount > self._limit:\n",
        replacement="        while False:\n",
        tests=("tests/host_daemon/test_daemon_process.py::test_backpressure_blocks_the_child",),
    ),
    Mutant(
        name="no-run-marker-net",
        guarantee="a tool process that escaped the agent's group still ends with its run",
        path="host_daemon/_tree.py",
        original="                marked = environ_has(stat.pid, self._marker)\n",
        replacement="                marked = False\n",
        tests=("tests/mcp_server/test_tasks_tools.py::test_end_task_kills_process_tree",),
    ),
    Mutant(
        name="sigterm-exits-without-draining",
        guarantee="SIGTERM lets a call in flight finish before the server exits",
        path="host_daemon/_signals.py",
        original="            shutdown.set()\n",
        replacement="            scope.cancel()\n",
        tests=(
            "tests/conformance/test_conformance_server.py"
            "::test_server_command_drains_a_call_in_flight_on_sigterm",
        ),
    ),
    Mutant(
        name="dashboard-skips-csrf",
        guarantee="a dashboard POST without its login's CSRF token changes nothing",
        path="mcp_server/_web/_app.py",
        original="                guard.check_csrf(session, ",
        replacement="                (session, ",
        tests=(
            "tests/mcp_server/web/test_web_fence.py"
            "::test_post_without_csrf_is_refused_and_changes_nothing",
        ),
    ),
    Mutant(
        name="dashboard-skips-host-fence",
        guarantee="the dashboard answers only under this server's own host names (DNS rebinding)",
        path="mcp_server/_web/_guard.py",
        original="        if self.fence.allowed_host(host_header) is None:\n",
        replacement="        if False:\n",
        tests=("tests/mcp_server/web/test_web_fence.py::test_foreign_host_is_refused",),
    ),
    Mutant(
        name="dashboard-takes-any-local-origin",
        guarantee="a page on another local port cannot post to the dashboard, even with a token",
        path="mcp_server/_web/_guard.py",
        original="not self.fence.is_own_origin(origin, scheme, host_header)",
        replacement="not self.fence.allows_origin(origin)",
        tests=(
            "tests/mcp_server/web/test_web_fence.py::test_post_from_another_local_port_is_refused",
        ),
    ),
    Mutant(
        name="merge-ignores-conflicts",
        guarantee="a merge that would conflict is refused, never committed with conflict markers",
        path="host_daemon/_worktree_merge.py",
        original="    if merged.exit_code == 1:\n        raise _conflict(",
        replacement="    if False:\n        raise _conflict(",
        tests=(
            "tests/host_daemon/test_daemon_worktrees_merge.py"
            "::test_conflict_refused_and_checkout_unchanged",
        ),
    ),
    Mutant(
        name="merge-overrides-a-dirty-checkout",
        guarantee="a merge never lands over the user's uncommitted changes in the files it touches",
        path="host_daemon/_worktree_merge.py",
        original="    if touched:\n",
        replacement="    if False:\n",
        tests=(
            "tests/host_daemon/test_daemon_worktrees_merge.py"
            "::test_dirty_checkout_in_touched_files_refused",
        ),
    ),
    Mutant(
        name="daemon-deny-rules-ignored",
        guarantee="the host owner's deny rules decide before anyone can allow",
        path="host_daemon/_rules.py",
        original="        for rule in self.deny:\n            if use.matches(rule, deny=True):\n",
        replacement="        for rule in self.deny:\n            if False:\n",
        tests=("tests/host_daemon/test_daemon_rules.py::test_daemon_deny_beats_granted",),
    ),
    Mutant(
        name="idle-live-sessions-stay",
        guarantee="an idle live agent is closed, so idle tasks hold no processes",
        path="host_daemon/_live.py",
        original=(
            "            if self.turn is None and trio.current_time() >= self.idle_since + "
            "self.idle_timeout_s:\n"
        ),
        replacement="            if False:\n",
        tests=(
            "tests/host_daemon/test_daemon_live_claude_session.py"
            "::test_idle_session_closes_and_the_next_turn_resumes",
        ),
    ),
)


def stale_reason(mutant: Mutant, root: Path) -> str | None:
    """Why ``mutant`` cannot be applied to the tree at ``root``, or None when it can."""
    target = root / mutant.path
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        return f"cannot read {mutant.path}: {exc.strerror or exc}"
    count = text.count(mutant.original)
    if count != 1:
        return f"expected the original snippet once in {mutant.path}, found it {count} times"
    return None


def copy_tree(root: Path, destination: Path) -> Path:
    """A copy of the repository at ``root`` under ``destination``, without caches and .git."""
    copy = destination / "repo"
    shutil.copytree(root, copy, ignore=IGNORED, symlinks=True)
    return copy


def apply(mutant: Mutant, copy: Path) -> None:
    """Replace the original snippet by the mutant in the copy (checked unique beforehand)."""
    target = copy / mutant.path
    text = target.read_text(encoding="utf-8")
    target.write_text(text.replace(mutant.original, mutant.replacement, 1), encoding="utf-8")


def pytest_argv(tests: Sequence[str]) -> list[str]:
    """Stop at the first failure: one failing test is enough to kill a mutant."""
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]


async def kill_session(process: trio.Process) -> None:
    """On timeout end pytest and whatever its tests started (daemons, agents) together."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_tests(
    copy: Path, tests: Sequence[str], log: Path, timeout: float
) -> tuple[int | None, float]:
    """Run ``tests`` in ``copy``; pytest's exit code (None on timeout) and the seconds taken."""
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    with log.open("wb") as output:
        with trio.move_on_after(timeout):
            completed = await trio.run_process(
                pytest_argv(tests),
                cwd=copy,
                env=env,
                stdout=output,
                stderr=output,
                check=False,
                start_new_session=True,
                deliver_cancel=kill_session,
            )
            return completed.returncode, time.monotonic() - started
    return None, time.monotonic() - started


def last_lines(log: Path, count: int = 15) -> str:
    """The end of a pytest log, for the report of a run that went wrong."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-count:])


def first_failure(log: Path) -> str:
    """The id of the first failing test in a pytest log (its ``-ra`` summary)."""
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 2)[1]
    return "?"


async def judge(
    mutant: Mutant | None, tests: Sequence[str], root: Path, work: Path, timeout: float
) -> Outcome:
    """Run the tests on a fresh copy, mutated by ``mutant`` (None: the baseline), and judge."""
    name = mutant.name if mutant is not None else "baseline"
    guarantee = mutant.guarantee if mutant is not None else "the unmutated tests pass"
    scratch = work / name
    scratch.mkdir()
    copy = await trio.to_thread.run_sync(copy_tree, root, scratch)
    if mutant is not None:
        apply(mutant, copy)
    log = scratch / "pytest.log"
    code, seconds = await run_tests(copy, tests, log, timeout)
    if code is None:
        return Outcome(name, guarantee, "error", seconds, f"timed out after {timeout}s")
    if mutant is None:
        if code == 0:
            return Outcome(name, guarantee, "passed", seconds)
        return Outcome(name, guarantee, "error", seconds, f"pytest exit {code}\n{last_lines(log)}")
    if code == 1:
        return Outcome(name, guarantee, "killed", seconds, killed_by=first_failure(log))
    if code == 0:
        return Outcome(name, guarantee, "survived", seconds, last_lines(log, 3))
    return Outcome(name, guarantee, "error", seconds, f"pytest exit {code}\n{last_lines(log)}")


async def check(
    mutants: Sequence[Mutant], root: Path, jobs: int, timeout: float
) -> tuple[Outcome, list[Outcome]]:
    """The baseline's outcome and each mutant's, ``jobs`` test runs at a time."""
    outcomes: dict[str, Outcome] = {}
    runnable = []
    for mutant in mutants:
        reason = stale_reason(mutant, root)
        if reason is None:
            runnable.append(mutant)
        else:
            outcomes[mutant.name] = Outcome(mutant.name, mutant.guarantee, "stale", 0.0, reason)
    selection = list(dict.fromkeys(test for mutant in runnable for test in mutant.tests))
    limiter = trio.CapacityLimiter(jobs)
    baseline: list[Outcome] = []

    async def one(mutant: Mutant | None, tests: Sequence[str], work: Path) -> None:
        async with limiter:
            outcome = await judge(mutant, tests, root, work, timeout)
        if mutant is None:
            baseline.append(outcome)
        else:
            outcomes[mutant.name] = outcome
        print(f"[mutants] {outcome.name}: {outcome.status} ({outcome.seconds:.0f}s)", flush=True)

    with tempfile.TemporaryDirectory(prefix="coding-agent-mutants-") as tmp:
        async with trio.open_nursery() as nursery:
            if selection:
                nursery.start_soon(one, None, selection, Path(tmp))
            for mutant in runnable:
                nursery.start_soon(one, mutant, mutant.tests, Path(tmp))
    base = baseline[0] if baseline else Outcome("baseline", "nothing to run", "passed", 0.0)
    return base, [outcomes[mutant.name] for mutant in mutants]


def table(baseline: Outcome, outcomes: Sequence[Outcome]) -> str:
    """The report: one row per mutant, then what went wrong, if anything."""
    rows = [("mutant", "guarantee", "result", "seconds", "killed by")]
    rows += [
        (o.name, o.guarantee, o.status, f"{o.seconds:.0f}", o.killed_by)
        for o in (baseline, *outcomes)
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]:>7}"
        f"  {row[4]}".rstrip()
        for row in rows
    ]
    for outcome in (baseline, *outcomes):
        if outcome.detail:
            lines += ["", f"{outcome.name} ({outcome.status}):", outcome.detail]
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None, mutants: Sequence[Mutant] = MUTANTS, root: Path = REPO_ROOT
) -> int:
    """Run the mutation check; 0 only when the baseline passes and every mutant is killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--only", action="append", choices=[m.name for m in mutants], help="repeatable"
    )
    parser.add_argument("--jobs", type=int, default=2, help="test runs at a time (default 2)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds per test run before it counts as an error (default {DEFAULT_TIMEOUT_S:.0f})",
    )
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    args = parser.parse_args(argv)
    chosen = [m for m in mutants if not args.only or m.name in args.only]
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name}: {mutant.guarantee} [{mutant.path}] {' '.join(mutant.tests)}")
        return 0
    started = time.monotonic()
    baseline, outcomes = trio.run(check, chosen, root, max(1, args.jobs), args.timeout)
    print(table(baseline, outcomes))
    killed = sum(outcome.status == "killed" for outcome in outcomes)
    print(
        f"mutants: {killed} of {len(outcomes)} killed, baseline {baseline.status}, "
        f"{time.monotonic() - started:.0f}s"
    )
    clean = baseline.status == "passed" and killed == len(outcomes)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
