"""spawn_group: exit reporting, output lines, backpressure, limits, and no process left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest
import trio
from _support import adversaries

from host_daemon import ExitStatus, OutputLine, spawn_group
from host_daemon._output import OUTPUT_BUFFER_BYTES, output_limit_marker
from host_daemon._proc import read_stat

PY = sys.executable


@pytest.fixture
def piddir(tmp_path: Path) -> Path:
    """Where adversaries record their pids."""
    path = tmp_path / "pids"
    path.mkdir()
    return path


async def collect(argv: list[str], **kwargs: object) -> tuple[list[OutputLine], ExitStatus]:
    """Run ``argv`` to its end; its lines and exit status."""
    async with spawn_group(argv, cwd="/", **kwargs) as proc:  # type: ignore[arg-type]
        lines = [line async for line in proc]
        return lines, await proc.wait()


async def collect_in(argv: list[str], cwd: Path) -> tuple[list[bytes], ExitStatus]:
    """Run ``argv`` in ``cwd`` to its end; its line contents and exit status."""
    async with spawn_group(argv, cwd=str(cwd)) as proc:
        lines = [line.data async for line in proc]
        return lines, await proc.wait()


async def test_exit_code_reported() -> None:
    """A leader's exit code is reported, with no signal."""
    _, status = await collect(["sh", "-c", "exit 7"])
    assert status == ExitStatus(exit_code=7, signal=None)


async def test_signal_reported() -> None:
    """A leader killed by a signal reports the signal, with no exit code."""
    _, status = await collect(["sh", "-c", "kill -KILL $$"])
    assert status == ExitStatus(exit_code=None, signal=signal.SIGKILL)


async def test_lines_from_both_streams() -> None:
    """stdout and stderr lines arrive tagged by stream, without their newlines."""
    lines, status = await collect(["sh", "-c", "echo out1; echo err1 >&2; printf 'out2'"])
    assert status.exit_code == 0
    assert sorted((line.stream, line.data) for line in lines) == [
        ("stderr", b"err1"),
        ("stdout", b"out1"),
        ("stdout", b"out2"),
    ]
    assert not any(line.truncated for line in lines)


async def test_stdin_is_devnull() -> None:
    """The child's stdin is /dev/null: a reader of stdin sees EOF at once."""
    lines, _ = await collect(["sh", "-c", "cat; echo eof"])
    assert [line.data for line in lines] == [b"eof"]


async def test_environment_and_cwd(tmp_path: Path) -> None:
    """The child runs in ``cwd`` with the given environment plus the run marker."""
    async with spawn_group(
        ["sh", "-c", 'pwd; echo "$ONLY"; echo "${CODING_AGENT_RUN_ID:+marked}"'],
        cwd=str(tmp_path),
        env={"ONLY": "this", "PATH": os.environ["PATH"]},
    ) as proc:
        lines = [line.data async for line in proc]
    assert lines == [str(tmp_path).encode(), b"this", b"marked"]


