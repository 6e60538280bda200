"""Configuring several hosts (``--daemon``, ``DAEMONS``), routing new tasks to them (sans-IO),
and records from before hosts."""

from __future__ import annotations

import datetime
import pathlib
import subprocess
import sys
from pathlib import PurePosixPath

import orjson
import pytest
from _support.agent_up import base_env

from mcp_server._config import ConfigError, serve_config
from mcp_server._tasks import (
    DaemonEndpoint,
    Host,
    HostTable,
    PathRefused,
    TaskOptions,
    UnknownHost,
    Workspace,
)
from mcp_server._tasks._files import decode_task, encode_task
from mcp_server._tasks._model import Task, new_task, start_run
from mcp_server._tasks._schedule import ProjectGate

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
SHAPE = "NAME=HOST:PORT[,token_file=PATH][,roots=/a:/b]"


def environ(tmp_path: pathlib.Path, **more: str) -> dict[str, str]:
    return {"STATE_PATH": str(tmp_path / "state"), "DAEMON_TOKEN": "shared", **more}


def test_daemon_flags_define_the_hosts(tmp_path: pathlib.Path) -> None:
    """Each --daemon is a host: its address, its token file (else the shared token), its roots
    (else the workspace); the single-daemon settings then play no part."""
    token_file = tmp_path / "laptop.token"
    token_file.write_text("laptop-secret\n")
    config = serve_config(
        environ(tmp_path, PROJECTS_PATH=str(tmp_path)),
        daemons=[
            f"laptop=10.0.0.2:9876,token_file={token_file},roots=/home/me/src:/home/me/work",
            "build=[::1]:7000",
        ],
    )
    laptop, build = config.hosts
    assert (laptop.name, laptop.daemon) == (
        "laptop",
        DaemonEndpoint("10.0.0.2", 9876, "laptop-secret"),
    )
    assert [str(w.client_root) for w in laptop.roots] == ["/home/me/src", "/home/me/work"]
    assert [str(w.host_root) for w in laptop.roots] == ["/home/me/src", "/home/me/work"]
    assert (build.daemon.host, build.daemon.port, build.daemon.token) == ("::1", 7000, "shared")
    assert build.roots == (config.workspace,)
    assert config.daemon == laptop.daemon


def test_daemons_variable_and_flags_win(tmp_path: pathlib.Path) -> None:
    """DAEMONS holds ';'-separated hosts; --daemon flags, when given, replace them."""
    env = environ(tmp_path, DAEMONS="a=127.0.0.1:1,roots=/a ; b=127.0.0.1:2,roots=/b;")
    assert [h.name for h in serve_config(env).hosts] == ["a", "b"]
    assert [h.name for h in serve_config(env, daemons=["c=127.0.0.1:3"]).hosts] == ["c"]


def test_no_daemons_keeps_the_single_daemon(tmp_path: pathlib.Path) -> None:
    """Without --daemon and DAEMONS: no hosts configured (the runner's host is ``default``:
    CLAUDE_PROXY_HOST/PORT serving the workspace)."""
    config = serve_config(environ(tmp_path, CLAUDE_PROXY_HOST="d.local", CLAUDE_PROXY_PORT="99"))
    assert config.hosts == ()
    assert (config.daemon.host, config.daemon.port) == ("d.local", 99)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("laptop", f"expected {SHAPE}, got 'laptop' @ --daemon"),
        ("laptop=10.0.0.2", f"expected {SHAPE}, got 'laptop=10.0.0.2' @ --daemon"),
        ("=h:1", f"expected {SHAPE}, got '=h:1' @ --daemon"),
        ("a=:1", f"expected {SHAPE}, got 'a=:1' @ --daemon"),
        ("a=h:x", "expected a port number 1..65535, got 'x' @ --daemon a"),
        ("a=h:0", "expected a port number 1..65535, got '0' @ --daemon a"),
        ("a=h:\u00b2", "expected a port number 1..65535, got '\u00b2' @ --daemon a"),
        ("-a=h:1", "expected a host name of letters, digits and _.- (at most 64, starting with "
         "a letter or digit), got '-a' @ --daemon"),
        ("a=h:1,colour=red", "expected token_file=PATH or roots=/a:/b (each once), got "
         "'colour=red' @ --daemon a"),
        ("a=h:1,roots=/x,roots=/y", "expected token_file=PATH or roots=/a:/b (each once), got "
         "'roots=/y' @ --daemon a"),
        ("a=h:1,roots=", "expected token_file=PATH or roots=/a:/b (each once), got 'roots=' "
         "@ --daemon a"),
        ("a=h:1,roots=src", "expected absolute roots without '..', got 'src' @ --daemon a"),
        ("a=h:1,roots=/x/../y", "expected absolute roots without '..', got '/x/../y' @ --daemon a"),
    ],
)  # fmt: skip
def test_bad_daemon_flags_are_clear_errors(
    tmp_path: pathlib.Path, given: str, message: str
) -> None:
    """A malformed --daemon says what was expected, what came, and where."""
    with pytest.raises(ConfigError) as raised:
        serve_config(environ(tmp_path), daemons=[given])
    assert str(raised.value) == message


