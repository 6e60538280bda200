"""The sans-IO git layer: branch-name rules (checked against git itself) and the ``-z`` parsers
(fed real git output for awkward file names)."""

from __future__ import annotations

import pathlib
import subprocess
import time

import pytest
from _support.git_repos import commit_files, git, git_env, make_repo, write_files

from host_daemon._git import (
    LOG_FORMAT,
    WorktreeMeta,
    branch_name_error,
    dump_meta,
    git_environment,
    key_error,
    load_meta,
    parse_commit_log,
    parse_diff_files,
    parse_ls_tree,
    parse_merge_tree,
    parse_status,
    parse_worktree_list,
)
from host_daemon._records import FileStat

BRANCHES = [
    "coding-agent/abc12345-fix-the-bug",
    "coding-agent/a/b/c",
    "coding-agent/ünïcode",
    "coding-agent/x@y",
    "coding-agent/a..b",
    "coding-agent/a b",
    "coding-agent/a~1",
    "coding-agent/a^",
    "coding-agent/a:b",
    "coding-agent/a?",
    "coding-agent/a*",
    "coding-agent/a[b",
    "coding-agent/a\\b",
    "coding-agent/a\tb",
    "coding-agent/a@{1}",
    "coding-agent/.hidden",
    "coding-agent/x.lock",
    "coding-agent/x.lock/y",
    "coding-agent/x/",
    "coding-agent//x",
    "coding-agent/x.",
    "coding-agent/a\x7fb",
]

#: Names git accepts that the daemon refuses: outside its prefix.
OUTSIDE_PREFIX = ["main", "feature/x", "coding-agent", "coding-agent/", "-coding-agent/x"]

AWKWARD = ["with space.txt", "tab\there.txt", "new\nline.txt", 'quote"d.txt', "ünï.txt"]


def _git_accepts(name: str) -> bool:
    done = subprocess.run(
        ["git", "check-ref-format", "--branch", name], capture_output=True, check=False
    )
    return done.returncode == 0


@pytest.mark.parametrize("name", BRANCHES)
def test_branch_rules_agree_with_git(name: str) -> None:
    """Under ``coding-agent/``, a name is accepted exactly when ``git check-ref-format
    --branch`` accepts it."""
    assert (branch_name_error(name) is None) == _git_accepts(name)


@pytest.mark.parametrize("name", OUTSIDE_PREFIX)
def test_branch_outside_the_prefix_refused(name: str) -> None:
    """A branch not under ``coding-agent/`` is refused, saying which prefix was expected."""
    problem = branch_name_error(name)
    assert problem is not None
    assert "'coding-agent/'" in problem


def test_overlong_branch_refused() -> None:
    """A branch name longer than a file name can hold is refused with the limit."""
    problem = branch_name_error("coding-agent/" + "x" * 300)
    assert problem is not None
    assert "200 bytes" in problem


@pytest.mark.parametrize("key", ["a/b", "", "-x", ".x", "x" * 200])
def test_bad_keys(key: str) -> None:
    """A key must be a plain name without '/'."""
    assert key_error(key) is not None


def test_good_key() -> None:
    """A task id is a good key."""
    assert key_error("3f2a9c1e-7b4d-4e8a-9c1f-2b3a4c5d6e7f") is None


def test_environment_drops_git_variables() -> None:
    """``GIT_DIR`` and friends from the daemon's environment never reach git; prompts are off."""
    env = git_environment({"GIT_DIR": "/elsewhere", "PATH": "/bin", "GIT_WORK_TREE": "/x"})
    assert "GIT_DIR" not in env
    assert "GIT_WORK_TREE" not in env
    assert (env["PATH"], env["GIT_TERMINAL_PROMPT"], env["LC_ALL"]) == ("/bin", "0", "C")


def test_environment_identity_as_committer_only() -> None:
    """``author=False`` sets the committer and leaves the author to the commit replayed."""
    env = git_environment({}, identity=("N", "e@x"), author=False)
    assert (env["GIT_COMMITTER_NAME"], env["GIT_COMMITTER_EMAIL"]) == ("N", "e@x")
    assert "GIT_AUTHOR_NAME" not in env


def test_parse_status_of_awkward_names(tmp_path: pathlib.Path) -> None:
    """Every awkward name, a staged rename and a deletion come through ``status -z`` exactly."""
    repo = make_repo(tmp_path / "repo", {"old.txt": "o\n" * 10, "del.txt": "d\n"})
    write_files(repo, dict.fromkeys(AWKWARD, "x\n"))
    git(repo, "mv", "old.txt", "moved.txt")
    (repo / "del.txt").unlink()
    raw = subprocess.run(
        ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all"],
        cwd=repo,
        env=git_env(tmp_path / "home"),
        capture_output=True,
        check=True,
    ).stdout
    entries = {entry.path: entry for entry in parse_status(raw)}
    assert set(entries) == {*AWKWARD, "moved.txt", "del.txt"}
    assert (entries["moved.txt"].code, entries["moved.txt"].orig_path) == ("R ", "old.txt")
    assert entries["del.txt"].code == " D"
    assert entries["new\nline.txt"].code == "??"


def test_parse_status_refuses_garbage() -> None:
    """Output that is no porcelain status is a ValueError, not a wrong answer."""
    with pytest.raises(ValueError, match="expected 'XY PATH'"):
        parse_status(b"nonsense\0")


