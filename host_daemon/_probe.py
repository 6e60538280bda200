"""Answering a probe: which agent CLIs the daemon finds, their versions, whether they run live.

A CLI's ``--version`` may take a second, so its answer is remembered until the file changes,
and a failure is reported as is for a while (``_RETRY_VERSION_S``) instead of being retried by
every probe. Whether a CLI can run live turns (``_live_adapters.LIVE_CHECKS``: its help shows
the live interface) is remembered the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Final

import trio

from ._agents import ADAPTERS, AgentVersionError, agent_version
from ._live_adapters import LIVE_ADAPTERS, LIVE_CHECKS
from ._process import spawn_group
from ._records import AGENT_NAMES, AgentInfo, AgentName

__all__ = ["AgentVersions"]

#: How long a CLI gets to answer ``--version`` in a probe (they answer in milliseconds). With
#: the kill grace of ``agent_version`` it stays below the 5 s the MCP server gives a probe, so
#: that a hung CLI shows as that agent's error rather than as a daemon that does not answer.
_PROBE_VERSION_TIMEOUT_S: Final = 3.0
#: A failed ``--version`` is reported as is to probes within this time, unless the file changed:
#: probes waiting on a hung CLI get its error at once instead of each waiting out the timeout.
_RETRY_VERSION_S: Final = 10.0
#: A CLI's help output read for the live check, at most.
_HELP_MAX_OUTPUT: Final = 256 * 1024
NO_LIVE_NOTE: Final = "disabled by --no-live"
#: How long a CLI's help may take when a live request waits on the answer (the probe's answer
#: stays quick; an unanswered check is not remembered, so either may ask again).
_LIVE_CHECK_TIMEOUT_S: Final = 30.0
#: The most a probe may ask to wait for a CLI not yet known (``ProbeRequest.cli_wait_s``).
_MAX_CLI_WAIT_S: Final = 60.0


async def help_output(
    executable: str, args: Sequence[str], env: Mapping[str, str], timeout: float
) -> tuple[int | None, str]:
    """``executable ARGS``' exit code (None: no answer in time) and its output, both streams."""
    lines: list[str] = []
    status = None
    with trio.move_on_after(timeout):
        async with spawn_group(
            [executable, *args],
            cwd=os.sep,
            env=env,
            kill_grace=1.0,
            max_output_bytes=_HELP_MAX_OUTPUT,
        ) as proc:
            lines = [line.data.decode("utf-8", errors="replace") async for line in proc]
            status = await proc.wait()
    return (None if status is None else status.exit_code), "\n".join(lines)


