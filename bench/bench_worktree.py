"""Benchmark the daemon's worktree creation against a plain ``git worktree add``, in one run.

    .venv/bin/python bench/bench_worktree.py [--files 10000 100000] [--rounds 5]

For each size in ``--files`` a repository of that many small files (100 per directory, one
commit) is built in a temporary directory. Then, in interleaved rounds, the same repository
gets a worktree from ``WorktreeManager.create`` (what the daemon does for a task: resolve the
repository and base, check for submodules and LFS with ``git ls-tree``, measure the worktrees
directory against the disk budget, write the metadata, ``git worktree add``) and one from a
plain ``git worktree add -b BRANCH PATH HEAD`` run by hand; each is removed before the next
round (not timed). The table gives the median of each, their ratio, and the disk a task's
worktree takes (its directory, walked without following symlinks, plus git's administrative
directory for it, which holds the worktree's index) next to the user's checkout (without
``.git``). Absolute figures depend on the machine and its load: compare the ratio.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

import trio

from host_daemon._records import WorktreeCreate, WorktreeDiscard, WorktreeInfo
from host_daemon._worktree_files import directory_usage
from host_daemon._worktrees import WorktreeManager

_FILES_PER_DIR = 100
_IDENTITY = ["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid"]


def _environment(home: pathlib.Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "LC_ALL": "C",
    }


def _git(repo: pathlib.Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *_IDENTITY, *args], cwd=repo, env=env, check=True, capture_output=True)


def build_repository(repo: pathlib.Path, files: int, env: dict[str, str]) -> None:
    """``files`` small source-like files in directories of 100, committed once."""
    repo.mkdir()
    _git(repo, env, "init", "--quiet", "--initial-branch=main")
    line = "def function_{n}(value):\n    return value * {n}\n"
    for n in range(files):
        directory = repo / f"d{n // _FILES_PER_DIR:04d}"
        if n % _FILES_PER_DIR == 0:
            directory.mkdir()
        (directory / f"f{n:06d}.py").write_text(line.format(n=n) * 4)
    _git(repo, env, "add", "--all")
    _git(repo, env, "commit", "--quiet", "--message", "bench tree")


async def _plain_worktree_add(repo: pathlib.Path, env: dict[str, str], path: str, n: int) -> float:
    argv = ["git", "worktree", "add", "--quiet", "-b", f"bench/plain-{n}", path, "HEAD"]
    start = time.perf_counter()
    await trio.run_process(argv, cwd=repo, env=env, capture_stdout=True, capture_stderr=True)
    return time.perf_counter() - start


def _remove_plain(repo: pathlib.Path, env: dict[str, str], path: str, n: int) -> None:
    _git(repo, env, "worktree", "remove", "--force", path)
    _git(repo, env, "branch", "-D", f"bench/plain-{n}")


def _checkout_bytes(repo: pathlib.Path) -> int:
    total = 0
    for current, dirs, names in os.walk(repo):
        dirs[:] = [name for name in dirs if name != ".git"]
        for name in (*dirs, *names):
            total += os.lstat(os.path.join(current, name)).st_blocks * 512
    return total


async def bench_size(base: pathlib.Path, files: int, rounds: int) -> list[str]:
    """Build a repository of ``files`` files and time both ways of making a worktree."""
    work = base / f"files-{files}"
    work.mkdir()
    env = _environment(work / "home")
    repo = work / "repo"
    started = time.perf_counter()
    build_repository(repo, files, env)
    built = time.perf_counter() - started
    manager = WorktreeManager(
        worktrees_dir=str(work / "state" / "worktrees"),
        roots=(str(work),),
        max_bytes=1024**4,
        git_timeout_s=600.0,
        environ=env,
        kill_grace_s=5.0,
    )
    plain_dir = work / "plain"
    plain_dir.mkdir()
    daemon_times: list[float] = []
    plain_times: list[float] = []
    task_bytes = admin_bytes = 0
    for n in range(rounds):
        key = f"bench{n}"
        request = WorktreeCreate(key=key, cwd=str(repo), branch=f"coding-agent/{key}")
        start = time.perf_counter()
        info = await manager.create(request)
        daemon_times.append(time.perf_counter() - start)
        assert isinstance(info, WorktreeInfo)
        if n == 0:
            task_bytes = await trio.to_thread.run_sync(directory_usage, info.path)
            admin = str(repo / ".git" / "worktrees" / key)
            admin_bytes = await trio.to_thread.run_sync(directory_usage, admin)
        await manager.discard(WorktreeDiscard(key=key))
        plain_path = str(plain_dir / f"w{n}")
        plain_times.append(await _plain_worktree_add(repo, env, plain_path, n))
        _remove_plain(repo, env, plain_path, n)
    daemon = statistics.median(daemon_times)
    plain = statistics.median(plain_times)
    checkout = _checkout_bytes(repo)
    mib = 1024 * 1024
    return [
        f"{files} files (repository built in {built:.1f} s), {rounds} interleaved rounds",
        f"{'':<40} {'median s':>9} {'min s':>9} {'max s':>9}",
        f"{'WorktreeManager.create':<40} {daemon:>9.3f} {min(daemon_times):>9.3f} "
        f"{max(daemon_times):>9.3f}",
        f"{'git worktree add (by hand)':<40} {plain:>9.3f} {min(plain_times):>9.3f} "
        f"{max(plain_times):>9.3f}",
        f"{'ratio create / plain (median)':<40} {daemon / plain:>8.2f}x",
        f"{'disk per task worktree (directory)':<40} {task_bytes / mib:>8.1f} MiB",
        f"{'  + git admin dir (its index)':<40} {admin_bytes / mib:>8.1f} MiB",
        f"{'the checkout itself (without .git)':<40} {checkout / mib:>8.1f} MiB",
    ]


async def main(base: pathlib.Path, sizes: list[int], rounds: int) -> None:
    lines: list[str] = []
    for files in sizes:
        lines += await bench_size(base, files, rounds)
        lines.append("")
    print("\n".join(lines).rstrip())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files", type=int, nargs="+", default=[10_000, 100_000], help="repository sizes"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per size (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-worktree-") as tmp:
        trio.run(main, pathlib.Path(os.path.realpath(tmp)), args.files, args.rounds)
