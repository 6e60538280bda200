"""The wire records of detachable runs: numbered frames, attach and cancel, old peers unchanged."""

from __future__ import annotations

import attrs
import orjson
import pytest

from host_daemon import (
    AgentEvent,
    PermissionRequest,
    PermissionResolved,
    ProbeInfo,
    RunAttach,
    RunAttached,
    RunCancel,
    RunCancelled,
    RunFinished,
    RunRequest,
    RunStarted,
)
from host_daemon._protocol import (
    CLIENT_TO_DAEMON,
    DAEMON_TO_CLIENT,
    ProtocolViolation,
    decode_frame,
    encode_frame,
)

STARTED = RunStarted(pid=42, argv=["claude"], cwd="/p")
FINISHED = RunFinished(
    outcome="success",
    exit_code=0,
    signal=None,
    session_id=None,
    final_text="done",
    cost_usd=None,
    num_turns=1,
    usage=None,
    error=None,
)
ASK = PermissionRequest(request_id="1.a", tool_name="Bash", input={"command": "ls"}, timeout_s=9)
RESOLVED = PermissionResolved(
    request_id="1.a", tool_name="Bash", input={}, behavior="allow", decided_by="client"
)
NUMBERED = [STARTED, AgentEvent(kind="text", raw="x", text="x"), ASK, RESOLVED, FINISHED]


@pytest.mark.parametrize("frame", NUMBERED, ids=lambda frame: type(frame).__name__)
def test_frame_without_seq_has_no_seq_key(frame: object) -> None:
    """A run without ``run_id`` sends its frames exactly as before: no ``seq`` key at all."""
    assert "seq" not in orjson.loads(encode_frame(frame))  # type: ignore[arg-type]


@pytest.mark.parametrize("frame", NUMBERED, ids=lambda frame: type(frame).__name__)
def test_numbered_frame_round_trips_with_its_seq(frame: object) -> None:
    """A numbered frame carries ``seq`` on the wire and decodes with it."""
    numbered = attrs.evolve(frame, seq=7)  # type: ignore[misc]
    encoded = encode_frame(numbered)
    assert orjson.loads(encoded)["seq"] == 7
    assert decode_frame(encoded[:-1], DAEMON_TO_CLIENT) == numbered


def test_attach_and_cancel_requests_decode() -> None:
    """``run_attach`` and ``run_cancel`` are requests a client may send after the handshake."""
    attach = b'{"type":"run_attach","run_id":"abcdef0123456789","after_seq":3}'
    cancel = b'{"type":"run_cancel","run_id":"abcdef0123456789"}'
    assert decode_frame(attach, CLIENT_TO_DAEMON) == RunAttach("abcdef0123456789", 3)
    assert decode_frame(cancel, CLIENT_TO_DAEMON) == RunCancel("abcdef0123456789")


def test_attach_replies_decode() -> None:
    """``run_attached`` (with the run's first frame) and ``run_cancelled`` reach the client."""
    attached = RunAttached(run_id="r" * 8, next_seq=4, live=False, started=STARTED)
    cancelled = RunCancelled(run_id="r" * 8, found=True)
    for reply in (attached, cancelled):
        assert decode_frame(encode_frame(reply)[:-1], DAEMON_TO_CLIENT) == reply


def test_run_id_is_optional_and_old_probe_info_decodes() -> None:
    """An old client's run request and an old daemon's probe answer still decode."""
    request = decode_frame(
        b'{"type":"run","agent":"claude","prompt":"p","cwd":"/"}', CLIENT_TO_DAEMON
    )
    assert isinstance(request, RunRequest)
    assert request.run_id is None
    old_probe = {
        "type": "probe_info",
        "daemon_version": "1",
        "protocol_version": 1,
        "agents": [],
        "roots": [],
        "max_concurrent_runs": 1,
        "active_runs": 0,
        "max_frame_bytes": 1024,
    }
    info = decode_frame(orjson.dumps(old_probe), DAEMON_TO_CLIENT)
    assert isinstance(info, ProbeInfo)
    assert (info.detach_grace_s, info.detached_runs) == (0.0, 0)


def test_a_seq_of_the_wrong_type_is_named() -> None:
    """``seq`` is an int: a string there is refused naming the field."""
    frame = b'{"type":"agent_event","kind":"text","raw":"x","seq":"1"}'
    with pytest.raises(ProtocolViolation, match=r"expected int, got str @ \$\.seq"):
        decode_frame(frame, DAEMON_TO_CLIENT)