async def test_cwd_descriptor_is_the_directory_the_child_starts_in(tmp_path: Path) -> None:
    """Given a directory descriptor, the child starts there, whatever took the name since."""
    (tmp_path / "checked").mkdir()
    (tmp_path / "elsewhere").mkdir()
    fd = os.open(tmp_path / "checked", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.rename(tmp_path / "checked", tmp_path / "moved")
        os.symlink(tmp_path / "elsewhere", tmp_path / "checked")
        script = f"pwd -P; test -e /proc/$$/fd/{fd} && echo inherited || echo closed"
        async with spawn_group(["sh", "-c", script], cwd=fd) as proc:
            lines = [line.data async for line in proc]
    finally:
        os.close(fd)
    assert lines == [str(tmp_path / "moved").encode(), b"closed"]


async def test_shell_string_refused() -> None:
    """A string argv is refused: argv lists only, never a shell string."""
    with pytest.raises(TypeError, match="never a shell string"):
        async with spawn_group("sleep 1", cwd="/"):
            pass


@pytest.mark.parametrize("name", ["/nonexistent/agent", "no-such-agent-on-path", "./bin/agent"])
async def test_missing_executable_raises_without_leaking_fds(name: str) -> None:
    """A missing executable raises FileNotFoundError and leaks no descriptor."""
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        async with spawn_group([name], cwd="/"):
            pass
    assert len(os.listdir("/proc/self/fd")) == before


async def test_missing_cwd_raises() -> None:
    """A working directory that does not exist raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        async with spawn_group(["true"], cwd="/nonexistent/dir"):
            pass


async def test_bad_interpreter_raises(tmp_path: Path) -> None:
    """An exec failure (a script whose interpreter is missing) raises from the spawn itself."""
    script = tmp_path / "agent"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    with pytest.raises(FileNotFoundError):
        async with spawn_group([str(script)], cwd="/"):
            pass


async def test_relative_executable_found_from_cwd(tmp_path: Path) -> None:
    """``./tool`` is looked up in the run's working directory, as exec would."""
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho ran\n")
    tool.chmod(0o755)
    lines, status = await collect_in(["./tool"], tmp_path)
    assert (lines, status.exit_code) == ([b"ran"], 0)


async def test_terminate_ends_the_group() -> None:
    """terminate() ends a running leader with SIGTERM, reported as the signal."""
    async with spawn_group(["sleep", "100"], cwd="/") as proc:
        await proc.terminate()
        assert await proc.wait() == ExitStatus(exit_code=None, signal=signal.SIGTERM)


async def test_long_line_cut_at_limit() -> None:
    """A 3 MB line is cut at max_line_bytes with truncated=True; the next line is intact."""
    script = "import sys; sys.stdout.buffer.write(b'a' * 3_000_000 + b'\\nshort\\n' + b'b' * 10)"
    lines, status = await collect([PY, "-c", script], max_line_bytes=1000)
    assert status.exit_code == 0
    assert [(line.data, line.truncated) for line in lines] == [
        (b"a" * 1000, True),
        (b"short", False),
        (b"b" * 10, False),
    ]


async def test_line_of_exactly_the_limit_is_whole() -> None:
    """A line of exactly max_line_bytes is not marked truncated."""
    lines, _ = await collect(["sh", "-c", "printf '%s\\n' 0123456789"], max_line_bytes=10)
    assert [(line.data, line.truncated) for line in lines] == [(b"0123456789", False)]


async def test_output_cap_marker_and_discard() -> None:
    """Past max_output_bytes a marker line is produced and the rest discarded; the child ends."""
    script = "import sys\nfor i in range(200_000): sys.stdout.write('123456789\\n')"
    lines, status = await collect([PY, "-c", script], max_output_bytes=255)
    assert status.exit_code == 0  # kept draining: the child was never wedged
    assert lines[-1] == OutputLine("stdout", output_limit_marker(255), truncated=True)
    body = lines[:-1]
    assert [line.data for line in body[:25]] == [b"123456789"] * 25
    assert body[25:] == [OutputLine("stdout", b"12345", truncated=True)]


async def test_backpressure_blocks_the_child(piddir: Path) -> None:
    """A reader that stops pulling stalls the child at a bounded total; pulling resumes it.

    Progress is sampled over time: it must stop growing (for a whole window, with the child
    asleep in a pipe write) without ever passing the buffer's bound, stay stopped, and grow
    again once the reader pulls. One snapshot could not tell a stall from a briefly full pipe.
    """
    line_size = 4096
    bound = OUTPUT_BUFFER_BYTES + 4 * 64 * 1024 + 2 * line_size  # pipe, read chunk, lines
    async with spawn_group(adversaries.argv("flood", piddir, str(line_size)), cwd="/") as proc:
        (pid,) = await adversaries.wait_recorded(piddir, 1)
        consumed = 0
        async for line in proc:
            consumed += len(line.data) + 1
            break
        stalled_at = await wait_stalled(pid, piddir, bound + consumed)
        assert stalled_at >= OUTPUT_BUFFER_BYTES  # the buffer filled before the child stopped
        for _ in range(STALL_SAMPLES):  # and it stays stopped while nobody reads
            await trio.sleep(STALL_WINDOW_S / STALL_SAMPLES)
            assert read_progress(piddir) == stalled_at
        # Pulling past what was written can only finish if the child writes again.
        async for line in proc:
            consumed += len(line.data) + 1
            if consumed > stalled_at + line_size:
                break
        assert read_progress(piddir) > stalled_at


STALL_WINDOW_S = 0.5
STALL_SAMPLES = 10


async def wait_stalled(pid: int, piddir: Path, bound: int) -> int:
    """The flood's progress once unchanged for ``STALL_WINDOW_S`` with it blocked in a write.

    Fails at once if the progress passes ``bound``: the child wrote more than the buffer holds.
    """
    with trio.fail_after(30):
        last, since = read_progress(piddir), trio.current_time()
        while True:
            await trio.sleep(STALL_WINDOW_S / STALL_SAMPLES)
            current = read_progress(piddir)
            assert current <= bound, f"the child wrote {current} bytes to a reader that stopped"
            if current != last:
                last, since = current, trio.current_time()
            elif trio.current_time() - since >= STALL_WINDOW_S and blocked_in_write(pid):
                return current


def read_progress(piddir: Path) -> int:
    """Bytes the flood adversary has written so far."""
    text = (piddir / "progress").read_text().strip()
    return int(text) if text else 0


def blocked_in_write(pid: int) -> bool:
    """Whether ``pid`` sleeps in a write to a full pipe (``anon_pipe_write`` on Linux 6.x)."""
    wchan = Path(f"/proc/{pid}/wchan").read_text()
    if "pipe_write" in wchan:
        return True
    try:  # kernels that hide wchan: the pending syscall (1 is write on x86-64)
        syscall = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return bool(syscall) and syscall[0] == "1" and wchan != "0"


EXITS = ["cancel", "body-returns", "exception"]


async def end_block(how: str, scope: trio.CancelScope) -> None:
    """Leave the block the way ``how`` says: cancelled, returning, or raising."""
    if how == "cancel":
        scope.cancel()
        await trio.sleep_forever()
    if how == "exception":
        raise LookupError("the caller failed")


@pytest.mark.usefixtures("subreaper")
@pytest.mark.parametrize("how", EXITS)
@pytest.mark.parametrize(
    "name", sorted(set(adversaries.COUNTS) - {"flood", "setsid-clear-env", "graceful"})
)
async def test_no_descendant_survives(piddir: Path, name: str, how: str) -> None:
    """Whatever the adversary and however the block ends, no process of the run is left."""
    raises = pytest.raises(LookupError) if how == "exception" else contextlib.nullcontext()
    with trio.CancelScope() as scope, raises:
        async with spawn_group(adversaries.argv(name, piddir), cwd="/", kill_grace=0.3):
            await adversaries.wait_recorded(piddir, adversaries.COUNTS[name])
            await end_block(how, scope)
    assert len(adversaries.recorded(piddir)) == adversaries.COUNTS[name]
    # Nothing runs any more, and nothing is left even as a zombie: the subreaper reaped it.
    assert adversaries.survivors(piddir, include_zombies=False) == []
    assert adversaries.survivors(piddir) == []


@pytest.mark.usefixtures("subreaper")
async def test_leader_exit_ends_output_and_group(piddir: Path) -> None:
    """A leader that exits leaving a background child on the pipe: output ends, child killed."""
    argv = adversaries.argv("leader-exits", piddir)
    async with spawn_group(argv, cwd="/", kill_grace=0.3) as proc:
        lines = [line.data async for line in proc]
        assert await proc.wait() == ExitStatus(exit_code=0, signal=None)
    assert sorted(lines) == [b"background child holds the pipe", b"leader exits"]
    assert adversaries.survivors(piddir) == []


async def test_escapee_found_without_subreaper(piddir: Path) -> None:
    """Without a subreaper, a setsid double-forked orphan (now init's) is found by its marker."""
    argv = adversaries.argv("setsid-double-fork", piddir)
    async with spawn_group(argv, cwd="/", kill_grace=0.3):
        await adversaries.wait_recorded(piddir, 3)
    # Nothing runs; reaping the orphan's zombie is init's business here, not the runner's.
    assert adversaries.survivors(piddir, include_zombies=False) == []


async def test_grace_lets_the_agent_clean_up(piddir: Path) -> None:
    """SIGTERM comes first and the grace is honoured: a slow, clean exit is not cut short."""
    with trio.move_on_after(60) as scope:
        async with spawn_group(
            adversaries.argv("graceful", piddir), cwd="/", kill_grace=30
        ) as proc:
            await adversaries.wait_recorded(piddir, 1)
            scope.cancel()
    assert (piddir / "cleaned").read_text() == "cleaned\n"
    assert await proc.wait() == ExitStatus(exit_code=143, signal=None)


async def test_grace_reaches_every_member_of_the_group(piddir: Path) -> None:
    """SIGTERM goes to the whole group, not only the leader: a member's clean-up runs too."""
    with trio.move_on_after(60) as scope:
        async with spawn_group(adversaries.argv("graceful-child", piddir), cwd="/", kill_grace=10):
            await adversaries.wait_recorded(piddir, 2)
            scope.cancel()
    assert (piddir / "cleaned").read_text() == "cleaned\n"
    assert adversaries.survivors(piddir, include_zombies=False) == []


async def test_no_wait_for_the_grace_once_the_group_is_gone(piddir: Path) -> None:
    """A group that obeys SIGTERM ends the block at once, long before the grace runs out."""
    start = trio.current_time()
    with trio.CancelScope() as scope:
        async with spawn_group(adversaries.argv("silent", piddir), cwd="/", kill_grace=600):
            await adversaries.wait_recorded(piddir, 1)
            scope.cancel()
    assert trio.current_time() - start < 60
    assert adversaries.survivors(piddir, include_zombies=False) == []


async def test_output_exactly_at_the_cap_is_whole() -> None:
    """Output of exactly max_output_bytes is delivered whole, with no marker."""
    lines, _ = await collect(["sh", "-c", "printf '123456789\\n%.0s' 1 2 3"], max_output_bytes=30)
    assert [(line.data, line.truncated) for line in lines] == [(b"123456789", False)] * 3


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid``, None once it is gone."""
    stat = read_stat(pid)
    return stat.ppid if stat is not None else None


@pytest.mark.usefixtures("subreaper")
async def test_orphan_with_cleared_environment_found_by_seen_pid(piddir: Path) -> None:
    """An escapee with no marker, orphaned to the subreaper, is still known by pid + start time."""
    argv = adversaries.argv("setsid-clear-env", piddir)
    async with spawn_group(argv, cwd="/", kill_grace=0.3) as proc:
        recorded = await adversaries.wait_recorded(piddir, 3)
        (child,) = [pid for pid in recorded if parent_of(pid) == proc.pid]
        (orphan,) = [pid for pid in recorded if parent_of(pid) == child]
        # White-box: wait for the runner's periodic scan to have seen it while its parent lived.
        with trio.fail_after(30):
            while orphan not in proc._tree.seen:  # noqa: ASYNC110
                await trio.sleep(0.05)
        (piddir / "release").touch()
        with trio.fail_after(30):
            # /proc offers no event for a reparenting: poll it.
            while parent_of(orphan) != os.getpid():  # noqa: ASYNC110
                await trio.sleep(0.01)
        # Now it is in no group of the run, carries no marker and has no ancestor in the run.
    assert adversaries.survivors(piddir) == []


@pytest.mark.usefixtures("subreaper")
async def test_concurrent_runs_kill_only_their_own(tmp_path: Path) -> None:
    """Ending one run leaves another run's processes, escaped ones included, untouched."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    name = "setsid-double-fork"
    async with spawn_group(adversaries.argv(name, second), cwd="/", kill_grace=0.3):
        await adversaries.wait_recorded(second, 3)
        async with spawn_group(adversaries.argv(name, first), cwd="/", kill_grace=0.3):
            await adversaries.wait_recorded(first, 3)
        assert adversaries.survivors(first) == []
        assert len(adversaries.survivors(second, include_zombies=False)) == 2
    assert adversaries.survivors(second) == []


def host_env() -> dict[str, str]:
    """The environment for a stand-in daemon process that imports host_daemon."""
    import host_daemon._process  # noqa: PLC0415 -- only to locate the package

    source = str(Path(host_daemon._process.__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


async def read_until(stream: trio.abc.ReceiveStream, text: bytes, buffer: bytearray) -> None:
    """Read ``stream`` into ``buffer`` until ``text`` has arrived."""
    with trio.fail_after(60):
        while text not in buffer:
            chunk = await stream.receive_some()
            assert chunk, f"stream ended before {text!r}: {bytes(buffer)!r}"
            buffer += chunk


async def test_orphans_reaped_by_the_subreaper_daemon(piddir: Path) -> None:
    """A daemon that is a subreaper kills and reaps a run's setsid double-forked orphans."""
    argv = adversaries.argv("host", piddir, "1", "setsid-double-fork", "3")
    host = await trio.lowlevel.open_process(
        argv, stdin=-1, stdout=-1, env=host_env(), start_new_session=True
    )
    try:
        assert host.stdin is not None
        assert host.stdout is not None
        out = bytearray()
        await read_until(host.stdout, b"ready\n", out)
        recorded = adversaries.recorded(piddir)
        assert len(recorded) == 3
        await host.stdin.send_all(b"go\n")
        await read_until(host.stdout, b"ended\n", out)
        # The stand-in daemon is still alive: any zombie of its run would still show.
        assert adversaries.survivors(piddir) == []
        await host.stdin.aclose()
        assert await host.wait() == 0
    finally:
        host.kill()
        await host.wait()


async def test_parent_death_signal(piddir: Path) -> None:
    """When the daemon is SIGKILLed, its run's leader gets SIGTERM from the kernel and dies."""
    argv = adversaries.argv("host", piddir, "0", "silent", "1")
    host = await trio.lowlevel.open_process(
        argv, stdin=-1, stdout=-1, env=host_env(), start_new_session=True
    )
    try:
        assert host.stdout is not None
        await read_until(host.stdout, b"ready\n", bytearray())
        (leader,) = adversaries.recorded(piddir)
        assert adversaries.survivors(piddir) == [leader]
        host.kill()
        assert await host.wait() == -signal.SIGKILL
        assert await adversaries.wait_gone(piddir, include_zombies=False) == []
    finally:
        host.kill()
        await host.wait()
