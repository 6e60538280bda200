"""One git worktree per task: made, committed, diffed, merged, discarded and swept by the daemon.

``WorktreeManager`` carries out the daemon's worktree operations (the records of ``_records``)
on real repositories: git runs as an argv with a timeout, as the repository's owner (see
``_git_runner``). Layout: ``<worktrees dir>/<key>/`` is the worktree and ``<key>.json`` its
metadata, written before ``git worktree add`` so that a crash between the two leaves a record the
sweep removes. Operations on one key are serialized, and so are creates and merges on one
repository. The user's checkout is only ever read, except by a merge that lands in its checked-out
branch, and then only as a fast-forward git refuses when it would touch local changes.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Final

import trio

from ._errors import ErrorCode
from ._git import (
    LOG_FORMAT,
    WorktreeMeta,
    branch_name_error,
    dump_meta,
    key_error,
    load_meta,
    parse_commit_log,
    parse_diff_files,
    parse_name_list,
)
from ._git_runner import GitRunner, WorktreeRefused, failure_text, owner_of
from ._paths import PathRefused, open_inside_roots
from ._records import (
    CommitDone,
    CommitInfo,
    CommitsDone,
    DiffDone,
    DiscardDone,
    MergeDone,
    SweepDone,
    WorktreeCommit,
    WorktreeCommits,
    WorktreeCreate,
    WorktreeDiff,
    WorktreeDiscard,
    WorktreeInfo,
    WorktreeMerge,
    WorktreeSkipped,
    WorktreeSweep,
)
from ._worktree_create import (
    apply_snapshot,
    inspect_base,
    repository_identity,
    repository_top,
    resolve_base,
    snapshot_changes,
)
from ._worktree_files import (
    directory_usage,
    make_private_dir,
    read_bytes,
    remove_inside,
    write_atomically,
)
from ._worktree_merge import land_merge

__all__ = ["WorktreeManager", "WorktreeRefused"]

logger = logging.getLogger(__name__)

#: Removing a worktree after a failure or cancellation gets this long, shielded.
_CLEANUP_S: Final = 60.0
_PREFIXES: Final = ("--src-prefix=a/", "--dst-prefix=b/")


class WorktreeManager:
    """The daemon's worktrees: see the module docstring."""

    def __init__(
        self,
        *,
        worktrees_dir: str,
        roots: tuple[str, ...],
        max_bytes: int,
        git_timeout_s: float,
        environ: Mapping[str, str],
        kill_grace_s: float,
    ) -> None:
        self.worktrees_dir = os.path.realpath(worktrees_dir)
        self._roots = tuple(os.path.realpath(root) for root in roots)
        self._max_bytes = max_bytes
        self._git = GitRunner(environ=environ, timeout_s=git_timeout_s, kill_grace_s=kill_grace_s)
        self._key_locks: dict[str, trio.Lock] = {}
        self._repo_locks: dict[str, trio.Lock] = {}
        #: Temporary entries of operations in flight (the sweep spares them).
        self._in_use: set[str] = set()

    # -- public operations -----------------------------------------------------------------

    def run_directory(self, key: str) -> str:
        """Where a run of worktree ``key`` starts: the project's place inside the worktree."""
        meta = self._load(key)
        directory = os.path.join(meta.path, meta.subdir) if meta.subdir else meta.path
        if not os.path.isdir(directory):
            raise WorktreeRefused("unknown_worktree", f"worktree {key!r}: {directory} is missing")
        return directory

    async def git_version(self) -> str | None:
        """``git --version``, or None when git cannot be run."""
        try:
            result = await self._git.run(["--version"], cwd=os.sep)
        except WorktreeRefused:
            return None
        return result.text or None

    async def create(self, request: WorktreeCreate) -> WorktreeInfo | WorktreeSkipped:
        """Make the worktree on a new branch (see ``WorktreeCreate``)."""
        _refuse_if_invalid(key_error(request.key))
        _refuse_if_invalid(branch_name_error(request.branch))
        if request.base_ref is not None and (
            not request.base_ref or "\0" in request.base_ref or request.base_ref.startswith("-")
        ):
            raise WorktreeRefused(
                "invalid_request", f"expected a git revision, got {request.base_ref!r}"
            )
        if self._max_bytes <= 0:
            raise WorktreeRefused(
                "disk_budget", "worktrees are disabled on this daemon (--worktrees-max-gb 0)"
            )
        project = _project_directory(request.cwd, self._roots)
        top = await repository_top(self._git, project)
        if top is None:
            return _skip_or_refuse(
                request, "not_a_repository", f"{request.cwd} is not inside a git repository"
            )
        if not any(_within(top, root) for root in self._roots):
            raise WorktreeRefused(
                "path_outside_root",
                f"the repository of {request.cwd} is {top}, outside the allowed roots: "
                + ", ".join(self._roots),
            )
        subdir = project[len(top) :].lstrip(os.sep)  # both are real paths, project inside top
        async with (
            self._locked(self._key_locks, request.key),
            self._locked(self._repo_locks, top),
        ):
            return await self._create(request, top, subdir)

    async def commit(self, request: WorktreeCommit) -> CommitDone:
        """Commit everything that changed in the worktree; no commit when nothing did."""
        if not request.message.strip() or "\0" in request.message:
            raise WorktreeRefused("invalid_request", "expected a non-empty commit message")
        async with self._locked(self._key_locks, request.key):
            meta = self._load(request.key)
            path, owner = meta.path, owner_of(meta.repo)
            await self._git.run(["add", "-A"], cwd=path, owner=owner)
            staged = await self._git.run(
                ["diff", "--cached", "--quiet"], cwd=path, owner=owner, ok_codes=(0, 1)
            )
            if staged.exit_code == 0:
                return CommitDone(commit=None, files=[])
            identity = await repository_identity(self._git, meta.repo, owner)
            await self._git.run(
                ["commit", "--no-verify", "--quiet", "-m", request.message],
                cwd=path,
                owner=owner,
                identity=identity,
            )
            sha = (await self._git.run(["rev-parse", "HEAD"], cwd=path, owner=owner)).text
            return CommitDone(commit=sha, files=await self._files_of(sha, path, owner))

    async def diff(self, request: WorktreeDiff) -> DiffDone:
        """The branch's committed changes against its base: per file, and as a unified diff."""
        if request.max_bytes < 0:
            raise WorktreeRefused("invalid_request", "expected max_bytes >= 0")
        async with self._locked(self._key_locks, request.key):
            meta = self._load(request.key)
            owner = owner_of(meta.repo)
            head = await self._branch_tip(meta, owner)
            span = [meta.base_commit, head]
            numstat = await self._git.run(
                ["diff", "--numstat", "-z", "-M", *span], cwd=meta.path, owner=owner
            )
            names = await self._git.run(
                ["diff", "--name-status", "-z", "-M", *span], cwd=meta.path, owner=owner
            )
            patch = await self._git.run(
                ["diff", "-M", "--no-color", "--no-ext-diff", "--no-textconv", *_PREFIXES, *span],
                cwd=meta.path,
                owner=owner,
                max_output=request.max_bytes,
            )
            data = patch.stdout if patch.capped or not patch.stdout else patch.stdout + b"\n"
            return DiffDone(
                base_commit=meta.base_commit,
                head_commit=head,
                files=parse_diff_files(numstat.stdout, names.stdout),
                diff=data[: request.max_bytes].decode("utf-8", "replace"),
                truncated=patch.capped or len(data) > request.max_bytes,
            )

    async def commits(self, request: WorktreeCommits) -> CommitsDone:
        """The branch's commits since its base, oldest first, each with the files it changed."""
        async with self._locked(self._key_locks, request.key):
            meta = self._load(request.key)
            owner = owner_of(meta.repo)
            head = await self._branch_tip(meta, owner)
            log = await self._git.run(
                ["log", "-z", "--reverse", LOG_FORMAT, f"{meta.base_commit}..{head}"],
                cwd=meta.path,
                owner=owner,
            )
            commits = []
            for entry in parse_commit_log(log.stdout):
                files = await self._files_of(entry.sha, meta.path, owner)
                commits.append(
                    CommitInfo(entry.sha, entry.subject, entry.body, entry.author, entry.at, files)
                )
            return CommitsDone(commits=commits)

    async def merge(self, request: WorktreeMerge) -> MergeDone:
        """Land the branch in its base branch, all or nothing; then remove worktree and branch."""
        if request.message is not None and (not request.message.strip() or "\0" in request.message):
            raise WorktreeRefused("invalid_request", "expected a non-empty merge message")
        async with self._locked(self._key_locks, request.key):
            meta = self._load(request.key)
            if meta.base_branch is None:
                raise WorktreeRefused(
                    "no_base_branch",
                    f"worktree {request.key!r} was made from a detached commit "
                    f"({meta.base_commit[:12]}): there is no branch to merge into",
                )
            async with self._locked(self._repo_locks, meta.repo):
                owner = owner_of(meta.repo)
                identity = await repository_identity(self._git, meta.repo, owner)
                scratch = os.path.join(self.worktrees_dir, f".merge-{secrets.token_hex(6)}")
                self._in_use.add(scratch)
                try:
                    done = await land_merge(
                        self._git, meta, request, owner=owner, identity=identity, scratch=scratch
                    )
                finally:
                    self._in_use.discard(scratch)
                await self._remove(meta, delete_branch=True)
                return done

    async def discard(self, request: WorktreeDiscard) -> DiscardDone:
        """Remove the worktree, its metadata and (unless told otherwise) its branch."""
        async with self._locked(self._key_locks, request.key):
            meta = self._load(request.key)
            return await self._remove(meta, delete_branch=request.delete_branch)

    async def sweep(self, request: WorktreeSweep) -> SweepDone:
        """Remove every worktree whose key is not in ``keep``, half-made ones included; a branch
        with commits beyond its base is kept (and named in the reply)."""
        keep = set(request.keep)
        try:
            names = await trio.to_thread.run_sync(os.listdir, self.worktrees_dir)
        except FileNotFoundError:
            return SweepDone(removed=[], kept_branches=[])
        keys: set[str] = set()
        for name in names:
            full = os.path.join(self.worktrees_dir, name)
            if name.startswith(".") or ".json.tmp-" in name:
                if full not in self._in_use and not self._busy(name.partition(".json.tmp-")[0]):
                    await self._remove_quietly(full)
                continue
            keys.add(name.removesuffix(".json"))
        removed: list[str] = []
        kept: list[str] = []
        repos: set[str] = set()
        for key in sorted(keys - keep):
            if self._busy(key):  # being made, merged or discarded right now: not an orphan
                continue
            async with self._locked(self._key_locks, key):
                branch = await self._sweep_one(key, repos)
            removed.append(key)
            if branch is not None:
                kept.append(branch)
        for repo in sorted(repos):
            await self._prune(repo)
        return SweepDone(removed=removed, kept_branches=kept)

    # -- create ----------------------------------------------------------------------------

    async def _create(
        self, request: WorktreeCreate, top: str, subdir: str
    ) -> WorktreeInfo | WorktreeSkipped:
        key = request.key
        path, meta_path = self._path_of(key), self._meta_path_of(key)
        await trio.to_thread.run_sync(_make_worktrees_dir, self.worktrees_dir)
        if await trio.to_thread.run_sync(_any_exists, path, meta_path):
            raise WorktreeRefused("worktree_exists", f"a worktree named {key!r} exists already")
        owner = owner_of(top)
        exists = await self._git.run(
            ["rev-parse", "--verify", "--quiet", f"refs/heads/{request.branch}"],
            cwd=top,
            owner=owner,
            ok_codes=(0, 1),
        )
        if exists.exit_code == 0:
            raise WorktreeRefused(
                "worktree_exists", f"branch {request.branch!r} exists already in {top}"
            )
        base_commit, base_branch = await resolve_base(self._git, request, top, owner)
        tree_bytes, unsupported = await inspect_base(self._git, top, owner, base_commit)
        if unsupported is not None:
            return _skip_or_refuse(
                request,
                "unsupported_repository",
                f'cannot isolate {top}: {unsupported}; run the task with isolation "none"',
            )
        used = await trio.to_thread.run_sync(directory_usage, self.worktrees_dir)
        if used + tree_bytes > self._max_bytes:
            raise WorktreeRefused(
                "disk_budget",
                f"worktrees would take {used + tree_bytes} bytes ({used} in use in "
                f"{self.worktrees_dir} + {tree_bytes} for this checkout), over the budget of "
                f"{self._max_bytes} bytes (--worktrees-max-gb); discard finished tasks' worktrees",
            )
        identity = await repository_identity(self._git, top, owner)
        snapshot = None
        if request.include_uncommitted:
            scratch = os.path.join(self.worktrees_dir, f".snapshot-{secrets.token_hex(6)}")
            self._in_use.add(scratch)
            try:
                snapshot = await snapshot_changes(self._git, top, owner, identity, scratch)
            finally:
                self._in_use.discard(scratch)
        meta = WorktreeMeta(
            key=key,
            repo=top,
            path=path,
            subdir=subdir,
            branch=request.branch,
            base_branch=base_branch,
            base_commit=base_commit,
            created_at=time.time(),
        )
        await trio.to_thread.run_sync(write_atomically, meta_path, dump_meta(meta))
        try:
            await trio.to_thread.run_sync(make_private_dir, path, owner)
            await self._git.run(
                ["worktree", "add", "--quiet", "-b", request.branch, path, base_commit],
                cwd=top,
                owner=owner,
            )
            if snapshot is not None:
                await apply_snapshot(self._git, snapshot, path, owner, identity)
            head = (await self._git.run(["rev-parse", "HEAD"], cwd=path, owner=owner)).text
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(_CLEANUP_S):
                await self._remove(meta, delete_branch=True)
            raise
        return WorktreeInfo(
            key=key,
            repo=top,
            path=path,
            subdir=meta.subdir,
            branch=request.branch,
            base_branch=base_branch,
            base_commit=base_commit,
            head_commit=head,
        )

    # -- helpers ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _locked(self, locks: dict[str, trio.Lock], name: str) -> AsyncIterator[None]:
        lock = locks.setdefault(name, trio.Lock())
        async with lock:
            try:
                yield
            finally:
                if not lock.statistics().tasks_waiting:
                    locks.pop(name, None)

    def _busy(self, key: str) -> bool:
        lock = self._key_locks.get(key)
        return lock is not None and lock.locked()

    def _path_of(self, key: str) -> str:
        return os.path.join(self.worktrees_dir, key)

    def _meta_path_of(self, key: str) -> str:
        return os.path.join(self.worktrees_dir, f"{key}.json")

    def _load(self, key: str) -> WorktreeMeta:
        problem = key_error(key)
        data = None if problem else read_bytes(self._meta_path_of(key))
        if data is None:
            raise WorktreeRefused("unknown_worktree", f"no worktree named {key!r}")
        try:
            return load_meta(data, key=key, path=self._path_of(key))
        except ValueError as exc:
            raise WorktreeRefused(
                "unknown_worktree", f"worktree {key!r} has unreadable metadata: {exc}"
            ) from None

    async def _branch_tip(self, meta: WorktreeMeta, owner: tuple[int, int] | None) -> str:
        tip = await self._git.run_unchecked(
            ["rev-parse", "--verify", "--quiet", f"refs/heads/{meta.branch}"],
            cwd=meta.repo,
            owner=owner,
        )
        if tip.exit_code != 0:
            raise WorktreeRefused(
                "unknown_worktree", f"branch {meta.branch!r} of worktree {meta.key!r} is gone"
            )
        return tip.text

    async def _files_of(self, sha: str, cwd: str, owner: tuple[int, int] | None) -> list[str]:
        changed = await self._git.run(
            ["diff-tree", "--no-commit-id", "--name-only", "-r", "-z", "--root", sha],
            cwd=cwd,
            owner=owner,
        )
        return parse_name_list(changed.stdout)

    async def _remove(self, meta: WorktreeMeta, *, delete_branch: bool) -> DiscardDone:
        """Remove the worktree (git's record and the directory), the branch if asked, and the
        metadata; only ever inside the worktrees dir."""
        path = self._path_of(meta.key)
        repo_ok = any(_within(meta.repo, root) for root in self._roots)
        repo_ok = repo_ok and await trio.to_thread.run_sync(os.path.isdir, meta.repo)
        owner = owner_of(meta.repo) if repo_ok else None
        removed, is_directory = await trio.to_thread.run_sync(_entry_kind, path)
        if repo_ok and is_directory:
            result = await self._git.run_unchecked(
                ["worktree", "remove", "--force", "--force", path], cwd=meta.repo, owner=owner
            )
            if result.exit_code != 0:
                logger.debug("%s", failure_text(["worktree"], meta.repo, result))
        await self._remove_quietly(path)
        deleted = False
        if repo_ok:
            await self._prune(meta.repo)
            if delete_branch:
                gone = await self._git.run_unchecked(
                    ["branch", "-D", meta.branch], cwd=meta.repo, owner=owner
                )
                deleted = gone.exit_code == 0
        await self._remove_quietly(self._meta_path_of(meta.key))
        return DiscardDone(removed_worktree=removed, deleted_branch=deleted)

    async def _sweep_one(self, key: str, repos: set[str]) -> str | None:
        """Remove one orphaned entry; returns its branch when kept for its commits."""
        try:
            meta = self._load(key)
        except WorktreeRefused:
            meta = None
        if meta is None:  # half-made, or foreign: remove our entries, prune git's record
            repo = await trio.to_thread.run_sync(_repository_of_worktree, self._path_of(key))
            if repo is not None:
                repos.add(repo)
            await self._remove_quietly(self._path_of(key))
            await self._remove_quietly(self._meta_path_of(key))
            return None
        has_work = await self._has_commits(meta)
        await self._remove(meta, delete_branch=not has_work)
        return meta.branch if has_work else None

    async def _has_commits(self, meta: WorktreeMeta) -> bool:
        """Whether the branch holds commits beyond its base (a missing repository: no)."""
        try:
            counted = await self._git.run_unchecked(
                ["rev-list", "--count", f"{meta.base_commit}..refs/heads/{meta.branch}"],
                cwd=meta.repo,
                owner=_owner_if_present(meta.repo),
            )
        except WorktreeRefused:
            return False
        return counted.exit_code == 0 and counted.text not in ("", "0")

    async def _prune(self, repo: str) -> None:
        if not any(_within(repo, root) for root in self._roots):
            return
        try:
            result = await self._git.run_unchecked(
                ["worktree", "prune"], cwd=repo, owner=_owner_if_present(repo)
            )
        except WorktreeRefused as exc:  # the repository is gone
            logger.debug("%s", exc.message)
            return
        if result.exit_code != 0:
            logger.debug("%s", failure_text(["worktree"], repo, result))

    async def _remove_quietly(self, path: str) -> None:
        try:
            await trio.to_thread.run_sync(remove_inside, path, self.worktrees_dir)
        except (OSError, ValueError) as exc:
            logger.warning("could not remove %s: %s", path, exc)


