"""Taking a run's output in batches: every line in order, bounded, and the end reported."""

from __future__ import annotations

import sys

from host_daemon import GroupProcess, OutputLine, spawn_group

PY = sys.executable


def write_lines(count: int, size: int) -> list[str]:
    """argv of a child writing ``count`` numbered lines of ``size`` bytes in one write."""
    script = (
        "import sys\n"
        f"lines = [str(i).rjust({size}, '.') for i in range({count})]\n"
        "sys.stdout.buffer.write(''.join(line + '\\n' for line in lines).encode())\n"
    )
    return [PY, "-c", script]


def expected(count: int, size: int) -> list[OutputLine]:
    return [OutputLine("stdout", str(i).rjust(size, ".").encode()) for i in range(count)]


async def batches(proc: GroupProcess, max_bytes: int) -> list[list[OutputLine]]:
    out = []
    while batch := await proc.next_batch(max_bytes):
        out.append(batch)
    return out


async def test_lines_of_one_write_come_as_one_batch() -> None:
    """Lines that arrived together are taken together (one atomic write: one pipe read)."""
    async with spawn_group(write_lines(100, 30), cwd="/") as proc:
        taken = await batches(proc, 1 << 20)
        await proc.wait()
    assert taken == [expected(100, 30)]


async def test_batches_are_bounded_and_keep_the_order() -> None:
    """A small bound splits the lines into batches within it; joined they are every line."""
    async with spawn_group(write_lines(2000, 100), cwd="/") as proc:
        taken = await batches(proc, 1000)
        await proc.wait()
    assert [line for batch in taken for line in batch] == expected(2000, 100)
    assert all(len(batch) == 1 or sum(len(x.data) for x in batch) <= 1000 for batch in taken)
    assert max(len(batch) for batch in taken) > 1


async def test_line_larger_than_the_bound_comes_alone() -> None:
    """A line over the bound is still delivered, by itself."""
    async with spawn_group(write_lines(3, 5000), cwd="/") as proc:
        taken = await batches(proc, 1000)
        await proc.wait()
    assert taken == [[line] for line in expected(3, 5000)]


async def test_end_of_output_is_an_empty_batch_every_time() -> None:
    """After the last line, every call returns an empty batch."""
    async with spawn_group(["sh", "-c", "echo one"], cwd="/") as proc:
        assert await proc.next_batch(1024) == [OutputLine("stdout", b"one")]
        assert await proc.next_batch(1024) == []
        assert await proc.next_batch(1024) == []
