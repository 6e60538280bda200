"""The live check: a CLI's help, read once per CLI file, and never a slow answer remembered."""

from __future__ import annotations

import os
import pathlib

from _support.daemon import running_daemon
from _support.slow_help import SLOW_FIRST_VERSION, VERSION_THEN_SLOW_FIRST_HELP, slow_gemini

import host_daemon
from host_daemon._live_adapters import LIVE_CHECKS
from host_daemon._probe import AgentVersions

_LIVE = (True, LIVE_CHECKS["gemini"].how)


async def test_a_help_that_times_out_is_not_remembered(tmp_path: pathlib.Path) -> None:
    """A probe's check that timed out says so; the next check asks again and finds live."""
    gemini = slow_gemini(tmp_path)
    versions = AgentVersions({"GEMINI_PATH": str(gemini), "PATH": os.environ["PATH"]})
    live, note = await versions._live_support("gemini", str(gemini))
    assert live is False
    assert note is not None
    assert "did not answer within 3 s" in note
    assert await versions.live_support("gemini") == _LIVE
    assert await versions.live_support("gemini") == _LIVE
    assert (tmp_path / "helps").read_text() == "xx"  # the answer is remembered once given


async def test_a_live_request_waits_for_a_slow_help(tmp_path: pathlib.Path) -> None:
    """A live request's check gives the CLI more than the probe's few seconds to answer."""
    gemini = slow_gemini(tmp_path)
    versions = AgentVersions({"GEMINI_PATH": str(gemini), "PATH": os.environ["PATH"]})
    assert await versions.live_support("gemini") == _LIVE


async def test_a_probe_asked_to_wait_learns_a_slow_help(tmp_path: pathlib.Path) -> None:
    """A probe with ``cli_wait_s`` (what a create sends) waits out a slow first help."""
    gemini = slow_gemini(tmp_path, VERSION_THEN_SLOW_FIRST_HELP)
    env = {"GEMINI_PATH": str(gemini)}
    async with running_daemon(roots=[tmp_path], env=env) as daemon:
        info = await host_daemon.probe(
            daemon.host, daemon.port, daemon.token, timeout=40.0, cli_wait_s=30.0
        )
    found = next(agent for agent in info.agents if agent.name == "gemini")
    assert (found.live, found.live_note) == _LIVE


async def test_a_plain_probe_stays_quick_on_a_slow_help(tmp_path: pathlib.Path) -> None:
    """A probe without ``cli_wait_s`` says the check did not answer, in a few seconds."""
    gemini = slow_gemini(tmp_path, VERSION_THEN_SLOW_FIRST_HELP)
    async with running_daemon(roots=[tmp_path], env={"GEMINI_PATH": str(gemini)}) as daemon:
        info = await host_daemon.probe(daemon.host, daemon.port, daemon.token, timeout=6.0)
    found = next(agent for agent in info.agents if agent.name == "gemini")
    assert found.live is False
    assert found.live_note is not None
    assert "did not answer within 3 s" in found.live_note


async def test_a_patient_probe_learns_a_slow_version(tmp_path: pathlib.Path) -> None:
    """A probe with ``cli_wait_s`` waits out a slow first ``--version`` after a quick one failed."""
    gemini = slow_gemini(tmp_path, SLOW_FIRST_VERSION)
    async with running_daemon(roots=[tmp_path], env={"GEMINI_PATH": str(gemini)}) as daemon:
        quick = await host_daemon.probe(daemon.host, daemon.port, daemon.token, timeout=6.0)
        patient = await host_daemon.probe(
            daemon.host, daemon.port, daemon.token, timeout=40.0, cli_wait_s=30.0
        )
    assert next(a for a in quick.agents if a.name == "gemini").version is None
    found = next(a for a in patient.agents if a.name == "gemini")
    assert (found.version, found.live) == ("0.61.0", True)