def test_parse_diff_files_of_awkward_names(tmp_path: pathlib.Path) -> None:
    """``numstat -z`` and ``name-status -z`` give each file's counts and status, renames and
    binaries included."""
    repo = make_repo(tmp_path / "repo", {"old.txt": "same\n" * 10, "m.txt": "1\n2\n"})
    base = git(repo, "rev-parse", "HEAD").strip()
    write_files(repo, {**dict.fromkeys(AWKWARD, "x\n"), "m.txt": "1\nTWO\n3\n"})
    write_files(repo, {"bin.dat": bytes(range(256))})
    git(repo, "mv", "old.txt", "new name.txt")
    head = commit_files(repo, {}, "changes")

    def run(*args: str) -> bytes:
        command = ["git", "diff", *args, "-z", "-M", base, head]
        return subprocess.run(
            command, cwd=repo, env=git_env(tmp_path / "home"), capture_output=True, check=True
        ).stdout

    stats = {s.path: s for s in parse_diff_files(run("--numstat"), run("--name-status"))}
    assert stats["m.txt"] == FileStat("m.txt", 2, 1, "modified")
    assert stats["new name.txt"] == FileStat("new name.txt", 0, 0, "renamed")
    assert stats["bin.dat"] == FileStat("bin.dat", None, None, "added")
    for name in AWKWARD:
        assert stats[name] == FileStat(name, 1, 0, "added")


def test_parse_ls_tree_sizes_and_gitlinks() -> None:
    """``ls-tree -r -l -z`` entries give mode, type, size (0 for a gitlink) and path."""
    raw = (
        b"100644 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391      12\ta b.txt\0"
        b"160000 commit 1234567890123456789012345678901234567890       -\tsub\0"
    )
    entries = parse_ls_tree(raw)
    assert [(e.mode, e.kind, e.size, e.path) for e in entries] == [
        ("100644", "blob", 12, "a b.txt"),
        ("160000", "commit", 0, "sub"),
    ]


def test_parse_merge_tree_conflicts(tmp_path: pathlib.Path) -> None:
    """A conflicting ``merge-tree --write-tree`` names each conflicting file once."""
    repo = make_repo(tmp_path / "repo", {"a b.txt": "1\n2\n3\n", "ok.txt": "ok\n"})
    git(repo, "checkout", "--quiet", "-b", "side")
    commit_files(repo, {"a b.txt": "1\nSIDE\n3\n", "ok.txt": "side\n"}, "side")
    git(repo, "checkout", "--quiet", "main")
    commit_files(repo, {"a b.txt": "1\nMAIN\n3\n"}, "main")
    done = subprocess.run(
        ["git", "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", "main", "side"],
        cwd=repo,
        env=git_env(tmp_path / "home"),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 1
    result = parse_merge_tree(done.stdout)
    assert result.conflicts == ["a b.txt"]
    assert len(result.tree) == 40


def test_parse_merge_tree_refuses_garbage() -> None:
    """Output without a tree id is a ValueError."""
    with pytest.raises(ValueError, match="expected a tree id"):
        parse_merge_tree(b"fatal: nope\0")


def test_parse_commit_log(tmp_path: pathlib.Path) -> None:
    """``log -z`` in the daemon's format gives sha, author, date, subject and body per commit."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    write_files(repo, {"a.txt": "b\n"})
    git(repo, "commit", "--quiet", "-am", "subject line", "-m", "body\n\nmore body")
    raw = subprocess.run(
        ["git", "log", "-z", "--reverse", LOG_FORMAT],
        cwd=repo,
        env=git_env(tmp_path / "home"),
        capture_output=True,
        check=True,
    ).stdout
    first, second = parse_commit_log(raw)
    assert (first.subject, first.body) == ("initial", "")
    assert (second.subject, second.body) == ("subject line", "body\n\nmore body")
    assert second.author == "Test User <test@example.invalid>"
    assert second.sha == git(repo, "rev-parse", "HEAD").strip()


def test_parse_worktree_list() -> None:
    """``worktree list --porcelain -z`` maps each checked-out branch to its worktree."""
    raw = (
        b"worktree /r\0HEAD aaaa\0branch refs/heads/main\0\0"
        b"worktree /w/t\0HEAD bbbb\0detached\0\0"
        b"worktree /w/u\0HEAD cccc\0branch refs/heads/coding-agent/u\0\0"
    )
    assert parse_worktree_list(raw) == {
        "refs/heads/main": "/r",
        "refs/heads/coding-agent/u": "/w/u",
    }


def _meta(**fields: object) -> WorktreeMeta:
    values: dict[str, object] = {
        "key": "t",
        "repo": "/repo",
        "path": "/wt/t",
        "subdir": "",
        "branch": "coding-agent/t",
        "base_branch": "main",
        "base_commit": "a" * 40,
        "created_at": time.time(),
    }
    values.update(fields)
    return WorktreeMeta(**values)  # type: ignore[arg-type]


def test_metadata_round_trip() -> None:
    """Metadata written is read back equal."""
    meta = _meta()
    assert load_meta(dump_meta(meta), key="t", path="/wt/t") == meta


def test_metadata_for_another_place_refused() -> None:
    """Metadata whose path is not where the key's worktree lives is refused."""
    with pytest.raises(ValueError, match="expected worktree 't' at '/wt/t'"):
        load_meta(dump_meta(_meta(path="/etc")), key="t", path="/wt/t")


def test_metadata_with_a_foreign_branch_refused() -> None:
    """Metadata naming a branch outside ``coding-agent/`` is refused (never deleted)."""
    with pytest.raises(ValueError, match="coding-agent/"):
        load_meta(dump_meta(_meta(branch="main")), key="t", path="/wt/t")


def test_metadata_garbage_refused() -> None:
    """A metadata file that is no JSON, or lacks a field, is a ValueError saying so."""
    with pytest.raises(ValueError, match="not JSON"):
        load_meta(b"{", key="t", path="/wt/t")
    with pytest.raises(ValueError, match="base_commit"):
        load_meta(b'{"key": "t"}', key="t", path="/wt/t")
