"""Adapters build argv lists that keep prompts out of option parsing, and find their CLIs."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest
import trio

from host_daemon._agents import ADAPTERS, AgentVersionError, agent_version
from host_daemon._records import RunRequest

_TRICKY_PROMPT = "--help; rm -rf / && echo $HOME"


def _request(agent: str, **fields: object) -> RunRequest:
    return RunRequest(agent=agent, prompt=_TRICKY_PROMPT, cwd="/work", **fields)  # type: ignore[arg-type]


def test_claude_argv_full() -> None:
    """Claude gets stream-json, verbose, the mode, every limit bound to its option, then ``--``."""
    request = _request(
        "claude", resume_session_id="abc", model="opus", max_turns=7, max_budget_usd=0.25
    )
    argv = ADAPTERS["claude"].build_argv("/bin/claude", request, "acceptEdits")
    assert argv == [
        "/bin/claude",
        "-p",
        "--output-format=stream-json",
        "--verbose",
        "--permission-mode=acceptEdits",
        "--resume=abc",
        "--model=opus",
        "--max-turns=7",
        "--max-budget-usd=0.25",
        "--",
        _TRICKY_PROMPT,
    ]


def test_codex_argv_new_and_resumed() -> None:
    """Codex runs ``exec --json`` with its sandbox; a resume puts id and prompt after ``--``."""
    adapter = ADAPTERS["codex"]
    fresh = adapter.build_argv("codex", _request("codex", model="o4"), "workspace-write")
    assert fresh == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox=workspace-write",
        "--model=o4",
        "--",
        _TRICKY_PROMPT,
    ]
    resumed = adapter.build_argv("codex", _request("codex", resume_session_id="t1"), "read-only")
    assert resumed == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox=read-only",
        "resume",
        "--",
        "t1",
        _TRICKY_PROMPT,
    ]


def test_gemini_argv_binds_the_prompt_to_its_option() -> None:
    """Gemini's prompt is one ``--prompt=`` word, so a leading dash cannot make it a flag."""
    request = _request("gemini", resume_session_id="latest", model="gemini-2.5-pro")
    argv = ADAPTERS["gemini"].build_argv("gemini", request, "auto_edit")
    assert argv == [
        "gemini",
        f"--prompt={_TRICKY_PROMPT}",
        "--output-format=stream-json",
        "--approval-mode=auto_edit",
        "--skip-trust",
        "--resume=latest",
        "--model=gemini-2.5-pro",
    ]


_HOSTILE_NAMES = [
    "--yolo",
    "-y",
    "--allowed-tools=run_shell_command",
    "--sandbox=false",
    "-",
    "opus=x",
    "opus --yolo",
    " opus",
    "opus\0",
    "opus\n",
    "",
    "x" * 129,
]


@pytest.mark.parametrize("agent", sorted(ADAPTERS))
@pytest.mark.parametrize("field", ["model", "resume_session_id"])
@pytest.mark.parametrize("value", _HOSTILE_NAMES)
def test_hostile_model_or_session_id_is_refused(agent: str, field: str, value: str) -> None:
    """A model or session id that is no plain name never reaches an argv."""
    adapter = ADAPTERS[agent]
    request = _request(agent, **{field: value})
    with pytest.raises(ValueError, match=rf"@ \$\.{field}$"):
        adapter.build_argv(agent, request, adapter.default_permission_mode)


@pytest.mark.parametrize("agent", sorted(ADAPTERS))
@pytest.mark.parametrize(
    "value",
    ["claude-opus-4-1", "gpt-5.5", "models/gemini-2.5-pro", "us.anthropic.claude@2025", "x" * 128],
)
def test_plain_model_names_are_bound_to_the_option(agent: str, value: str) -> None:
    """Real model names pass, each as one ``--model=`` word."""
    adapter = ADAPTERS[agent]
    argv = adapter.build_argv(agent, _request(agent, model=value), adapter.default_permission_mode)
    assert f"--model={value}" in argv
    assert value not in argv


