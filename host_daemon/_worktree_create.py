"""The steps of making a worktree: find the repository, resolve the base, check that it can be
isolated, and carry the checkout's uncommitted changes over without touching the checkout.

``WorktreeManager.create`` strings these together under its locks; each runs git through a
``GitRunner`` as the repository's owner.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Final

import trio

from ._git import DEFAULT_IDENTITY, parse_ls_tree
from ._git_runner import GitRunner, WorktreeRefused, failure_text, owner_of
from ._records import WorktreeCreate
from ._worktree_files import make_private_dir, remove_inside

__all__ = [
    "apply_snapshot",
    "inspect_base",
    "repository_identity",
    "repository_top",
    "resolve_base",
    "snapshot_changes",
]

Owner = tuple[int, int] | None

_SNAPSHOT_MESSAGE: Final = "Uncommitted changes of the checkout when the task started"


async def repository_top(git: GitRunner, project: str) -> str | None:
    """The real top level of the repository ``project`` is in; None outside any."""
    result = await git.run_unchecked(
        ["rev-parse", "--show-toplevel"], cwd=project, owner=owner_of(project)
    )
    if result.exit_code == 0 and result.text:
        return await trio.to_thread.run_sync(os.path.realpath, result.text)
    if "not a git repository" in result.stderr or "must be run in a work tree" in result.stderr:
        return None
    raise WorktreeRefused("git_failed", failure_text(["rev-parse"], project, result))


async def resolve_base(
    git: GitRunner, request: WorktreeCreate, top: str, owner: Owner
) -> tuple[str, str | None]:
    """The base commit and the local branch it came from (None: a detached commit)."""
    ref = request.base_ref or "HEAD"
    resolved = await git.run_unchecked(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        cwd=top,
        owner=owner,
    )
    if resolved.exit_code != 0 or not resolved.text:
        raise WorktreeRefused(
            "invalid_request", f"{ref!r} names no commit in {top} (an empty repository?)"
        )
    if request.base_ref is None:
        head = await git.run(
            ["symbolic-ref", "--quiet", "HEAD"], cwd=top, owner=owner, ok_codes=(0, 1)
        )
        branch = head.text.removeprefix("refs/heads/") if head.exit_code == 0 else None
        return resolved.text, branch
    name = request.base_ref.removeprefix("refs/heads/")
    local = await git.run(
        ["rev-parse", "--verify", "--quiet", f"refs/heads/{name}"],
        cwd=top,
        owner=owner,
        ok_codes=(0, 1),
    )
    return resolved.text, name if local.exit_code == 0 else None


async def inspect_base(git: GitRunner, top: str, owner: Owner, base: str) -> tuple[int, str | None]:
    """The size of the base's files, and why it cannot be isolated (submodules, LFS)."""
    listing = await git.run(["ls-tree", "-r", "-l", "-z", base], cwd=top, owner=owner)
    entries = parse_ls_tree(listing.stdout)
    why = None
    if any(e.mode == "160000" or e.path == ".gitmodules" for e in entries):
        why = "the repository uses submodules, which a worktree would leave empty"
    else:
        for entry in entries:
            if entry.path.rpartition("/")[2] != ".gitattributes" or entry.kind != "blob":
                continue
            blob = await git.run(["cat-file", "blob", f"{base}:{entry.path}"], cwd=top, owner=owner)
            if b"filter=lfs" in blob.stdout:
                why = (
                    f"the repository stores files with Git LFS ({entry.path}), whose content "
                    "a worktree would not have"
                )
                break
    return sum(entry.size for entry in entries), why


async def snapshot_changes(
    git: GitRunner, top: str, owner: Owner, identity: tuple[str, str], scratch: str
) -> str | None:
    """A commit of the checkout's uncommitted changes (tracked and untracked, not ignored)
    on top of its HEAD, made through a temporary index in the new directory ``scratch``
    (removed after): the checkout, its index included, is not touched."""
    try:
        await trio.to_thread.run_sync(make_private_dir, scratch, owner)
        index = os.path.join(scratch, "index")
        git_index = await git.run(
            ["rev-parse", "--path-format=absolute", "--git-path", "index"],
            cwd=top,
            owner=owner,
        )
        await trio.to_thread.run_sync(_copy_index, git_index.text, index, owner)
        env = {"GIT_INDEX_FILE": index}
        await git.run(["add", "-A"], cwd=top, owner=owner, extra_env=env)
        tree = (await git.run(["write-tree"], cwd=top, owner=owner, extra_env=env)).text
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(remove_inside, scratch, os.path.dirname(scratch))
    head_tree = await git.run(["rev-parse", "HEAD^{tree}"], cwd=top, owner=owner)
    if tree == head_tree.text:
        return None
    made = await git.run(
        ["commit-tree", tree, "-p", "HEAD", "-m", _SNAPSHOT_MESSAGE],
        cwd=top,
        owner=owner,
        identity=identity,
    )
    return made.text


async def apply_snapshot(
    git: GitRunner, snapshot: str, path: str, owner: Owner, identity: tuple[str, str]
) -> None:
    """Replay the snapshot of the checkout's changes onto the new branch."""
    picked = await git.run_unchecked(
        ["cherry-pick", "--allow-empty", snapshot], cwd=path, owner=owner, identity=identity
    )
    if picked.exit_code != 0:
        raise WorktreeRefused(
            "git_failed",
            "the checkout's uncommitted changes do not apply on the base: "
            + failure_text(["cherry-pick"], path, picked),
        )


async def repository_identity(git: GitRunner, repo: str, owner: Owner) -> tuple[str, str]:
    """The repository's ``user.name`` and ``user.email`` if both are set, else the daemon's."""
    found = await git.run(
        ["config", "-z", "--get-regexp", r"^user\.(name|email)$"],
        cwd=repo,
        owner=owner,
        ok_codes=(0, 1),
    )
    values: dict[bytes, str] = {}
    for entry in found.stdout.split(b"\0"):
        setting, _, value = entry.partition(b"\n")
        values[setting.lower()] = value.decode("utf-8", "replace")
    name, email = values.get(b"user.name", ""), values.get(b"user.email", "")
    return (name, email) if name and email else DEFAULT_IDENTITY


def _copy_index(source: str, target: str, owner: tuple[int, int] | None) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.copyfile(source, target, follow_symlinks=False)
        if owner is not None:
            os.chown(target, owner[0], owner[1])
