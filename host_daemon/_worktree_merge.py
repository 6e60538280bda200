"""Landing a task's branch in its base branch: compute the result away from the checkout, then
move the base branch in one step, or refuse and leave everything as it was.

- ``merge`` / ``squash``: ``git merge-tree --write-tree`` computes the merged tree without a
  working tree (a conflict lists the files), ``git commit-tree`` makes the commit (two parents,
  or one). A base that is an ancestor of the branch still gets a merge commit (``--no-ff``).
- ``rebase``: the branch's commits are replayed with ``git cherry-pick`` in a temporary detached
  worktree inside the worktrees directory (git 2.39's ``merge-tree`` cannot take another merge
  base), which is removed whatever happens.
- Landing: when a worktree (the user's checkout) has the base branch checked out, its local
  changes must not touch any file the merge changes (``dirty_checkout``), and the checkout is
  fast-forwarded (``git merge --ff-only``, which git refuses rather than overwrite anything).
  Otherwise only the ref moves, by compare-and-swap (``git update-ref NEW OLD``): a base that
  moved since is ``base_moved``.
"""

from __future__ import annotations

import os

import trio

from ._git import (
    WorktreeMeta,
    parse_merge_tree,
    parse_name_list,
    parse_status,
    parse_worktree_list,
    shorten,
)
from ._git_runner import GitRunner, WorktreeRefused, failure_text
from ._records import MergeDone, WorktreeMerge
from ._worktree_files import make_private_dir, remove_inside

__all__ = ["land_merge"]

Owner = tuple[int, int] | None


async def land_merge(
    git: GitRunner,
    meta: WorktreeMeta,
    request: WorktreeMerge,
    *,
    owner: Owner,
    identity: tuple[str, str],
    scratch: str,
) -> MergeDone:
    """Merge ``meta``'s branch into its base branch with ``request.strategy`` (see module doc)."""
    assert meta.base_branch is not None  # noqa: S101 -- the caller refuses detached bases
    repo, base_ref = meta.repo, f"refs/heads/{meta.base_branch}"
    base_tip = await _resolve(git, repo, owner, base_ref)
    if base_tip is None:
        raise WorktreeRefused(
            "no_base_branch", f"the base branch {meta.base_branch!r} no longer exists in {repo}"
        )
    branch_tip = await _resolve(git, repo, owner, f"refs/heads/{meta.branch}")
    if branch_tip is None:
        raise WorktreeRefused("unknown_worktree", f"branch {meta.branch!r} is gone from {repo}")
    pending = await git.run(
        ["rev-list", "--count", f"{base_tip}..{branch_tip}"], cwd=repo, owner=owner
    )
    if pending.text == "0":  # nothing of the branch is missing from the base
        return MergeDone(request.strategy, meta.base_branch, base_tip, [], False)
    if request.strategy == "rebase":
        new_tip = await _replay(
            git,
            meta,
            base_tip=base_tip,
            branch_tip=branch_tip,
            owner=owner,
            identity=identity,
            scratch=scratch,
        )
    else:
        new_tip = await _merge_commit(
            git,
            meta,
            request=request,
            base_tip=base_tip,
            branch_tip=branch_tip,
            owner=owner,
            identity=identity,
        )
    changed = await git.run(
        ["diff", "--name-only", "--no-renames", "-z", base_tip, new_tip], cwd=repo, owner=owner
    )
    files = parse_name_list(changed.stdout)
    updated = await _land(git, meta, base_tip=base_tip, new_tip=new_tip, files=files, owner=owner)
    return MergeDone(request.strategy, meta.base_branch, new_tip, files, updated)


async def _resolve(git: GitRunner, repo: str, owner: Owner, ref: str) -> str | None:
    found = await git.run_unchecked(
        ["rev-parse", "--verify", "--quiet", ref], cwd=repo, owner=owner
    )
    return found.text if found.exit_code == 0 and found.text else None


def _conflict(base_branch: str, files: list[str]) -> WorktreeRefused:
    return WorktreeRefused(
        "merge_conflict",
        f"the branch conflicts with {base_branch!r} in {len(files)} file(s): {shorten(files)}; "
        "nothing was changed",
    )


