"""The sans-IO wire protocol: framing, the strict converter and the decoder's refusals."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_daemon import (
    ERROR_CODES,
    MERGE_STRATEGIES,
    AgentEvent,
    AgentInfo,
    CommitDone,
    CommitInfo,
    CommitsDone,
    DiffDone,
    DiscardDone,
    FileStat,
    MergeDone,
    ProbeInfo,
    RunAttach,
    RunAttached,
    RunCancel,
    RunCancelled,
    RunFinished,
    RunRequest,
    RunStarted,
    SweepDone,
    WorktreeCommit,
    WorktreeCommits,
    WorktreeCreate,
    WorktreeDiff,
    WorktreeDiscard,
    WorktreeInfo,
    WorktreeMerge,
    WorktreeSkipped,
    WorktreeSweep,
)
from host_daemon._protocol import (
    _TAGS,
    CLIENT_TO_DAEMON,
    DAEMON_TO_CLIENT,
    Challenge,
    ErrorFrame,
    FrameDecoder,
    Hello,
    Message,
    ProbeRequest,
    ProtocolViolation,
    Welcome,
    decode_frame,
    encode_frame,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
free_dicts = st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3)
finite = st.floats(allow_nan=False, allow_infinity=False)

# A request's strings reach argv and paths, where NUL cannot go: the decoder refuses it.
request_text = st.text(st.characters(codec="utf-8", exclude_characters="\0"))
run_requests = st.builds(
    RunRequest,
    agent=st.sampled_from(["claude", "codex", "gemini"]),
    prompt=request_text,
    cwd=request_text,
    resume_session_id=st.none() | request_text,
    model=st.none() | request_text,
    max_turns=st.none() | st.integers(1, 10**6),
    max_budget_usd=st.none() | finite,
    permission_mode=st.none() | request_text,
    timeout_s=st.none() | finite,
    worktree=st.none() | request_text,
    run_id=st.none() | st.text("abcdef0123456789", min_size=8, max_size=64),
)
seqs = st.none() | st.integers(1, 2**40)
worktree_requests: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        WorktreeCreate,
        key=request_text,
        cwd=request_text,
        branch=request_text,
        base_ref=st.none() | request_text,
        include_uncommitted=st.booleans(),
        required=st.booleans(),
    ),
    st.builds(WorktreeCommit, key=request_text, message=request_text),
    st.builds(WorktreeDiff, key=request_text, max_bytes=st.integers(0, 2**40)),
    st.builds(WorktreeCommits, key=request_text),
    st.builds(
        WorktreeMerge,
        key=request_text,
        strategy=st.sampled_from(MERGE_STRATEGIES),
        message=st.none() | request_text,
    ),
    st.builds(WorktreeDiscard, key=request_text, delete_branch=st.booleans()),
    st.builds(WorktreeSweep, keep=st.lists(request_text, max_size=4)),
)
sha = st.text("0123456789abcdef", min_size=40, max_size=40)
worktree_replies: st.SearchStrategy[Message] = st.one_of(
    st.builds(WorktreeSkipped, reason=st.text()),
    st.builds(
        WorktreeInfo,
        key=st.text(),
        repo=st.text(),
        path=st.text(),
        subdir=st.text(),
        branch=st.text(),
        base_branch=st.none() | st.text(),
        base_commit=sha,
        head_commit=sha,
    ),
    st.builds(CommitDone, commit=st.none() | sha, files=st.lists(st.text(), max_size=3)),
    st.builds(
        DiffDone,
        base_commit=sha,
        head_commit=sha,
        files=st.lists(
            st.builds(
                FileStat,
                path=st.text(),
                added=st.none() | st.integers(0, 10**6),
                removed=st.none() | st.integers(0, 10**6),
                status=st.sampled_from(["added", "modified", "deleted", "renamed", "other"]),
            ),
            max_size=3,
        ),
        diff=st.text(),
        truncated=st.booleans(),
    ),
    st.builds(
        CommitsDone,
        commits=st.lists(
            st.builds(
                CommitInfo,
                sha=sha,
                subject=st.text(),
                body=st.text(),
                author=st.text(),
                at=st.text(),
                files=st.lists(st.text(), max_size=3),
            ),
            max_size=3,
        ),
    ),
    st.builds(
        MergeDone,
        strategy=st.sampled_from(MERGE_STRATEGIES),
        base_branch=st.text(),
        commit=sha,
        files=st.lists(st.text(), max_size=3),
        checkout_updated=st.booleans(),
    ),
    st.builds(DiscardDone, removed_worktree=st.booleans(), deleted_branch=st.booleans()),
    st.builds(
        SweepDone,
        removed=st.lists(st.text(), max_size=3),
        kept_branches=st.lists(st.text(), max_size=3),
    ),
)
agent_events = st.builds(
    AgentEvent,
    kind=st.sampled_from(["init", "text", "tool_use", "other", "stderr"]),
    raw=st.text(),
    session_id=st.none() | st.text(),
    text=st.none() | st.text(),
    tool_input=free_dicts,
    is_error=st.none() | st.booleans(),
    data=free_dicts,
    truncated=st.booleans(),
    seq=seqs,
)
run_started = st.builds(
    RunStarted, pid=st.integers(1, 2**22), argv=st.lists(st.text()), cwd=st.text(), seq=seqs
)
daemon_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Challenge, protocol_version=st.integers(0, 9), server_nonce=st.text()),
    st.builds(Welcome, proof=st.text()),
    run_started,
    agent_events,
    st.builds(
        RunFinished,
        outcome=st.sampled_from(["success", "error", "cancelled", "timed_out", "killed"]),
        exit_code=st.none() | st.integers(0, 255),
        signal=st.none() | st.integers(1, 64),
        session_id=st.none() | st.text(),
        final_text=st.none() | st.text(),
        cost_usd=st.none() | finite,
        num_turns=st.none() | st.integers(0, 1000),
        usage=free_dicts,
        error=st.none() | st.text(),
        seq=seqs,
    ),
    st.builds(
        RunAttached,
        run_id=st.text(),
        next_seq=st.integers(1, 2**40),
        live=st.booleans(),
        started=run_started,
    ),
    st.builds(RunCancelled, run_id=st.text(), found=st.booleans()),
    st.builds(ErrorFrame, code=st.sampled_from(sorted(ERROR_CODES)), message=st.text()),
    worktree_replies,
)
client_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, protocol_version=st.integers(0, 9), client_nonce=st.text(), proof=st.text()),
    st.just(ProbeRequest()),
    run_requests,
    worktree_requests,
    st.builds(RunAttach, run_id=st.text(), after_seq=st.integers(0, 2**40)),
    st.builds(RunCancel, run_id=st.text()),
)


def decode_all(decoder: FrameDecoder) -> list[Message]:
    out = []
    while (message := decoder.next_message()) is not None:
        out.append(message)
    return out


def violation(data: bytes, accept: frozenset[type] = CLIENT_TO_DAEMON, limit: int = 4096) -> str:
    decoder = FrameDecoder(accept, max_frame_bytes=limit)
    decoder.feed(data)
    with pytest.raises(ProtocolViolation) as caught:
        decode_all(decoder)
    return f"{caught.value.code}: {caught.value.message}"


@settings(max_examples=60, deadline=None)
@given(st.lists(daemon_messages, min_size=1, max_size=4), st.data())
def test_daemon_frames_survive_any_chunking(messages: list[Message], data: st.DataObject) -> None:
    """Messages encoded back to back decode identically however the bytes are split."""
    wire = b"".join(encode_frame(m) for m in messages)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(wire)), max_size=12)))
    decoder = FrameDecoder(DAEMON_TO_CLIENT, max_frame_bytes=len(wire) + 1)
    got: list[Message] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        decoder.feed(wire[start:end])
        got.extend(decode_all(decoder))
    assert got == messages


@settings(max_examples=30, deadline=None)
@given(client_messages)
def test_client_frame_split_at_every_byte(message: Message) -> None:
    """A request fed one byte at a time decodes to itself, and only at its last byte."""
    wire = encode_frame(message)
    decoder = FrameDecoder(CLIENT_TO_DAEMON, max_frame_bytes=len(wire))
    for i in range(len(wire) - 1):
        decoder.feed(wire[i : i + 1])
        assert decoder.next_message() is None
    decoder.feed(wire[-1:])
    assert decoder.next_message() == message


def test_several_frames_in_one_read() -> None:
    """Three frames arriving in one chunk come out as three messages, in order."""
    messages: list[Message] = [
        ProbeRequest(),
        Hello(protocol_version=1, client_nonce="a", proof="b"),
        RunRequest(agent="claude", prompt="hi", cwd="p"),
    ]
    decoder = FrameDecoder(CLIENT_TO_DAEMON, max_frame_bytes=1024)
    decoder.feed(b"".join(encode_frame(m) for m in messages))
    assert decode_all(decoder) == messages


@settings(deadline=None)  # a loaded CI machine must not fail on timing
@given(st.integers(1, 64), st.integers(1, 200))
def test_oversized_frame_refused_before_its_newline(limit: int, excess: int) -> None:
    """More than the limit without a newline is refused at once, without waiting for the end."""
    decoder = FrameDecoder(CLIENT_TO_DAEMON, max_frame_bytes=limit)
    decoder.feed(b"x" * (limit + excess))
    with pytest.raises(ProtocolViolation) as caught:
        decoder.next_message()
    assert caught.value.code == "frame_too_large"
    assert decoder.buffered == 0


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    """The limit counts the frame without its newline, and is inclusive."""
    frame = encode_frame(ProbeRequest())
    decoder = FrameDecoder(CLIENT_TO_DAEMON, max_frame_bytes=len(frame) - 1)
    decoder.feed(frame)
    assert decoder.next_message() == ProbeRequest()


@settings(deadline=None)  # a loaded CI machine must not fail on timing
@given(st.binary(min_size=1, max_size=40))
def test_invalid_utf8_refused(junk: bytes) -> None:
    """Bytes that are not UTF-8 get ``invalid_utf8``."""
    data = b"\xff" + junk.replace(b"\n", b"")
    assert violation(data + b"\n").startswith("invalid_utf8: ")


@settings(deadline=None)  # a loaded CI machine must not fail on timing
@given(json_values.filter(lambda v: not isinstance(v, dict)))
def test_json_that_is_not_an_object_refused(value: object) -> None:
    """A JSON array, string, number or null is refused as ``not_an_object``."""
    assert violation(orjson.dumps(value) + b"\n").startswith("not_an_object: ")


def test_invalid_json_refused() -> None:
    """A line that is not JSON at all is refused as ``invalid_json``."""
    assert violation(b"{nope\n").startswith("invalid_json: ")


@settings(deadline=None)  # a loaded CI machine must not fail on timing
@given(st.text(min_size=1).filter(lambda t: t not in {_TAGS[c] for c in CLIENT_TO_DAEMON}))
def test_unknown_type_refused(tag: str) -> None:
    """A type this side does not accept is ``unknown_type``, naming the field."""
    message = violation(orjson.dumps({"type": tag}) + b"\n")
    assert message.startswith("unknown_type: ")
    assert "@ $.type" in message


def test_daemon_message_not_accepted_from_a_client() -> None:
    """A client cannot send what only the daemon sends (``run_finished``)."""
    assert violation(b'{"type":"run_finished"}\n').startswith("unknown_type: ")


def test_missing_type_refused() -> None:
    """An object without a ``type`` names the missing field."""
    assert violation(b'{"prompt":"x"}\n') == "invalid_message: expected str, got null @ $.type"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("max_turns", "3", "expected int, got str @ $.max_turns"),
        ("max_turns", 3.7, "expected int, got float @ $.max_turns"),
        ("max_turns", True, "expected int, got bool @ $.max_turns"),
        ("prompt", 5, "expected str, got int @ $.prompt"),
        ("model", ["x"], "expected str, got array @ $.model"),
        ("max_budget_usd", "1.5", "expected float, got str @ $.max_budget_usd"),
        ("max_budget_usd", False, "expected float, got bool @ $.max_budget_usd"),
        ("agent", "vim", "expected one of 'claude', 'codex', 'gemini' @ $.agent"),
        ("surprise", 1, "extra fields found (surprise) @ $"),
    ],
)
def test_wrong_field_type_named(field: str, value: object, expected: str) -> None:
    """A run request with a wrongly typed field is refused, naming the field and both types."""
    frame = {"type": "run", "agent": "claude", "prompt": "p", "cwd": "c", field: value}
    assert violation(orjson.dumps(frame) + b"\n") == f"invalid_request: {expected}"


def test_missing_field_named() -> None:
    """A run request without its prompt says which field is missing."""
    frame = {"type": "run", "agent": "claude", "cwd": "c"}
    assert violation(orjson.dumps(frame) + b"\n") == (
        "invalid_request: required field missing @ $.prompt"
    )


def test_integral_budget_accepted_as_float() -> None:
    """JSON has one number type: ``1`` is a fine ``max_budget_usd``."""
    decoder = FrameDecoder(CLIENT_TO_DAEMON, max_frame_bytes=1024)
    frame = {"type": "run", "agent": "gemini", "prompt": "p", "cwd": "c", "max_budget_usd": 1}
    decoder.feed(orjson.dumps(frame) + b"\n")
    message = decoder.next_message()
    assert isinstance(message, RunRequest)
    assert message.max_budget_usd == 1.0
    assert type(message.max_budget_usd) is float


def test_nested_field_path_named() -> None:
    """An error deep inside a probe answer names its full path."""
    info = orjson.loads(
        encode_frame(ProbeInfo("1", 1, [AgentInfo("claude", "/c", "2")], [], 1, 0, 9))
    )
    info["agents"][0]["version"] = 2
    message = violation(orjson.dumps(info) + b"\n", DAEMON_TO_CLIENT)
    assert message == "invalid_message: expected str, got int @ $.agents[0].version"


def test_violation_is_sticky() -> None:
    """After a violation the decoder refuses everything: the conversation is over."""
    decoder = FrameDecoder(CLIENT_TO_DAEMON, max_frame_bytes=1024)
    decoder.feed(b"[]\n" + encode_frame(ProbeRequest()))
    with pytest.raises(ProtocolViolation):
        decoder.next_message()
    with pytest.raises(ProtocolViolation):
        decoder.next_message()


def test_eof_inside_a_frame_is_a_violation() -> None:
    """A connection closed in the middle of a frame is reported, not silently dropped."""
    decoder = FrameDecoder(CLIENT_TO_DAEMON, max_frame_bytes=1024)
    decoder.feed(b'{"type":"pro')
    decoder.feed_eof()
    with pytest.raises(ProtocolViolation) as caught:
        decoder.next_message()
    assert caught.value.code == "truncated_frame"


def test_encoded_frame_is_one_line_with_type_first() -> None:
    """A frame is one JSON object on one line, its ``type`` first, even with newlines inside."""
    frame = encode_frame(AgentEvent(kind="text", raw="a\nb", text="a\nb"))
    assert frame.count(b"\n") == 1
    assert frame.endswith(b"\n")
    assert frame.startswith(b'{"type":"agent_event",')


@given(
    st.sampled_from(["prompt", "cwd", "resume_session_id", "model", "permission_mode"]),
    st.text(),
    st.text(),
)
def test_nul_in_any_request_string_is_refused_naming_the_field(
    field: str, before: str, after: str
) -> None:
    """A run request with NUL in a string is ``invalid_request`` at that field, wherever it is."""
    fields = {"agent": "claude", "prompt": "p", "cwd": "c", field: f"{before}\0{after}"}
    with pytest.raises(ProtocolViolation) as caught:
        decode_frame(orjson.dumps({"type": "run", **fields}), CLIENT_TO_DAEMON)
    assert caught.value.code == "invalid_request"
    assert caught.value.message.endswith(f"@ $.{field}")
    assert "NUL" in caught.value.message


@settings(max_examples=200, deadline=None)
@given(worktree_requests)
def test_worktree_request_round_trips(message: Message) -> None:
    """Every worktree operation decodes, daemon-side, to the very request the client encoded."""
    assert decode_frame(encode_frame(message)[:-1], CLIENT_TO_DAEMON) == message


@settings(max_examples=200, deadline=None)
@given(worktree_replies)
def test_worktree_reply_round_trips(message: Message) -> None:
    """Every worktree reply decodes, client-side, to the very reply the daemon encoded."""
    assert decode_frame(encode_frame(message)[:-1], DAEMON_TO_CLIENT) == message


@pytest.mark.parametrize(
    ("tag", "tagged"),
    [
        ("worktree_create", WorktreeCreate),
        ("worktree_commit", WorktreeCommit),
        ("worktree_diff", WorktreeDiff),
        ("worktree_commits", WorktreeCommits),
        ("worktree_merge", WorktreeMerge),
        ("worktree_discard", WorktreeDiscard),
        ("worktree_sweep", WorktreeSweep),
        ("worktree_info", WorktreeInfo),
        ("worktree_skipped", WorktreeSkipped),
        ("commit_done", CommitDone),
        ("diff_done", DiffDone),
        ("commits_done", CommitsDone),
        ("merge_done", MergeDone),
        ("discard_done", DiscardDone),
        ("sweep_done", SweepDone),
    ],
)
def test_worktree_records_carry_the_contracts_tags(tag: str, tagged: type) -> None:
    """Each worktree record travels under the tag the contract names (other clients rely on it)."""
    assert _TAGS[tagged] == tag


@pytest.mark.parametrize(
    "reply",
    [
        WorktreeInfo("k", "/r", "/w/k", "", "coding-agent/k", "main", "a" * 40, "b" * 40),
        SweepDone(removed=[], kept_branches=[]),
    ],
)
def test_client_cannot_send_a_worktree_reply(reply: Message) -> None:
    """Replies go one way: a client sending one gets ``unknown_type``."""
    assert violation(encode_frame(reply)).startswith("unknown_type: ")


def test_daemon_cannot_send_a_worktree_request() -> None:
    """Requests go one way: a daemon sending one gets ``unknown_type`` from the client."""
    frame = encode_frame(WorktreeSweep(keep=[]))
    assert violation(frame, DAEMON_TO_CLIENT).startswith("unknown_type: ")


_WORKTREE_MINIMAL: dict[str, dict[str, object]] = {
    "worktree_create": {"key": "t1", "cwd": "p", "branch": "coding-agent/t1"},
    "worktree_commit": {"key": "t1", "message": "turn 1"},
    "worktree_diff": {"key": "t1"},
    "worktree_commits": {"key": "t1"},
    "worktree_merge": {"key": "t1"},
    "worktree_discard": {"key": "t1"},
    "worktree_sweep": {"keep": ["t1"]},
}


@pytest.mark.parametrize(
    ("tag", "field", "value", "expected"),
    [
        ("worktree_create", "key", 7, "expected str, got int @ $.key"),
        ("worktree_create", "required", "false", "expected bool, got str @ $.required"),
        ("worktree_create", "base_ref", ["main"], "expected str, got array @ $.base_ref"),
        ("worktree_commit", "message", None, "expected str, got null @ $.message"),
        ("worktree_diff", "max_bytes", 1.5, "expected int, got float @ $.max_bytes"),
        ("worktree_diff", "max_bytes", True, "expected int, got bool @ $.max_bytes"),
        ("worktree_commits", "key", {}, "expected str, got object @ $.key"),
        (
            "worktree_merge",
            "strategy",
            "octopus",
            "expected one of 'merge', 'squash', 'rebase' @ $.strategy",
        ),
        ("worktree_discard", "delete_branch", 1, "expected bool, got int @ $.delete_branch"),
        ("worktree_sweep", "keep", "t1", "expected array, got str @ $.keep"),
        ("worktree_sweep", "keep", ["t1", 2], "expected str, got int @ $.keep[1]"),
        ("worktree_merge", "force", True, "extra fields found (force) @ $"),
    ],
)
def test_malformed_worktree_request_is_invalid_request_naming_the_field(
    tag: str, field: str, value: object, expected: str
) -> None:
    """A worktree operation with a wrong field is ``invalid_request``, naming field and types."""
    frame = {"type": tag, **_WORKTREE_MINIMAL[tag], field: value}
    assert violation(orjson.dumps(frame) + b"\n") == f"invalid_request: {expected}"


@pytest.mark.parametrize("tag", sorted(_WORKTREE_MINIMAL))
def test_worktree_request_without_its_fields_names_one(tag: str) -> None:
    """An operation missing a required field says which one is missing."""
    message = violation(orjson.dumps({"type": tag}) + b"\n")
    assert message.startswith("invalid_request: required field missing @ $.")


@given(
    st.sampled_from(
        [
            ("worktree_create", "key"),
            ("worktree_create", "cwd"),
            ("worktree_create", "branch"),
            ("worktree_create", "base_ref"),
            ("worktree_commit", "key"),
            ("worktree_commit", "message"),
            ("worktree_diff", "key"),
            ("worktree_commits", "key"),
            ("worktree_merge", "key"),
            ("worktree_merge", "message"),
            ("worktree_discard", "key"),
            ("run", "worktree"),
        ]
    ),
    st.text(),
    st.text(),
)
def test_nul_in_any_worktree_request_string_is_refused_naming_the_field(
    where: tuple[str, str], before: str, after: str
) -> None:
    """A NUL in any string of a worktree operation is ``invalid_request`` at that field."""
    tag, field = where
    minimal = _WORKTREE_MINIMAL.get(tag, {"agent": "claude", "prompt": "p", "cwd": "c"})
    frame = {"type": tag, **minimal, field: f"{before}\0{after}"}
    with pytest.raises(ProtocolViolation) as caught:
        decode_frame(orjson.dumps(frame), CLIENT_TO_DAEMON)
    assert caught.value.code == "invalid_request"
    assert caught.value.message.endswith(f"@ $.{field}")
    assert "NUL" in caught.value.message


@given(st.lists(st.text(max_size=5), max_size=4), st.text(), st.text())
def test_nul_in_a_sweep_key_is_refused_naming_its_index(
    keys: list[str], before: str, after: str
) -> None:
    """A NUL in one of a sweep's keys is ``invalid_request`` at that very list item."""
    keep = [key.replace("\0", "") for key in keys] + [f"{before}\0{after}"]
    frame = {"type": "worktree_sweep", "keep": keep}
    with pytest.raises(ProtocolViolation) as caught:
        decode_frame(orjson.dumps(frame), CLIENT_TO_DAEMON)
    assert caught.value.code == "invalid_request"
    assert caught.value.message.endswith(f"@ $.keep[{len(keep) - 1}]")
