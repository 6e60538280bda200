"""The hot path's shortcuts agree with the general code they stand in for.

A run's events skip the cattrs converter on both sides (a hand-written unstructure and a
checked structure for ``AgentEvent``), and the parsers read lines with orjson before the stdlib.
Each shortcut must give exactly what the general path gives, and refuse nothing it accepts.
"""

from __future__ import annotations

import typing
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_daemon import AgentEvent
from host_daemon._agents import ADAPTERS
from host_daemon._protocol import (
    CONVERTER,
    DAEMON_TO_CLIENT,
    FrameDecoder,
    ProtocolViolation,
    _structure_agent_event,
    decode_frame,
    encode_frame,
)
from host_daemon._records import AgentEventKind

KINDS = typing.get_args(AgentEventKind)
FIELDS = [
    "kind",
    "raw",
    "session_id",
    "text",
    "tool_name",
    "tool_use_id",
    "tool_input",
    "is_error",
    "data",
    "truncated",
    "seq",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
free_dicts = st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3)
optional_text = st.none() | st.text()
agent_events = st.builds(
    AgentEvent,
    kind=st.sampled_from(KINDS),
    raw=st.text(),
    session_id=optional_text,
    text=optional_text,
    tool_name=optional_text,
    tool_use_id=optional_text,
    tool_input=free_dicts,
    is_error=st.none() | st.booleans(),
    data=free_dicts,
    truncated=st.booleans(),
    seq=st.none() | st.integers(1, 2**53),
)
# Field values of every JSON type, so that each field sees right and wrong types alike.
any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([*KINDS, "nope", ""]),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
event_like_dicts = st.dictionaries(
    st.sampled_from([*FIELDS, "extra", "type"]), any_value, max_size=len(FIELDS) + 1
)


def converter_frame(event: AgentEvent) -> bytes:
    """The frame as the general path builds it: the converter's dict, ``type`` first, and no
    ``seq`` when it is None (the frames of a run without ``run_id`` are as they always were)."""
    fields = CONVERTER.unstructure(event)
    if fields["seq"] is None:
        del fields["seq"]
    return orjson.dumps({"type": "agent_event", **fields}) + b"\n"


@settings(max_examples=300, deadline=None)
@given(agent_events)
def test_event_frame_equals_the_converters(event: AgentEvent) -> None:
    """The hand-written encoding of an agent event is byte for byte the converter's."""
    assert encode_frame(event) == converter_frame(event)


@settings(max_examples=300, deadline=None)
@given(agent_events)
def test_fast_structure_takes_every_valid_event(event: AgentEvent) -> None:
    """Every well-formed event frame takes the shortcut and comes back equal."""
    fields = orjson.loads(encode_frame(event))
    del fields["type"]
    assert _structure_agent_event(fields) == event
    assert decode_frame(encode_frame(event)[:-1], DAEMON_TO_CLIENT) == event


@settings(max_examples=500, deadline=None)
@given(event_like_dicts)
def test_fast_structure_never_accepts_what_the_converter_refuses(obj: dict[str, Any]) -> None:
    """The shortcut's answer is the converter's, or no answer (the converter decides)."""
    fast = _structure_agent_event(dict(obj))
    try:
        general = CONVERTER.structure(dict(obj), AgentEvent)
    except Exception:  # any refusal of the converter: the shortcut must refuse too
        assert fast is None
    else:
        assert fast is None or fast == general


def test_wrong_field_type_still_named_through_the_decoder() -> None:
    """A malformed event frame gets the converter's error, naming the field."""
    frame = b'{"type":"agent_event","kind":"text","raw":"x","is_error":"false"}\n'
    decoder = FrameDecoder(DAEMON_TO_CLIENT, max_frame_bytes=4096)
    decoder.feed(frame)
    with pytest.raises(ProtocolViolation) as caught:
        decoder.next_message()
    assert caught.value.code == "invalid_message"
    assert "expected bool, got str @ $.is_error" in caught.value.message


def test_frames_read_in_place_across_many_feeds() -> None:
    """Frames consumed from the front, feeds appended behind: every frame, in order."""
    events = [AgentEvent(kind="text", raw=f"line {i}", text="é" * i) for i in range(300)]
    data = b"".join(encode_frame(event) for event in events)
    decoder = FrameDecoder(DAEMON_TO_CLIENT, max_frame_bytes=4096)
    out = []
    for start in range(0, len(data), 777):
        decoder.feed(data[start : start + 777])
        while (message := decoder.next_message()) is not None:
            out.append(message)
    assert out == events
    assert decoder.buffered == 0


def test_parser_still_reads_lines_only_the_stdlib_accepts() -> None:
    """A result line with ``NaN`` (orjson refuses it) is still read as the result."""
    parser = ADAPTERS["claude"].new_parser()
    line = (
        '{"type":"result","subtype":"success","is_error":false,"result":"done",'
        '"session_id":"s","num_turns":2,"total_cost_usd":NaN}'
    )
    events = parser.feed(line)
    assert [event.kind for event in events] == ["usage"]
    assert events[0].raw == line
    finished = parser.finish(0, None, reason="exited")
    assert (finished.outcome, finished.final_text, finished.cost_usd) == ("success", "done", None)


def test_parser_whitespace_line_yields_nothing() -> None:
    """A blank or whitespace-only line is no event, as before."""
    parser = ADAPTERS["claude"].new_parser()
    assert parser.feed("") == []
    assert parser.feed(" \t ") == []
