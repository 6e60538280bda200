"""The spool's sans-IO numbering and its file: numbered frames decode with their seq, replies
pass unnumbered, a replay is exactly the frames after a number, whatever the read chunking."""

from __future__ import annotations

import pathlib

import pytest

from host_daemon import AgentEvent, InputAccepted, RunStarted
from host_daemon import _spool as spool_module
from host_daemon._protocol import DAEMON_TO_CLIENT, decode_frame, encode_frame
from host_daemon._spool import Spool, frames_after, number_frames


def test_numbered_frames_get_seq_and_replies_pass_unnumbered() -> None:
    """Run frames are numbered from ``next_seq`` and spooled; ``input_accepted`` is neither."""
    frames = (
        encode_frame(RunStarted(pid=1, argv=["a"], cwd="/"))
        + encode_frame(InputAccepted(steered=True))
        + encode_frame(AgentEvent(kind="text", raw='{"seq":99}', text=',"seq":98}'))
    )
    wire, spooled, next_seq = number_frames(frames, 5)
    decoded = [decode_frame(line, DAEMON_TO_CLIENT) for line in wire.splitlines()]
    assert [getattr(message, "seq", "none") for message in decoded] == [5, "none", 6]
    assert isinstance(decoded[1], InputAccepted)
    assert spooled.splitlines() == [wire.splitlines()[0], wire.splitlines()[2]]
    assert next_seq == 7


def test_frames_after_keeps_exactly_the_later_numbers() -> None:
    """A replay from ``after_seq`` holds the frames numbered above it, in order."""
    events = b"".join(encode_frame(AgentEvent(kind="text", raw=str(n))) for n in range(10))
    _, spooled, _ = number_frames(events, 1)
    later = frames_after(spooled, 7)
    assert [decode_frame(line, DAEMON_TO_CLIENT).seq for line in later.splitlines()] == [8, 9, 10]  # type: ignore[union-attr]


def test_replay_from_the_file_is_whole_frames_across_chunks(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks cut mid-frame still replay whole frames, each once; the file is 0600."""
    monkeypatch.setattr(spool_module, "_READ_CHUNK", 7)
    spool = Spool(str(tmp_path), "run-0123456789")
    events = b"".join(encode_frame(AgentEvent(kind="text", raw="x" * n)) for n in range(20))
    _, spooled, _ = number_frames(events, 1)
    spool.append(spooled[:100])
    spool.append(spooled[100:])
    replay = b"".join(spool.chunks_after(3))
    assert replay == frames_after(spooled, 3)
    assert (pathlib.Path(spool.path).stat().st_mode & 0o777) == 0o600
    spool.remove()
    assert not pathlib.Path(spool.path).exists()