def _refuse_if_invalid(problem: str | None) -> None:
    if problem is not None:
        raise WorktreeRefused("invalid_request", problem)


def _skip_or_refuse(request: WorktreeCreate, code: ErrorCode, reason: str) -> WorktreeSkipped:
    if request.required:
        raise WorktreeRefused(code, reason)
    return WorktreeSkipped(reason=reason)


def _within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _project_directory(cwd: str, roots: tuple[str, ...]) -> str:
    try:
        with open_inside_roots(cwd, roots) as held:
            return held.path
    except PathRefused as exc:
        raise WorktreeRefused(exc.code, exc.message) from None


def _any_exists(*paths: str) -> bool:
    return any(os.path.lexists(path) for path in paths)


def _entry_kind(path: str) -> tuple[bool, bool]:
    """Whether ``path`` exists, and whether it is a real directory (not a symlink to one)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False, False
    return True, stat.S_ISDIR(mode)


def _owner_if_present(path: str) -> tuple[int, int] | None:
    try:
        return owner_of(path)
    except OSError:
        return None


def _make_worktrees_dir(directory: str) -> None:
    os.makedirs(directory, mode=0o711, exist_ok=True)


def _repository_of_worktree(path: str) -> str | None:
    """The repository a worktree directory belongs to, from its ``.git`` file, if readable."""
    data = read_bytes(os.path.join(path, ".git")) if not os.path.islink(path) else None
    if not data or not data.startswith(b"gitdir: "):
        return None
    gitdir = data[len(b"gitdir: ") :].strip().decode("utf-8", "surrogateescape")
    common = os.path.dirname(os.path.dirname(gitdir))  # <repo>/.git/worktrees/<name>
    return os.path.dirname(common) if os.path.basename(common) == ".git" else None
