"""Line splitting of a run's output: any chunking gives the same lines, cut at the limit."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from host_daemon._output import LineSplitter


def reference(data: bytes, limit: int) -> list[tuple[bytes, bool]]:
    """What the splitter must produce: every line, cut to ``limit`` and marked if longer."""
    *complete, last = data.split(b"\n")
    lines = [(line[:limit], len(line) > limit) for line in complete]
    if last:
        lines.append((last[:limit], len(last) > limit))
    return lines


def split(data: bytes, cuts: list[int], limit: int) -> list[tuple[bytes, bool]]:
    """Feed ``data`` in the chunks that ``cuts`` mark, then flush the unfinished line."""
    splitter = LineSplitter(limit)
    lines: list[tuple[bytes, bool]] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for start, end in itertools.pairwise(bounds):
        lines.extend(splitter.feed(data[start:end]))
    rest = splitter.flush()
    # A line cut at the limit was emitted already; its tail is not flushed again.
    if rest:
        lines.append((rest, False))
    return lines


@given(
    data=st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"\n")),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
    limit=st.integers(min_value=1, max_value=40),
)
def test_any_chunking_gives_the_reference_lines(data: bytes, cuts: list[int], limit: int) -> None:
    """However the bytes are chunked, the lines are the reference split, cut at the limit."""
    assert split(data, cuts, limit) == reference(data, limit)


def test_cut_line_never_buffered_whole() -> None:
    """A 10 MB line fed in 64 KiB chunks never holds more than the limit."""
    splitter = LineSplitter(1000)
    chunk = b"a" * 65536
    emitted = []
    for _ in range(160):
        emitted.extend(splitter.feed(chunk))
        assert len(splitter._line) <= 1000
    emitted.extend(splitter.feed(b"\nnext\n"))
    assert emitted == [(b"a" * 1000, True), (b"next", False)]
