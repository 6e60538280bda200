"""The approval policy flags (--allow-rule, --deny-rule, --policy-file), shown by the probe."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import trio
from _support.daemon import running_daemon

import host_daemon
from host_daemon._cli import build_parser, config_from_args

DEADLINE = 30.0


def parsed_config(*args: str, tmp_path: pathlib.Path) -> host_daemon.DaemonConfig:
    """The configuration the daemon would start with (the token comes from the environment)."""
    arguments = build_parser().parse_args(
        [*args, "--root", str(tmp_path), "--state-dir", str(tmp_path / "state")]
    )
    return config_from_args(arguments, {"DAEMON_TOKEN": "x"})


def run_cli(*args: str, tmp_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """``python -m host_daemon`` with a root and a token, bound to a free port."""
    env = {**os.environ, "DAEMON_TOKEN": "x"}
    argv = [sys.executable, "-m", "host_daemon", "--listen", "127.0.0.1:0"]
    argv += ["--root", str(tmp_path), "--state-dir", str(tmp_path / "state"), *args]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=DEADLINE, env=env, check=False
    )


def test_no_rules_by_default(tmp_path: pathlib.Path) -> None:
    """Without policy flags the daemon allows and denies nothing at once."""
    config = parsed_config(tmp_path=tmp_path)
    assert config.allow_rules == ()
    assert config.deny_rules == ()


def test_rule_flags_repeat(tmp_path: pathlib.Path) -> None:
    """--allow-rule and --deny-rule repeat and keep their order."""
    config = parsed_config(
        "--allow-rule",
        "Bash(pytest:*)",
        "--allow-rule",
        " Edit(src/**) ",
        "--deny-rule",
        "Bash(rm:*)",
        tmp_path=tmp_path,
    )
    assert config.allow_rules == ("Bash(pytest:*)", "Edit(src/**)")
    assert config.deny_rules == ("Bash(rm:*)",)


def test_policy_file_adds_to_the_flags(tmp_path: pathlib.Path) -> None:
    """--policy-file's allow and deny lists are added after the flags' rules, without repeats."""
    policy = tmp_path / "policy.toml"
    policy.write_text('allow = ["Read", "Bash(pytest:*)"]\ndeny = ["Edit(//etc/**)"]\n')
    config = parsed_config(
        "--allow-rule", "Bash(pytest:*)", "--policy-file", str(policy), tmp_path=tmp_path
    )
    assert config.allow_rules == ("Bash(pytest:*)", "Read")
    assert config.deny_rules == ("Edit(//etc/**)",)


def test_policy_file_may_hold_one_list(tmp_path: pathlib.Path) -> None:
    """A policy file with only deny rules is fine."""
    policy = tmp_path / "policy.toml"
    policy.write_text('deny = ["WebFetch"]\n')
    config = parsed_config("--policy-file", str(policy), tmp_path=tmp_path)
    assert (config.allow_rules, config.deny_rules) == ((), ("WebFetch",))


@pytest.mark.parametrize("flag", ["--allow-rule", "--deny-rule"])
def test_bad_rule_flag_exits_2(tmp_path: pathlib.Path, flag: str) -> None:
    """A rule flag that does not parse is a usage error naming the flag and the rule."""
    result = run_cli(flag, "Bash(pytest:*", tmp_path=tmp_path)
    assert result.returncode == 2
    assert f"argument {flag}: expected a rule ending in ')', got 'Bash(pytest:*'" in result.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('allow = ["Bash", "Edit("]\n', "expected a rule ending in ')', got 'Edit(' @ allow[1]"),
        ("deny = [3]\n", "expected a rule string like Bash(pytest:*), got int @ deny[0]"),
        ('deny = "Bash"\n', "expected a list of rules, got str @ deny"),
        ('allowed = ["Bash"]\n', "expected only the keys allow and deny, got 'allowed'"),
        ("allow = [\n", "expected TOML, got an error"),
    ],
)
def test_bad_policy_file_exits_2_saying_where(
    tmp_path: pathlib.Path, content: str, says: str
) -> None:
    """A policy file that is no TOML, has other keys or a bad rule: exit 2, file and place."""
    policy = tmp_path / "policy.toml"
    policy.write_text(content)
    result = run_cli("--policy-file", str(policy), tmp_path=tmp_path)
    assert result.returncode == 2
    assert f"cannot start: --policy-file {policy}: " in result.stderr
    assert says in result.stderr


def test_missing_policy_file_exits_2(tmp_path: pathlib.Path) -> None:
    """A policy file that cannot be read: exit 2, saying which and why."""
    result = run_cli("--policy-file", str(tmp_path / "nope.toml"), tmp_path=tmp_path)
    assert result.returncode == 2
    assert f"--policy-file {tmp_path / 'nope.toml'}: cannot read it: " in result.stderr


async def test_probe_shows_the_policy(tmp_path: pathlib.Path) -> None:
    """The probe answers the daemon's allow and deny rules."""
    async with running_daemon(
        [tmp_path], allow_rules=("Bash(pytest:*)",), deny_rules=("Bash(rm:*)", "WebFetch")
    ) as daemon:
        with trio.fail_after(DEADLINE):
            info = await host_daemon.probe(daemon.host, daemon.port, daemon.token)
    assert info.allow_rules == ["Bash(pytest:*)"]
    assert info.deny_rules == ["Bash(rm:*)", "WebFetch"]
