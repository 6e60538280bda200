"""Git without I/O: names the daemon accepts, the argv it runs, and parsers of git's ``-z`` output.

Everything here is plain code on strings and bytes, tested without git; ``_git_runner`` runs the
argv built here and ``_worktrees`` strings the steps together. Output is always asked for in
git's ``-z`` form, where paths are NUL-terminated and never quoted, so any file name survives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from ._agents import plain_name_error
from ._records import FileStat
from ._strict import describe_structure_error, make_strict_converter

__all__ = [
    "BRANCH_PREFIX",
    "DEFAULT_IDENTITY",
    "GIT_CONFIG",
    "MergeTreeResult",
    "StatusEntry",
    "WorktreeMeta",
    "branch_name_error",
    "decode_path",
    "dump_meta",
    "git_argv",
    "git_environment",
    "key_error",
    "load_meta",
    "looks_like_meta",
    "parse_commit_log",
    "parse_diff_files",
    "parse_ls_tree",
    "parse_merge_tree",
    "parse_name_list",
    "parse_status",
    "parse_worktree_list",
]

BRANCH_PREFIX: Final = "coding-agent/"
#: Author and committer of the daemon's commits unless the repository names its own.
DEFAULT_IDENTITY: Final = ("Coding Agent", "coding-agent@localhost")
#: Longest branch name accepted: every component must fit a file name (255 bytes).
_MAX_BRANCH_BYTES: Final = 200

#: Settings every git command runs with: no hooks of the user's repository run daemon-side,
#: no colour or pager, no external diff or text conversion, paths never quoted.
GIT_CONFIG: Final[tuple[str, ...]] = (
    "core.hooksPath=/dev/null",
    "core.quotePath=false",
    "core.pager=cat",
    "color.ui=never",
    "diff.external=",
    "diff.noprefix=false",
    "diff.mnemonicPrefix=false",
    "advice.detachedHead=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "gc.auto=0",
    "maintenance.auto=false",
)

# check-ref-format: no control characters, space, ~ ^ : ? * [ \ anywhere.
_BAD_REF_CHARS: Final = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def branch_name_error(name: str) -> str | None:
    """Why ``name`` is no branch the daemon makes (``git check-ref-format --branch`` rules
    under ``coding-agent/``), else None."""
    shown = name if len(name) <= 60 else name[:60] + "…"
    problem = _branch_problem(name)
    return None if problem is None else f"expected a branch name {problem}, got {shown!r}"


def _branch_problem(name: str) -> str | None:
    components = name.split("/")
    checks = (
        (
            name.startswith(BRANCH_PREFIX) and len(name) > len(BRANCH_PREFIX),
            f"under {BRANCH_PREFIX!r}",
        ),
        (
            len(name.encode("utf-8", "surrogatepass")) <= _MAX_BRANCH_BYTES,
            f"of at most {_MAX_BRANCH_BYTES} bytes",
        ),
        (
            not _BAD_REF_CHARS.search(name),
            "without spaces, control characters or any of ~ ^ : ? * [ \\",
        ),
        (".." not in name and "@{" not in name and "//" not in name, "without '..', '@{' or '//'"),
        (not name.endswith(("/", ".")), "that does not end with '/' or '.'"),
        (
            not any(c.startswith(".") or c.endswith(".lock") for c in components),
            "whose components neither start with '.' nor end with '.lock'",
        ),
    )
    return next((problem for passed, problem in checks if not passed), None)


def key_error(key: str) -> str | None:
    """Why ``key`` is no worktree key (a plain name without '/'), else None."""
    problem = plain_name_error(key)
    if problem is None and "/" in key:
        problem = f"expected a name without '/', got {key!r}"
    return problem


def git_argv(*args: str) -> list[str]:
    """``git`` with the daemon's settings (:data:`GIT_CONFIG`), then ``args``."""
    argv = ["git"]
    for setting in GIT_CONFIG:
        argv += ["-c", setting]
    argv += args
    return argv


