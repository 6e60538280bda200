"""The systemd unit: the shipped one and `install-unit`'s output pass `systemd-analyze verify`."""

from __future__ import annotations

import pathlib
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time

import pytest

from host_daemon._config import DaemonConfig
from host_daemon._unit import default_listen, install_unit_main, interface_ipv4

REPO = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = REPO / "host_daemon" / "systemd" / "coding-agent-daemon.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

needs_systemd = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)


def verify(unit: pathlib.Path, *, user: bool, runtime_dir: pathlib.Path) -> str:
    """Run ``systemd-analyze verify``; return its diagnostics (empty when the unit is clean)."""
    assert SYSTEMD_ANALYZE is not None
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    argv = [SYSTEMD_ANALYZE, *(["--user"] if user else []), "verify", str(unit)]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime_dir)},
    )
    diagnostics = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        return diagnostics or f"exit status {result.returncode}"
    return diagnostics


def generate(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> pathlib.Path:
    """Run ``install-unit --print`` and store its output as a unit file for systemd-analyze."""
    root = tmp_path / "projects"
    root.mkdir(exist_ok=True)
    argv = ["--print", "--root", str(root), "--listen", "127.0.0.1:9876", *extra]
    assert install_unit_main(argv) == 0
    unit_dir = tmp_path / "units"
    unit_dir.mkdir(exist_ok=True)
    unit = unit_dir / "coding-agent-daemon.service"
    unit.write_text(capsys.readouterr().out)
    return unit


def settings(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` line of a unit, values in order."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([A-Za-z]+)=(.*)", line)
        if match:
            found.setdefault(match[1], []).append(match[2])
    return found


@needs_systemd
def test_shipped_unit_verifies_as_user_unit(tmp_path: pathlib.Path) -> None:
    """The unit shipped in the package passes `systemd-analyze --user verify` with no warning."""
    copy = tmp_path / "units" / SHIPPED.name
    copy.parent.mkdir()
    shutil.copy(SHIPPED, copy)
    assert verify(copy, user=True, runtime_dir=tmp_path / "run") == ""


@needs_systemd
def test_generated_user_unit_verifies(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``install-unit --user --print`` output passes ``systemd-analyze --user verify``."""
    unit = generate(tmp_path, capsys, "--user")
    assert verify(unit, user=True, runtime_dir=tmp_path / "run") == ""


@needs_systemd
def test_generated_system_unit_verifies(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``install-unit --system --print`` output passes ``systemd-analyze verify``."""
    unit = generate(tmp_path, capsys, "--system")
    text = unit.read_text()
    assert "User=" in text
    assert "WantedBy=multi-user.target" in text
    assert verify(unit, user=False, runtime_dir=tmp_path / "run") == ""


@needs_systemd
def test_verify_reports_a_broken_unit(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check is not blind: a misspelt key and a bad kill mode are reported."""
    unit = generate(tmp_path, capsys)
    unit.write_text(
        unit.read_text().replace("KillMode=control-group", "KillMode=group\nRestartt=always")
    )
    diagnostics = verify(unit, user=True, runtime_dir=tmp_path / "run")
    assert "Restartt" in diagnostics
    assert "kill mode" in diagnostics.lower()


@needs_systemd
def test_unit_with_awkward_root_path_verifies(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A root with a space, a percent sign and a dollar is quoted and escaped correctly."""
    awkward = tmp_path / "my 100% $projects"
    awkward.mkdir()
    unit = generate(tmp_path, capsys, "--root", str(awkward))
    text = unit.read_text()
    assert '"' + str(awkward).replace("%", "%%").replace("$", "$$") + '"' in text
    assert verify(unit, user=True, runtime_dir=tmp_path / "run") == ""


@pytest.mark.parametrize("path", ["shipped", "generated"])
def test_unit_kills_the_cgroup_after_the_daemons_grace(
    path: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both units restart on failure, kill the whole cgroup, and wait longer than the grace."""
    text = SHIPPED.read_text() if path == "shipped" else generate(tmp_path, capsys).read_text()
    found = settings(text)
    assert found["KillMode"] == ["control-group"]
    assert found["Restart"] == ["on-failure"]
    timeout = float(found["TimeoutStopSec"][0].removesuffix("s"))
    defaults = DaemonConfig(token="", roots=())
    assert timeout > defaults.grace_s + defaults.kill_grace_s


@pytest.mark.parametrize("path", ["shipped", "generated"])
def test_unit_hardening_keeps_home_and_roots_writable(
    path: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The system is read-only, but the home (agent credentials) and every root stay writable."""
    text = SHIPPED.read_text() if path == "shipped" else generate(tmp_path, capsys).read_text()
    found = settings(text)
    assert found["ProtectSystem"] == ["strict"]
    assert found["NoNewPrivileges"] == ["yes"]
    assert found["PrivateTmp"] == ["yes"]
    assert "ProtectHome" not in found
    assert "MemoryDenyWriteExecute" not in found
    writable = found["ReadWritePaths"]
    if path == "shipped":
        assert writable == ["%h"]
    else:
        assert str(pathlib.Path.home()) in writable
        assert str((tmp_path / "projects").resolve()) in writable


def test_generated_unit_runs_this_installation_with_its_paths(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ExecStart names an executable that exists, the token file, the state dir and each root."""
    unit = generate(tmp_path, capsys, "--token-file", str(tmp_path / "token"))
    exec_start = settings(unit.read_text())["ExecStart"][0].split()
    assert pathlib.Path(exec_start[0]).is_file()
    assert exec_start[exec_start.index("--token-file") + 1] == str(tmp_path / "token")
    assert exec_start[exec_start.index("--root") + 1] == str((tmp_path / "projects").resolve())
    assert "--state-dir" in exec_start
    assert "0.0.0.0" not in unit.read_text()


def test_interface_address_is_read_from_the_kernel() -> None:
    """The loopback interface reads as 127.0.0.1; a missing interface has no address."""
    assert interface_ipv4("lo") == "127.0.0.1"
    assert interface_ipv4("nosuchif0") is None


def test_default_listen_is_loopback_without_docker() -> None:
    """With no bridge interface the daemon listens on loopback only, never on all interfaces."""
    assert default_listen(9876, "nosuchif0") == ["127.0.0.1:9876"]


def test_default_listen_adds_the_bridge_address() -> None:
    """With a bridge (any interface with an IPv4 address) its address is added to loopback."""
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("iproute2 is not installed")
    out = subprocess.run(
        [ip, "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    candidates = [
        (fields[1], fields[3].split("/")[0])
        for fields in (line.split() for line in out.splitlines())
        if fields[1] != "lo" and not fields[3].startswith("127.")
    ]
    if not candidates:
        pytest.skip("no non-loopback IPv4 interface on this machine")
    name, address = candidates[0]
    assert default_listen(9876, name) == ["127.0.0.1:9876", f"{address}:9876"]


def test_install_writes_the_user_unit(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --print the unit lands in $XDG_CONFIG_HOME/systemd/user, readable, not executable."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "projects").mkdir()
    assert install_unit_main(["--root", str(tmp_path / "projects")]) == 0
    target = tmp_path / "config" / "systemd" / "user" / "coding-agent-daemon.service"
    assert target.stat().st_mode & 0o777 == 0o644
    assert "KillMode=control-group" in target.read_text()
    assert "systemctl --user daemon-reload" in capsys.readouterr().out


def test_print_writes_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--print shows the unit and leaves the file system alone."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "projects").mkdir()
    assert install_unit_main(["--print", "--root", str(tmp_path / "projects")]) == 0
    assert capsys.readouterr().out.startswith("# Written by")
    assert not (tmp_path / "config").exists()


def test_missing_root_is_refused(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A root that does not exist, or no root at all, is an error that says what to do."""
    monkeypatch.delenv("HOST_FILE_ROOT", raising=False)
    assert install_unit_main(["--print", "--root", str(tmp_path / "absent")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert install_unit_main(["--print"]) == 2
    assert "--root" in capsys.readouterr().err


def test_install_unit_is_wired_into_the_daemon_cli(tmp_path: pathlib.Path) -> None:
    """`coding-agent-daemon install-unit --output PATH` (the real CLI) writes the unit there."""
    (tmp_path / "projects").mkdir()
    target = tmp_path / "out" / "coding-agent-daemon.service"
    argv = [sys.executable, "-m", "host_daemon", "install-unit", "--output", str(target)]
    result = subprocess.run(
        [*argv, "--root", str(tmp_path / "projects"), "--listen", "127.0.0.1:9876"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote {target}" in result.stdout
    assert "--listen 127.0.0.1:9876 --token-file" in target.read_text()


def test_system_unit_runs_as_the_sudo_user(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under sudo, a --system unit runs as the invoking user, with that user's home and state."""
    try:
        account = pwd.getpwuid(65534)
    except KeyError:
        pytest.skip("no uid 65534 account on this machine")
    monkeypatch.setenv("SUDO_USER", account.pw_name)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    found = settings(generate(tmp_path, capsys, "--system").read_text())
    assert found["User"] == [account.pw_name]
    assert account.pw_dir in found["ReadWritePaths"]
    state = f"{account.pw_dir}/.local/state/coding-agent"
    assert f"--state-dir {state} " in found["ExecStart"][0]
    assert f"--token-file {state}/daemon.token " in found["ExecStart"][0]


def test_unit_argv_starts_on_a_fresh_account(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The unit's ExecStart, run for an account with no state directory yet, starts the daemon."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # The account's state home, not created yet (install-unit reads it as the user's login would).
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.delenv("DAEMON_TOKEN", raising=False)
    monkeypatch.delenv("DAEMON_TOKEN_FILE", raising=False)
    (home / "src").mkdir()
    assert install_unit_main(["--print", "--root", str(home / "src")]) == 0
    exec_start = settings(capsys.readouterr().out)["ExecStart"][0]
    argv = shlex.split(exec_start.replace("%%", "%").replace("$$", "$"))
    token_file = home / ".local" / "state" / "coding-agent" / "daemon.token"
    assert argv[argv.index("--token-file") + 1] == str(token_file)
    # Only the listen address differs from the unit: a free loopback port for the test.
    while "--listen" in argv:
        del argv[argv.index("--listen") : argv.index("--listen") + 2]
    with subprocess.Popen(
        [*argv, "--listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as daemon:
        try:
            deadline = time.monotonic() + 60
            while not token_file.exists() and daemon.poll() is None:
                assert time.monotonic() < deadline, "the daemon neither started nor failed"
                time.sleep(0.05)
            assert daemon.poll() is None, daemon.communicate(timeout=30)[1]
            assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        finally:
            daemon.terminate()
            daemon.communicate(timeout=60)


def test_unit_passes_the_worktree_flags_to_the_daemon(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The worktree flags given to install-unit reach ExecStart, and the daemon takes them."""
    from host_daemon._cli import build_parser, config_from_args  # noqa: PLC0415

    state = tmp_path / "state"
    worktrees = tmp_path / "projects" / "worktrees"
    unit = generate(
        tmp_path,
        capsys,
        *("--state-dir", str(state), "--worktrees-dir", str(worktrees)),
        *("--worktrees-max-gb", "2.5", "--git-timeout", "30"),
    )
    exec_start = shlex.split(settings(unit.read_text())["ExecStart"][0])
    flags = exec_start[exec_start.index("--listen") :]
    config = config_from_args(build_parser().parse_args(flags), {"DAEMON_TOKEN": "x"})
    assert config.worktrees_dir == str(worktrees.resolve())
    assert config.worktrees_max_bytes == int(2.5 * 1024**3)
    assert config.git_timeout_s == 30.0


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--worktrees-dir", "/elsewhere/worktrees", "expected a directory strictly inside"),
        ("--worktrees-max-gb", "-1", "--worktrees-max-gb: must be 0 or more GiB, got -1"),
        ("--git-timeout", "0", "--git-timeout: must be positive, got 0"),
    ],
)
def test_unit_refuses_worktree_flags_the_daemon_would_refuse(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
    says: str,
) -> None:
    """A worktree flag the daemon would refuse at start is refused at install, saying why."""
    (tmp_path / "projects").mkdir()
    argv = ["--print", "--root", str(tmp_path / "projects"), flag, value]
    assert install_unit_main(argv) == 2
    assert says in capsys.readouterr().err