def test_daemon_errors_name_the_variable_and_the_host(tmp_path: pathlib.Path) -> None:
    """DAEMONS errors name DAEMONS; a name given twice and an unreadable token file are errors
    naming the host."""
    with pytest.raises(ConfigError, match=r"got 'nope' @ DAEMONS$"):
        serve_config(environ(tmp_path, DAEMONS="a=h:1;nope"))
    with pytest.raises(ConfigError, match=r"^expected each host named once, got a twice @ DAEMONS"):
        serve_config(environ(tmp_path, DAEMONS="a=h:1;a=h:2"))
    missing = tmp_path / "missing.token"
    with pytest.raises(ConfigError) as raised:
        serve_config(environ(tmp_path), daemons=[f"a=h:1,token_file={missing}"])
    assert str(raised.value) == (
        f"expected a readable token file, got {missing} (No such file or directory) @ --daemon a"
    )
    assert not missing.exists()  # another host's token is read, never made up here


def test_serve_refuses_a_bad_daemon_flag_with_exit_2(tmp_path: pathlib.Path) -> None:
    """``coding-agent serve --daemon …`` with a bad value exits 2 saying why."""
    env = base_env(STATE_PATH=str(tmp_path / "state"), DAEMON_TOKEN="d")
    done = subprocess.run(
        [sys.executable, "-m", "mcp_server", "serve", "--daemon", "laptop=h:1,roots=src"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "expected absolute roots without '..', got 'src' @ --daemon laptop" in done.stderr


def _host(name: str, *roots: str) -> Host:
    mapped = tuple(Workspace(PurePosixPath(r), PurePosixPath(r)) for r in roots)
    return Host(name, DaemonEndpoint("127.0.0.1", 1, "t"), mapped)


def test_routing_picks_the_longest_root_then_the_first_host() -> None:
    """The longest root containing the directory wins; on a tie the first host; a relative
    directory is under the first root of the named host (else of the first host)."""
    table = HostTable([_host("a", "/src", "/x"), _host("b", "/src/deep"), _host("c", "/x")])
    assert [
        (h.name, rel, cwd)
        for h, rel, cwd in (
            table.route("/src/deep/p", None),
            table.route("/src/p", None),
            table.route("/x/p", None),
            table.route("/src/deep/p", "a"),
            table.route("p", None),
            table.route(None, "b"),
        )
    ] == [
        ("b", "p", "/src/deep/p"),
        ("a", "p", "/src/p"),
        ("a", "p", "/x/p"),
        ("a", "deep/p", "/src/deep/p"),
        ("a", "p", "/src/p"),
        ("b", "", "/src/deep"),
    ]


def test_routing_refusals_list_the_hosts() -> None:
    """No host serves it, or the named one does not: PathRefused listing each host's roots;
    an unknown name: UnknownHost listing the names; '..' stays refused."""
    table = HostTable([_host("a", "/src"), _host("b", "/srv")])
    listed = "a (127.0.0.1:1) serves /src; b (127.0.0.1:1) serves /srv"
    with pytest.raises(PathRefused) as nowhere:
        table.route("/etc", None)
    assert str(nowhere.value) == (
        f"expected a project_dir inside a host's root, got '/etc' @ $.arguments.project_dir "
        f"(hosts: {listed})"
    )
    with pytest.raises(PathRefused, match=r"^expected a project_dir that host b serves, got"):
        table.route("/src/p", "b")
    with pytest.raises(UnknownHost, match=r"configured hosts \(a, b\), got 'c' @ host$"):
        table.route("/src/p", "c")
    with pytest.raises(PathRefused, match=r"'\.\.'"):
        table.route("/src/../etc", None)
    with pytest.raises(ValueError, match="each host named once, got a twice"):
        HostTable([_host("a", "/x"), _host("a", "/y")])


def test_one_host_keeps_the_workspace_error() -> None:
    """With a single host the refusal is the workspace's, as before several hosts."""
    table = HostTable([_host("default", "/w")])
    with pytest.raises(PathRefused, match=r"^project_dir '/etc' is outside the workspace /w$"):
        table.route("/etc", None)


def _task(host: str, cwd: str) -> Task:
    task = new_task(
        title="t",
        instructions="x",
        agent="claude",
        project_dir="p",
        cwd=cwd,
        options=TaskOptions(),
        now=T0,
        host=host,
    )
    return start_run(task, T0)


def test_the_same_path_on_another_host_is_another_project() -> None:
    """The project gate holds a task back only for a run in its directory on its own host."""
    busy = [_task("a", "/src/p")]
    gate = ProjectGate(lambda: busy)
    assert gate.blocks(_task("b", "/src/p"), T0) is None
    assert gate.blocks(_task("a", "/src/p"), T0) is not None


def test_a_record_from_before_hosts_loads_on_the_default_host() -> None:
    """A task record without ``host`` loads with host ``default``; a new one keeps its host."""
    task = new_task(
        title="t",
        instructions="x",
        agent="claude",
        project_dir="",
        cwd="/w",
        options=TaskOptions(),
        now=T0,
        host="laptop",
    )
    data = orjson.loads(encode_task(task))
    assert data["host"] == "laptop"
    assert decode_task(encode_task(task)).host == "laptop"
    del data["host"]
    assert decode_task(orjson.dumps(data)).host == "default"