def git_environment(
    environ: Mapping[str, str],
    *,
    home: str | None = None,
    identity: tuple[str, str] | None = None,
    author: bool = True,
) -> dict[str, str]:
    """The environment git runs in: the daemon's, minus ``GIT_*`` (a stray ``GIT_DIR`` would
    aim every command elsewhere), never prompting, in the C locale; ``home`` and ``identity``
    when given (as committer, and as author unless ``author`` is False: a replayed commit keeps
    its author)."""
    env = {name: value for name, value in environ.items() if not name.startswith("GIT_")}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="true",
        GIT_EDITOR="true",
        GIT_PAGER="cat",
        PAGER="cat",
        LC_ALL="C",
        LANGUAGE="C",
    )
    if home is not None:
        env["HOME"] = home
    if identity is not None:
        name, email = identity
        env.update(GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email)
        if author:
            env.update(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email)
    return env


def decode_path(raw: bytes) -> str:
    """A path from git's output as a str (undecodable bytes kept as surrogates)."""
    return raw.decode("utf-8", "surrogateescape")


def _fields(data: bytes) -> list[bytes]:
    """NUL-terminated fields (the last terminator may be missing)."""
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


@attrs.frozen
class StatusEntry:
    """One line of ``git status --porcelain=v1 -z``: the two status letters and the path(s)."""

    code: str
    path: str
    orig_path: str | None = None


def parse_status(data: bytes) -> list[StatusEntry]:
    """Parse ``git status --porcelain=v1 -z``; a rename or copy carries its source path."""
    fields = _fields(data)
    entries = []
    index = 0
    while index < len(fields):
        field = fields[index]
        if len(field) < 4 or field[2:3] != b" ":
            raise ValueError(f"expected 'XY PATH' in git status output, got {field[:80]!r}")
        code = field[:2].decode("ascii", "replace")
        orig = None
        if "R" in code or "C" in code:
            index += 1
            if index >= len(fields):
                raise ValueError(f"git status: rename of {field[3:]!r} lacks its source path")
            orig = decode_path(fields[index])
        entries.append(StatusEntry(code, decode_path(field[3:]), orig))
        index += 1
    return entries


_STATUS_NAMES: Final = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed"}


def parse_diff_files(numstat: bytes, name_status: bytes) -> list[FileStat]:
    """Per-file figures from ``git diff --numstat -z -M`` and ``--name-status -z -M`` of the
    same two commits (a binary file has no line counts: None)."""
    statuses: dict[str, str] = {}
    fields = _fields(name_status)
    index = 0
    while index < len(fields):
        letter = fields[index][:1].decode("ascii", "replace")
        if letter in ("R", "C"):
            path = decode_path(fields[index + 2])
            index += 3
        else:
            path = decode_path(fields[index + 1])
            index += 2
        statuses[path] = _STATUS_NAMES.get(letter, "other")
    stats = []
    fields = _fields(numstat)
    index = 0
    while index < len(fields):
        added, removed, rest = fields[index].split(b"\t", 2)
        if rest:
            path = decode_path(rest)
            index += 1
        else:  # a rename: the source and destination follow as fields of their own
            path = decode_path(fields[index + 2])
            index += 3
        stats.append(
            FileStat(
                path=path,
                added=None if added == b"-" else int(added),
                removed=None if removed == b"-" else int(removed),
                status=statuses.get(path, "other"),  # type: ignore[arg-type]  # the table's values
            )
        )
    return stats


def parse_name_list(data: bytes) -> list[str]:
    """Paths from a ``--name-only -z`` listing, in order, each once."""
    return list(dict.fromkeys(decode_path(field) for field in _fields(data)))


@attrs.frozen
class TreeEntry:
    """One blob or gitlink of ``git ls-tree -r -l -z``."""

    mode: str
    kind: str
    size: int
    path: str


def parse_ls_tree(data: bytes) -> list[TreeEntry]:
    """Parse ``git ls-tree -r -l -z``: ``MODE TYPE OID SIZE\\tPATH`` (size ``-`` for gitlinks)."""
    entries = []
    for field in _fields(data):
        head, _, path = field.partition(b"\t")
        mode, kind, _oid, size = head.split()
        entries.append(
            TreeEntry(
                mode.decode("ascii"),
                kind.decode("ascii"),
                0 if size == b"-" else int(size),
                decode_path(path),
            )
        )
    return entries