async def _merge_commit(
    git: GitRunner,
    meta: WorktreeMeta,
    *,
    request: WorktreeMerge,
    base_tip: str,
    branch_tip: str,
    owner: Owner,
    identity: tuple[str, str],
) -> str:
    assert meta.base_branch is not None  # noqa: S101 -- checked by land_merge
    merged = await git.run(
        ["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", base_tip, branch_tip],
        cwd=meta.repo,
        owner=owner,
        ok_codes=(0, 1),
    )
    result = parse_merge_tree(merged.stdout)
    if merged.exit_code == 1:
        raise _conflict(meta.base_branch, result.conflicts)
    if request.strategy == "merge":
        parents = ["-p", base_tip, "-p", branch_tip]
        default = f"Merge branch '{meta.branch}' into {meta.base_branch}"
    else:
        parents = ["-p", base_tip]
        log = await git.run(
            ["log", "--reverse", "--format=* %s", f"{base_tip}..{branch_tip}"],
            cwd=meta.repo,
            owner=owner,
        )
        default = f"Squashed branch '{meta.branch}'\n\n{log.stdout.decode('utf-8', 'replace')}"
    made = await git.run(
        ["commit-tree", result.tree, *parents, "-m", request.message or default],
        cwd=meta.repo,
        owner=owner,
        identity=identity,
    )
    return made.text


async def _replay(
    git: GitRunner,
    meta: WorktreeMeta,
    *,
    base_tip: str,
    branch_tip: str,
    owner: Owner,
    identity: tuple[str, str],
    scratch: str,
) -> str:
    """The branch's commits replayed onto ``base_tip`` in a temporary worktree; its new tip."""
    assert meta.base_branch is not None  # noqa: S101 -- checked by land_merge
    directory = os.path.dirname(scratch)
    await trio.to_thread.run_sync(make_private_dir, scratch, owner)
    try:
        await git.run(
            ["worktree", "add", "--quiet", "--detach", scratch, base_tip],
            cwd=meta.repo,
            owner=owner,
        )
        replayed = f"{base_tip}..{branch_tip}"
        picked = await git.run_unchecked(
            ["cherry-pick", "--allow-empty", "--keep-redundant-commits", replayed],
            cwd=scratch,
            owner=owner,
            identity=identity,
            author=False,
        )
        if picked.exit_code != 0:
            unmerged = await git.run(
                ["diff", "--name-only", "--diff-filter=U", "-z"], cwd=scratch, owner=owner
            )
            files = parse_name_list(unmerged.stdout)
            if files:
                raise _conflict(meta.base_branch, files)
            raise WorktreeRefused("git_failed", failure_text(["cherry-pick"], scratch, picked))
        return (await git.run(["rev-parse", "HEAD"], cwd=scratch, owner=owner)).text
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(git.timeout_s):
            await git.run_unchecked(
                ["worktree", "remove", "--force", "--force", scratch], cwd=meta.repo, owner=owner
            )
            await trio.to_thread.run_sync(remove_inside, scratch, directory)
            await git.run_unchecked(["worktree", "prune"], cwd=meta.repo, owner=owner)


async def _land(
    git: GitRunner,
    meta: WorktreeMeta,
    *,
    base_tip: str,
    new_tip: str,
    files: list[str],
    owner: Owner,
) -> bool:
    """Move the base branch from ``base_tip`` to ``new_tip``; True when a checkout moved too."""
    assert meta.base_branch is not None  # noqa: S101 -- checked by land_merge
    base_ref = f"refs/heads/{meta.base_branch}"
    listing = await git.run(["worktree", "list", "--porcelain", "-z"], cwd=meta.repo, owner=owner)
    checkout = parse_worktree_list(listing.stdout).get(base_ref)
    if checkout is None:
        moved = await git.run_unchecked(
            ["update-ref", "-m", f"coding-agent: merge {meta.branch}", base_ref, new_tip, base_tip],
            cwd=meta.repo,
            owner=owner,
        )
        if moved.exit_code != 0:
            raise _moved(meta.base_branch, failure_text(["update-ref"], meta.repo, moved))
        return False
    status = await git.run(
        ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"],
        cwd=checkout,
        owner=owner,
    )
    dirty = {entry.path for entry in parse_status(status.stdout)}
    touched = [path for path in files if path in dirty]
    if touched:
        raise WorktreeRefused(
            "dirty_checkout",
            f"{checkout} has uncommitted changes in {len(touched)} file(s) the merge changes: "
            f"{shorten(touched)}; commit or stash them first (nothing was changed)",
        )
    head = await _resolve(git, checkout, owner, "HEAD")
    if head != base_tip:
        raise _moved(meta.base_branch, f"{checkout} is at {head}, not {base_tip}")
    forward = await git.run_unchecked(
        ["merge", "--ff-only", "--no-stat", "--quiet", new_tip], cwd=checkout, owner=owner
    )
    if forward.exit_code != 0:
        if await _resolve(git, checkout, owner, "HEAD") != base_tip:
            raise _moved(meta.base_branch, failure_text(["merge"], checkout, forward))
        raise WorktreeRefused("git_failed", failure_text(["merge"], checkout, forward))
    return True


def _moved(base_branch: str, detail: str) -> WorktreeRefused:
    return WorktreeRefused(
        "base_moved", f"{base_branch!r} moved while the merge was made; try again ({detail})"
    )
