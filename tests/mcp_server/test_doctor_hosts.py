"""`coding-agent doctor` with several hosts, as a subprocess against two real daemons."""

from __future__ import annotations

import os
import pathlib
import sys

import trio
from _support.daemon import install_stand_in_agent, running_daemon


async def doctor(tmp_path: pathlib.Path, *daemons: str) -> tuple[int, str]:
    argv = [sys.executable, "-m", "mcp_server", "doctor", "--timeout", "30"]
    argv += ["--state-path", str(tmp_path / "state"), "--workspace", str(tmp_path / "none")]
    for spec in daemons:
        argv += ["--daemon", spec]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = await trio.run_process(argv, env=env, capture_stdout=True, check=False)
    return result.returncode, result.stdout.decode()


async def test_doctor_checks_every_configured_daemon(tmp_path: pathlib.Path) -> None:
    """Two hosts, each with its token file and roots: both answer and are checked by name; a
    root outside its daemon's roots fails; a host whose daemon is down fails naming it."""
    (tmp_path / "bin").mkdir()
    claude = install_stand_in_agent(tmp_path / "bin")
    roots = {name: tmp_path / f"root-{name}" for name in ("a", "b")}
    for root in roots.values():
        root.mkdir()
    env = {"CLAUDE_PATH": claude}
    async with (
        running_daemon(roots=[roots["a"]], env=env) as a,
        running_daemon(roots=[roots["b"]], env=env) as b,
    ):
        specs = []
        for name, daemon in (("a", a), ("b", b)):
            token_file = tmp_path / f"{name}.token"
            token_file.write_text(daemon.token + "\n")
            specs.append(
                f"{name}=127.0.0.1:{daemon.port},token_file={token_file},roots={roots[name]}"
            )
        code, out = await doctor(tmp_path, *specs)
        assert "[ ok ] host a: daemon " in out, out
        assert f"answers at 127.0.0.1:{a.port} (--daemon a)" in out
        assert f"answers at 127.0.0.1:{b.port} (--daemon b)" in out
        assert f"[ ok ] host b agent claude: {claude}" in out
        assert f"[ ok ] host a roots: {roots['a']}, inside the daemon's roots" in out
        assert (code, out.endswith("all good\n")) == (0, True), out
        wrong = specs[1].replace(f"roots={roots['b']}", f"roots={roots['a']}")
        code_wrong, out_wrong = await doctor(tmp_path, specs[0], wrong)
        assert code_wrong == 1
        assert f"[FAIL] host b roots: {roots['a']} outside every root of its daemon" in out_wrong
    code_down, out_down = await doctor(tmp_path, *specs)
    assert code_down == 1
    assert f"[FAIL] host a: nothing answers at 127.0.0.1:{a.port} (--daemon a)" in out_down
    assert f"[FAIL] host b: nothing answers at 127.0.0.1:{b.port} (--daemon b)" in out_down


async def test_doctor_names_a_host_without_its_token(tmp_path: pathlib.Path) -> None:
    """A host whose token file is missing fails its token check, naming the host and file."""
    missing = tmp_path / "laptop.token"
    code, out = await doctor(tmp_path, f"laptop=127.0.0.1:9,token_file={missing}")
    assert code == 1
    assert f"[FAIL] host laptop token: no daemon token in {missing}" in out
