"""Running git: an argv in its own process group, bounded in time and output, as a given user.

Each command goes through ``spawn_group`` like an agent run: its own session, killed whole on a
timeout or a cancellation, and reaped by its owner (the daemon is a subreaper, and a child
forked any other way would be reaped from under its waiter). A root daemon runs git as the
repository's owner, so every file git writes belongs to the user and git's ``safe.directory``
check passes.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping, Sequence
from typing import Final

import attrs
import trio

from ._errors import DaemonError, ErrorCode
from ._git import git_argv, git_environment
from ._output import output_limit_marker
from ._process import spawn_group

__all__ = ["GitResult", "GitRunner", "WorktreeRefused"]

#: Output of one git command the daemon holds at most (a diff asks for its own, smaller cap).
DEFAULT_MAX_OUTPUT: Final = 256 * 1024 * 1024
_STDERR_SHOWN: Final = 2000


class WorktreeRefused(DaemonError):
    """A worktree operation the daemon refused or git failed: ``code`` and git's own text."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)


@attrs.frozen
class GitResult:
    """How a git command ended, and what it printed (stdout exact, stderr as text)."""

    exit_code: int | None
    stdout: bytes
    stderr: str
    #: The output passed the cap: ``stdout`` is its beginning only.
    capped: bool

    @property
    def text(self) -> str:
        """Stdout as one stripped line of text (a sha, a ref name)."""
        return self.stdout.decode("utf-8", "surrogateescape").strip()


class GitRunner:
    """Runs git commands with the daemon's settings, a timeout and an output cap."""

    def __init__(
        self, *, environ: Mapping[str, str], timeout_s: float, kill_grace_s: float
    ) -> None:
        self._environ = dict(environ)
        self.timeout_s = timeout_s
        self._kill_grace_s = kill_grace_s

    async def run(
        self,
        args: Sequence[str],
        *,
        cwd: str,
        owner: tuple[int, int] | None = None,
        identity: tuple[str, str] | None = None,
        author: bool = True,
        extra_env: Mapping[str, str] | None = None,
        ok_codes: tuple[int, ...] = (0,),
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> GitResult:
        """Run ``git <args>`` in ``cwd``; an exit code outside ``ok_codes`` (or the output cap
        passed when ``max_output`` is the default) raises ``WorktreeRefused("git_failed")``
        with git's error text."""
        result = await self.run_unchecked(
            args,
            cwd=cwd,
            owner=owner,
            identity=identity,
            author=author,
            extra_env=extra_env,
            max_output=max_output,
        )
        if result.exit_code not in ok_codes:
            raise WorktreeRefused("git_failed", failure_text(args, cwd, result))
        if result.capped and max_output == DEFAULT_MAX_OUTPUT:
            raise WorktreeRefused(
                "git_failed", f"git {args[0]} in {cwd}: output passed {max_output} bytes"
            )
        return result

    async def run_unchecked(
        self,
        args: Sequence[str],
        *,
        cwd: str,
        owner: tuple[int, int] | None = None,
        identity: tuple[str, str] | None = None,
        author: bool = True,
        extra_env: Mapping[str, str] | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> GitResult:
        """Run ``git <args>`` and return how it ended, whatever the exit code; a timeout
        raises ``WorktreeRefused("git_failed")`` once every process of the command is gone."""
        home = None if owner is None else _home_of(owner[0])
        env = git_environment(self._environ, home=home, identity=identity, author=author)
        env.update(extra_env or {})
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        marker = output_limit_marker(max_output)
        capped = False
        exit_code: int | None = None
        with trio.move_on_after(self.timeout_s) as deadline:
            try:
                async with spawn_group(
                    git_argv(*args),
                    cwd=cwd,
                    env=env,
                    kill_grace=self._kill_grace_s,
                    max_output_bytes=max_output,
                    max_line_bytes=max_output + 1,
                    owner=owner,
                ) as proc:
                    async for line in proc:
                        if line.truncated and line.data == marker:
                            continue
                        (stdout if line.stream == "stdout" else stderr).append(line.data)
                    exit_code = (await proc.wait()).exit_code
                    capped = proc.output_capped
            except OSError as exc:  # no git, or the directory is gone
                raise WorktreeRefused("git_failed", f"cannot run git in {cwd}: {exc}") from None
        if deadline.cancelled_caught:
            raise WorktreeRefused(
                "git_failed",
                f"git {args[0]} in {cwd} did not finish within {self.timeout_s:g} s and was killed",
            )
        # Lines come without their newlines: git's -z output ends in NUL (exact when joined),
        # and callers that read text output end it with its newline themselves.
        return GitResult(
            exit_code=exit_code,
            stdout=b"\n".join(stdout),
            stderr=b"\n".join(stderr).decode("utf-8", "replace").strip(),
            capped=capped,
        )


def failure_text(args: Sequence[str], cwd: str, result: GitResult) -> str:
    """``git <subcommand> failed (exit N) in <cwd>: <git's error text>``."""
    how = f"exit {result.exit_code}" if result.exit_code is not None else "killed by a signal"
    said = result.stderr or result.stdout.decode("utf-8", "replace").strip()
    if len(said) > _STDERR_SHOWN:
        said = said[:_STDERR_SHOWN] + "…"
    return f"git {args[0]} failed ({how}) in {cwd}: {said or '(no output)'}"


def _home_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return os.sep


def owner_of(path: str) -> tuple[int, int] | None:
    """Whom git runs as for the repository at ``path``: its owner when the daemon is root and
    the owner is not, else None (the daemon itself)."""
    if os.geteuid() != 0:
        return None
    try:
        info = os.stat(path)
    except OSError:  # gone: git, run as the daemon, will say what is missing
        return None
    return None if info.st_uid == 0 else (info.st_uid, info.st_gid)