class AgentVersions:
    """The agent CLIs found in ``environ``, with their versions, cached per CLI file."""

    def __init__(self, environ: Mapping[str, str], *, live: bool = True) -> None:
        self.environ = environ
        #: False (``--no-live``): no agent runs live, whatever its CLI can do.
        self.live = live
        #: Per CLI path: the file's identity when checked, and why it cannot run live (or None).
        self._live: dict[str, tuple[tuple[int, int], str | None]] = {}
        #: Per CLI path: the file's identity (inode, mtime) when it answered, and its version.
        self._versions: dict[str, tuple[tuple[int, int], str]] = {}
        self._version_locks: dict[str, trio.Lock] = {}
        #: Per CLI path: its identity, why ``--version`` failed, and when (``trio.current_time``).
        self._version_failures: dict[str, tuple[tuple[int, int], str, float]] = {}

    async def describe_all(self, cli_wait_s: float | None = None) -> list[AgentInfo]:
        """Every agent, in ``AGENT_NAMES`` order; the CLIs not yet known answer ``--version`` and
        the live check concurrently, each within ``cli_wait_s`` (by default the probe's few
        seconds, ``_PROBE_VERSION_TIMEOUT_S``; at most ``_MAX_CLI_WAIT_S``)."""
        found: dict[str, AgentInfo] = {}
        wait = (
            _PROBE_VERSION_TIMEOUT_S
            if cli_wait_s is None
            else min(max(cli_wait_s, _PROBE_VERSION_TIMEOUT_S), _MAX_CLI_WAIT_S)
        )

        async def describe(name: AgentName) -> None:
            found[name] = await self._agent_info(name, wait)

        async with trio.open_nursery() as nursery:
            for name in AGENT_NAMES:
                nursery.start_soon(describe, name)
        return [found[name] for name in AGENT_NAMES]

    async def _agent_info(self, name: AgentName, wait: float) -> AgentInfo:
        """One agent CLI: where it is and its version, or why not."""
        adapter = ADAPTERS.get(name)
        path = adapter.find_executable(self.environ) if adapter is not None else None
        if adapter is None or path is None:
            env_var = adapter.env_var if adapter is not None else ""
            return AgentInfo(name=name, path=None, version=None, error=f"not found ({env_var})")
        try:
            version = await self._version(path, wait)
        except (AgentVersionError, OSError) as exc:  # a broken CLI is reported, not fatal
            return AgentInfo(name=name, path=path, version=None, error=str(exc))
        live, note = await self._live_support(name, path, wait)
        return AgentInfo(name=name, path=path, version=version, live=live, live_note=note)

    async def live_support(self, name: str) -> tuple[bool, str | None]:
        """Whether agent ``name`` can run live turns here, and a note (why not, or how).

        For a live request: a CLI slow to answer its help (a loaded host, a cold node) gets
        ``_LIVE_CHECK_TIMEOUT_S``, not the probe's few seconds.
        """
        adapter = ADAPTERS.get(name)
        path = adapter.find_executable(self.environ) if adapter is not None else None
        if path is None:
            return False, f"{name} not found"
        return await self._live_support(name, path, _LIVE_CHECK_TIMEOUT_S)

    async def _live_support(
        self, name: str, path: str, timeout: float = _PROBE_VERSION_TIMEOUT_S
    ) -> tuple[bool, str | None]:
        check = LIVE_CHECKS.get(name)
        if not self.live:
            return False, NO_LIVE_NOTE
        if name not in LIVE_ADAPTERS or check is None:
            return False, f"this daemon has no live driver for {name}"
        async with self._version_locks.setdefault(path, trio.Lock()):
            try:
                stat = await trio.Path(path).stat()
            except OSError as exc:
                return False, f"{path}: {exc.strerror or exc}"
            identity = (stat.st_ino, stat.st_mtime_ns)
            cached = self._live.get(path)
            if cached is None or cached[0] != identity:
                try:
                    code, output = await help_output(path, check.args, self.environ, timeout)
                except OSError as exc:
                    cached = self._live[path] = (
                        identity,
                        f"cannot run {path}: {exc.strerror or exc}",
                    )
                else:
                    if code is None:  # no answer in time: said, but not remembered
                        shown = " ".join([path, *check.args])
                        return False, f"{shown} did not answer within {timeout:g} s"
                    cached = self._live[path] = (identity, check.verdict(code, output))
        why = cached[1]
        return (True, check.how) if why is None else (False, why)

    async def _version(self, path: str, wait: float = _PROBE_VERSION_TIMEOUT_S) -> str:
        """``path --version`` within ``wait``, remembered until the file changes (a CLI may take
        a second); a probe that waits longer than the default asks again after a failure."""
        # One ``--version`` per CLI at a time: concurrent probes wait for it instead of each
        # spawning its own.
        async with self._version_locks.setdefault(path, trio.Lock()):
            stat = await trio.Path(path).stat()
            identity = (stat.st_ino, stat.st_mtime_ns)
            cached = self._versions.get(path)
            if cached is not None and cached[0] == identity:
                return cached[1]
            failed = self._version_failures.get(path)
            now = trio.current_time()
            patient = wait > _PROBE_VERSION_TIMEOUT_S
            recent = failed is not None and now - failed[2] < _RETRY_VERSION_S
            if failed is not None and failed[0] == identity and recent and not patient:
                raise AgentVersionError(failed[1])
            try:
                version = await agent_version(path, env=self.environ, timeout=wait)
            except AgentVersionError as exc:
                self._version_failures[path] = (identity, str(exc), trio.current_time())
                raise
            self._version_failures.pop(path, None)
            self._versions[path] = (identity, version)
            return version