@pytest.mark.parametrize("agent", sorted(ADAPTERS))
@pytest.mark.parametrize("prompt", ["--yolo", "-p", "--model=x", "--", "-- --help"])
def test_an_option_like_prompt_is_never_an_option(agent: str, prompt: str) -> None:
    """A prompt is the last word after ``--``, or bound to ``--prompt=``: never an option."""
    adapter = ADAPTERS[agent]
    request = RunRequest(agent=agent, prompt=prompt, cwd="/w", resume_session_id="s1")  # type: ignore[arg-type]
    argv = adapter.build_argv(agent, request, adapter.default_permission_mode)
    if agent == "gemini":
        assert f"--prompt={prompt}" in argv
        assert prompt not in argv
    else:
        assert argv[-1] == prompt
        assert "--" in argv[:-1]
        words_after_separator = argv[argv.index("--") + 1 :]
        assert words_after_separator in ([prompt], ["s1", prompt])


@pytest.mark.parametrize("agent", sorted(ADAPTERS))
def test_default_mode_is_allowed_and_unknown_modes_are_refused(agent: str) -> None:
    """Each adapter's default mode is one of its modes; a mode outside the set is refused."""
    adapter = ADAPTERS[agent]
    assert adapter.default_permission_mode in adapter.permission_modes
    with pytest.raises(ValueError, match="no permission mode"):
        adapter.build_argv("x", _request(agent), "please-everything")


@pytest.mark.skipif(os.geteuid() != 0, reason="the root-only rule needs a root test run")
def test_claude_bypass_is_not_offered_to_root() -> None:
    """Claude refuses bypassPermissions as root, so a root daemon does not offer it."""
    assert "bypassPermissions" not in ADAPTERS["claude"].permission_modes


def _script(path: pathlib.Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_find_executable_prefers_the_env_var_then_path(tmp_path: pathlib.Path) -> None:
    """``CLAUDE_PATH`` wins; without it the CLI is looked up on the environment's PATH."""
    adapter = ADAPTERS["claude"]
    explicit = _script(tmp_path / "my-claude", "exit 0\n")
    (tmp_path / "bin").mkdir()
    on_path = _script(tmp_path / "bin" / "claude", "exit 0\n")
    assert adapter.find_executable({"CLAUDE_PATH": explicit, "PATH": "/nowhere"}) == explicit
    assert adapter.find_executable({"PATH": str(tmp_path / "bin")}) == on_path
    assert adapter.find_executable({"PATH": str(tmp_path)}) is None
    missing = {"CLAUDE_PATH": str(tmp_path / "nope"), "PATH": str(tmp_path / "bin")}
    assert adapter.find_executable(missing) is None


async def test_agent_version_reads_the_first_line(tmp_path: pathlib.Path) -> None:
    """``agent_version`` returns the first line that ``--version`` prints."""
    cli = _script(tmp_path / "cli", 'echo "2.1.332 (Claude Code)"; echo extra\n')
    assert await agent_version(cli) == "2.1.332 (Claude Code)"


async def test_agent_version_reports_failures(tmp_path: pathlib.Path) -> None:
    """A ``--version`` that fails names its exit code and stderr."""
    cli = _script(tmp_path / "cli", "echo broken >&2; exit 3\n")
    with pytest.raises(AgentVersionError, match="exited with 3: broken"):
        await agent_version(cli)


async def test_agent_version_times_out(tmp_path: pathlib.Path) -> None:
    """A ``--version`` that hangs is abandoned after the timeout."""
    cli = _script(tmp_path / "cli", "exec sleep 60\n")
    with trio.fail_after(30):
        with pytest.raises(AgentVersionError, match=r"did not answer within 0\.2 s"):
            await agent_version(cli, timeout=0.2)


async def test_agent_version_holds_no_more_than_its_cap(tmp_path: pathlib.Path) -> None:
    """A ``--version`` that floods stdout still yields its first line, without holding the rest."""
    cli = _script(tmp_path / "cli", "echo 9.9.9; exec head -c 50000000 /dev/zero\n")
    with trio.fail_after(60):
        assert await agent_version(cli) == "9.9.9"


async def test_agent_version_uses_the_given_environment(tmp_path: pathlib.Path) -> None:
    """``env`` is the environment the CLI runs with (the daemon passes its configured one)."""
    cli = _script(tmp_path / "cli", 'echo "v-$BENCH_VERSION_SUFFIX"\n')
    assert (
        await agent_version(cli, env={"BENCH_VERSION_SUFFIX": "ok", "PATH": "/usr/bin:/bin"})
        == "v-ok"
    )