@attrs.frozen
class MergeTreeResult:
    """``git merge-tree --write-tree``: the merged tree, and the files that conflict."""

    tree: str
    conflicts: list[str]


def parse_merge_tree(data: bytes) -> MergeTreeResult:
    """Parse ``git merge-tree --write-tree --name-only --no-messages -z``."""
    fields = _fields(data)
    if not fields or not re.fullmatch(rb"[0-9a-f]{40,64}", fields[0]):
        raise ValueError(f"expected a tree id from git merge-tree, got {data[:80]!r}")
    return MergeTreeResult(fields[0].decode("ascii"), parse_name_list(b"\0".join(fields[1:])))


#: ``git log -z`` format: sha, author, ISO date, subject, body; commits end with a NUL.
LOG_FORMAT: Final = "--format=%H%x00%an <%ae>%x00%aI%x00%s%x00%b"
_LOG_FIELDS: Final = 5


@attrs.frozen
class LogEntry:
    """One commit of ``git log -z`` in :data:`LOG_FORMAT`."""

    sha: str
    author: str
    at: str
    subject: str
    body: str


def parse_commit_log(data: bytes) -> list[LogEntry]:
    """Parse ``git log -z`` output in :data:`LOG_FORMAT` (a commit message holds no NUL)."""
    fields = [field.decode("utf-8", "replace") for field in _fields(data)]
    if len(fields) % _LOG_FIELDS:
        raise ValueError(f"expected {_LOG_FIELDS} fields per commit, got {len(fields)} in all")
    return [
        LogEntry(sha, author, at, subject, body.strip("\n"))
        for sha, author, at, subject, body in (
            fields[i : i + _LOG_FIELDS] for i in range(0, len(fields), _LOG_FIELDS)
        )
    ]


def parse_worktree_list(data: bytes) -> dict[str, str]:
    """``git worktree list --porcelain -z``: each checked-out branch's ref → its worktree path."""
    checked_out: dict[str, str] = {}
    path: str | None = None
    for field in data.split(b"\0"):
        if field.startswith(b"worktree "):
            path = decode_path(field[len(b"worktree ") :])
        elif field.startswith(b"branch ") and path is not None:
            checked_out[decode_path(field[len(b"branch ") :])] = path
    return checked_out


@attrs.frozen
class WorktreeMeta:
    """What the daemon keeps about one worktree, in ``<worktrees dir>/<key>.json``."""

    key: str
    repo: str
    path: str
    subdir: str
    branch: str
    base_branch: str | None
    base_commit: str
    created_at: float


_CONVERTER: Final = make_strict_converter()


def dump_meta(meta: WorktreeMeta) -> bytes:
    """The metadata file's bytes."""
    return json.dumps(_CONVERTER.unstructure(meta), indent=1, sort_keys=True).encode() + b"\n"


def looks_like_meta(data: bytes) -> bool:
    """Whether ``data`` has the shape of a metadata file (whatever its values): the sweep
    removes only such files, never a foreign ``something.json``."""
    try:
        raw = json.loads(data)
    except ValueError:
        return False
    fields = {field.name for field in attrs.fields(WorktreeMeta)}
    return isinstance(raw, dict) and set(raw) == fields


def load_meta(data: bytes, *, key: str, path: str) -> WorktreeMeta:
    """Parse a metadata file, checking it describes worktree ``key`` at ``path`` (the only
    place the daemon ever puts one), else ``ValueError`` saying what is wrong."""
    try:
        raw = json.loads(data)
        meta = _CONVERTER.structure(raw, WorktreeMeta)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    except Exception as exc:  # cattrs raises its own groups; every one means "invalid"
        raise ValueError(describe_structure_error(exc)) from None
    problem = branch_name_error(meta.branch) or key_error(meta.key)
    if problem:
        raise ValueError(problem)
    if meta.key != key or meta.path != path:
        raise ValueError(
            f"expected worktree {key!r} at {path!r}, got {meta.key!r} at {meta.path!r}"
        )
    return meta


def shorten(values: Sequence[str], limit: int = 20) -> str:
    """A list of paths for an error message, cut after ``limit`` with a count."""
    shown = ", ".join(values[:limit])
    return shown if len(values) <= limit else f"{shown} and {len(values) - limit} more"
