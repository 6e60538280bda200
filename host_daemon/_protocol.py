"""The daemon's wire protocol, sans-IO: frames, messages, the encoder and the decoder.

A frame is one JSON object on one line (``\\n``-terminated, UTF-8). Its ``type`` field names the
message; the other fields are the message's attributes. A conversation goes:

1. daemon → client ``challenge`` (protocol version, server nonce);
2. client → daemon ``hello`` (protocol version, client nonce, client proof);
3. daemon → client ``welcome`` (server proof: the daemon knows the token too);
4. client → daemon one operation: ``probe``, ``run`` (the fields of a ``RunRequest``),
   ``session_close`` or a worktree operation (``worktree_create``, ``worktree_commit``,
   ``worktree_diff``, ``worktree_commits``, ``worktree_merge``, ``worktree_discard``,
   ``worktree_sweep``);
5. daemon → client ``probe_info``; or ``run_started``, ``agent_event``…, ``run_finished``; or
   ``session_closed``; or the worktree operation's one reply (``worktree_info`` or
   ``worktree_skipped``, ``commit_done``, ``diff_done``, ``commits_done``, ``merge_done``,
   ``discard_done``, ``sweep_done``); or, at any point, one ``error`` frame, after which the
   daemon closes the connection.

A run with a ``run_id`` is detachable: its ``run_started``, ``agent_event``,
``permission_request``, ``permission_resolved`` and ``run_finished`` frames carry ``seq`` (1, 2,
3…), the client may send ``run_cancel`` on its stream, and a fresh connection may ask ``run_attach``
(answered ``run_attached``, then the run's frames from ``after_seq + 1``) or ``run_cancel``
(answered ``run_cancelled``).

During a live run (``live: true``) the client may also send ``permission_decision``,
``turn_input`` and ``interrupt`` frames, and the run's stream carries ``permission_request``,
``permission_resolved`` and ``input_accepted`` frames among its ``agent_event`` frames.

Nothing here touches a socket: ``encode_frame`` turns a message into bytes and ``FrameDecoder``
turns bytes, fed in arbitrary chunks, into messages or a ``ProtocolViolation``.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, Final, TypeAlias, get_args

import attrs
import orjson

from ._errors import DaemonError, ErrorCode
from ._records import (
    AgentEvent,
    AgentEventKind,
    CommitDone,
    CommitsDone,
    DiffDone,
    DiscardDone,
    InputAccepted,
    Interrupt,
    MergeDone,
    PermissionDecision,
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
    SessionClose,
    SessionClosed,
    SweepDone,
    TurnInput,
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
from ._strict import describe_structure_error, json_type_name, make_strict_converter

PROTOCOL_VERSION: Final = 1
#: Frames a client may send: a hello and one request, small by nature.
DEFAULT_MAX_REQUEST_BYTES: Final = 1024 * 1024
#: Frames the daemon sends: an agent event carries a raw output line (and its text), so it may be
#: large; the daemon caps lines, and the client accepts frames up to this size.
DEFAULT_MAX_EVENT_FRAME_BYTES: Final = 128 * 1024 * 1024


@attrs.frozen
class Challenge:
    """The daemon's first frame: who it is and the nonce the client must prove the token over."""

    protocol_version: int
    server_nonce: str


@attrs.frozen
class Hello:
    """The client's first frame: its protocol version, its own nonce and its proof of the token."""

    protocol_version: int
    client_nonce: str
    proof: str


@attrs.frozen
class Welcome:
    """The daemon's proof that it knows the token too (mutual authentication)."""

    proof: str


@attrs.frozen
class ProbeRequest:
    """Ask the daemon what it is and can do."""

    #: How long a CLI not yet known may take to answer ``--version`` and its live check (a
    #: create deciding whether to run live waits for them); None: the probe's own few seconds.
    #: Clamped to 60 s.
    cli_wait_s: float | None = None


@attrs.frozen
class ErrorFrame:
    """The last frame of a failed conversation: a machine-readable code and a message."""

    code: ErrorCode
    message: str


Message: TypeAlias = (
    Challenge
    | Hello
    | Welcome
    | ProbeRequest
    | RunRequest
    | WorktreeCreate
    | WorktreeCommit
    | WorktreeDiff
    | WorktreeCommits
    | WorktreeMerge
    | WorktreeDiscard
    | WorktreeSweep
    | ProbeInfo
    | RunStarted
    | AgentEvent
    | RunFinished
    | WorktreeInfo
    | WorktreeSkipped
    | CommitDone
    | DiffDone
    | CommitsDone
    | MergeDone
    | DiscardDone
    | SweepDone
    | PermissionRequest
    | PermissionResolved
    | PermissionDecision
    | TurnInput
    | InputAccepted
    | Interrupt
    | SessionClose
    | SessionClosed
    | RunAttach
    | RunAttached
    | RunCancel
    | RunCancelled
    | ErrorFrame
)

_TAGS: Final[Mapping[type[Any], str]] = {
    Challenge: "challenge",
    Hello: "hello",
    Welcome: "welcome",
    ProbeRequest: "probe",
    RunRequest: "run",
    WorktreeCreate: "worktree_create",
    WorktreeCommit: "worktree_commit",
    WorktreeDiff: "worktree_diff",
    WorktreeCommits: "worktree_commits",
    WorktreeMerge: "worktree_merge",
    WorktreeDiscard: "worktree_discard",
    WorktreeSweep: "worktree_sweep",
    ProbeInfo: "probe_info",
    RunStarted: "run_started",
    AgentEvent: "agent_event",
    RunFinished: "run_finished",
    WorktreeInfo: "worktree_info",
    WorktreeSkipped: "worktree_skipped",
    CommitDone: "commit_done",
    DiffDone: "diff_done",
    CommitsDone: "commits_done",
    MergeDone: "merge_done",
    DiscardDone: "discard_done",
    SweepDone: "sweep_done",
    PermissionRequest: "permission_request",
    PermissionResolved: "permission_resolved",
    PermissionDecision: "permission_decision",
    TurnInput: "turn_input",
    InputAccepted: "input_accepted",
    Interrupt: "interrupt",
    SessionClose: "session_close",
    SessionClosed: "session_closed",
    RunAttach: "run_attach",
    RunAttached: "run_attached",
    RunCancel: "run_cancel",
    RunCancelled: "run_cancelled",
    ErrorFrame: "error",
}
_BY_TAG: Final[Mapping[str, type[Any]]] = {tag: cls for cls, tag in _TAGS.items()}

#: The worktree operations a client may ask for, one per connection (as ``probe`` or ``run``).
WORKTREE_OPERATIONS: Final[frozenset[type[Any]]] = frozenset(
    {
        WorktreeCreate,
        WorktreeCommit,
        WorktreeDiff,
        WorktreeCommits,
        WorktreeMerge,
        WorktreeDiscard,
        WorktreeSweep,
    }
)
#: The requests whose strings reach argv or paths: NUL refused, and a malformed one is an
#: ``invalid_request`` (the daemon refused a request, not a frame it could not read).
_REQUESTS: Final[frozenset[type[Any]]] = frozenset({RunRequest, SessionClose, *WORKTREE_OPERATIONS})

#: What a client may send during a live run, after its request.
LIVE_CONTROL: Final[frozenset[type[Any]]] = frozenset({PermissionDecision, TurnInput, Interrupt})

#: The frames of a detachable run that carry ``seq``: numbered, spooled, replayed on attach.
NUMBERED: Final[frozenset[type[Any]]] = frozenset(
    {RunStarted, AgentEvent, PermissionRequest, PermissionResolved, RunFinished}
)

#: What each side may receive.
CLIENT_TO_DAEMON: Final[frozenset[type[Any]]] = frozenset(
    {
        Hello,
        ProbeRequest,
        RunRequest,
        RunAttach,
        RunCancel,
        SessionClose,
        *WORKTREE_OPERATIONS,
        *LIVE_CONTROL,
    }
)
DAEMON_TO_CLIENT: Final[frozenset[type[Any]]] = frozenset(
    {
        Challenge,
        Welcome,
        ProbeInfo,
        RunStarted,
        AgentEvent,
        RunFinished,
        WorktreeInfo,
        WorktreeSkipped,
        CommitDone,
        DiffDone,
        CommitsDone,
        MergeDone,
        DiscardDone,
        SweepDone,
        PermissionRequest,
        PermissionResolved,
        InputAccepted,
        SessionClosed,
        RunAttached,
        RunCancelled,
        ErrorFrame,
    }
)


class ProtocolViolation(DaemonError):
    """The peer broke the protocol; ``code`` and ``message`` go into the error frame."""


#: The wire's converter: strict, as every boundary of the package is.
CONVERTER: Final = make_strict_converter()


def _unstructure_agent_event(event: AgentEvent) -> dict[str, Any]:
    # The hot path of a run: one per output line. Equal to the converter's output (tested).
    fields: dict[str, Any] = {
        "type": "agent_event",
        "kind": event.kind,
        "raw": event.raw,
        "session_id": event.session_id,
        "text": event.text,
        "tool_name": event.tool_name,
        "tool_use_id": event.tool_use_id,
        "tool_input": event.tool_input,
        "is_error": event.is_error,
        "data": event.data,
        "truncated": event.truncated,
    }
    if event.seq is not None:
        fields["seq"] = event.seq
    return fields


_AGENT_EVENT_NUMBERED_ORDER: Final = tuple(field.name for field in attrs.fields(AgentEvent))
#: Without ``seq``: a frame of a run without ``run_id`` has none (the wire stays as it was).
_AGENT_EVENT_ORDER: Final = _AGENT_EVENT_NUMBERED_ORDER[:-1]
_AGENT_EVENT_FIELDS: Final = frozenset(_AGENT_EVENT_NUMBERED_ORDER)
_AGENT_EVENT_KINDS: Final = frozenset(get_args(AgentEventKind))


def _structure_agent_event(obj: dict[str, Any]) -> AgentEvent | None:
    """An ``AgentEvent`` if ``obj`` is plainly valid, else ``None`` (the converter then decides).

    Accepts only what the strict converter accepts, and builds the same event (tested); any
    doubt falls back to the converter, which also words the error.
    """
    keys = tuple(obj)
    if keys in (_AGENT_EVENT_ORDER, _AGENT_EVENT_NUMBERED_ORDER):  # as this module writes them
        values = (*obj.values(), None)  # ``seq`` is None when absent
        kind, raw, session_id, text, tool_name, tool_use_id, tool_input, is_error = values[:8]
        data, cut, seq = values[8:11]
    elif obj.keys() <= _AGENT_EVENT_FIELDS:
        get = obj.get
        kind, raw, session_id, text = get("kind"), get("raw"), get("session_id"), get("text")
        tool_name, tool_use_id, tool_input = get("tool_name"), get("tool_use_id"), get("tool_input")
        is_error, data, cut, seq = get("is_error"), get("data"), get("truncated", False), get("seq")
    else:
        return None
    if (
        type(kind) is str
        and kind in _AGENT_EVENT_KINDS
        and type(raw) is str
        and (session_id is None or type(session_id) is str)
        and (text is None or type(text) is str)
        and (tool_name is None or type(tool_name) is str)
        and (tool_use_id is None or type(tool_use_id) is str)
        and (tool_input is None or type(tool_input) is dict)
        and (is_error is None or type(is_error) is bool)
        and (data is None or type(data) is dict)
        and type(cut) is bool
        and (seq is None or type(seq) is int)
    ):
        kind = typing.cast(AgentEventKind, kind)  # checked against the literal's values
        return AgentEvent(
            kind,
            raw,
            session_id,
            text,
            tool_name,
            tool_use_id,
            tool_input,
            is_error,
            data,
            cut,
            seq,
        )
    return None


def message_tag(message: Message) -> str:
    """The ``type`` a message travels under (``worktree_create``, ...)."""
    return _TAGS[type(message)]


def type_tag(cls: type[Any]) -> str:
    """The ``type`` the messages of class ``cls`` travel under."""
    return _TAGS[cls]


def encode_frame(message: Message) -> bytes:
    """One message as one frame: its JSON object, ``type`` first, then a newline."""
    if type(message) is AgentEvent:
        return orjson.dumps(_unstructure_agent_event(message), option=orjson.OPT_APPEND_NEWLINE)
    fields = CONVERTER.unstructure(message)
    if type(message) in NUMBERED and fields["seq"] is None:
        del fields["seq"]  # a run without ``run_id``: its frames are as they always were
    return orjson.dumps({"type": _TAGS[type(message)], **fields}, option=orjson.OPT_APPEND_NEWLINE)


def decode_frame(line: bytes | bytearray, accept: frozenset[type[Any]]) -> Message:
    """Parse one frame (without its newline) into a message that ``accept`` allows."""
    try:
        obj = orjson.loads(line)  # validates UTF-8 too
    except orjson.JSONDecodeError as exc:
        try:
            bytes(line).decode("utf-8")
        except UnicodeDecodeError as utf8:
            raise ProtocolViolation(
                "invalid_utf8", f"frame is not valid UTF-8: {utf8.reason}"
            ) from None
        raise ProtocolViolation("invalid_json", f"frame is not valid JSON: {exc}") from None
    if type(obj) is not dict:
        raise ProtocolViolation("not_an_object", f"expected object, got {json_type_name(obj)} @ $")
    tag = obj.pop("type", None)
    if type(tag) is not str:
        raise ProtocolViolation(
            "invalid_message", f"expected str, got {json_type_name(tag)} @ $.type"
        )
    cls = _BY_TAG.get(tag)
    if cls is None or cls not in accept:
        allowed = ", ".join(sorted(_TAGS[c] for c in accept))
        raise ProtocolViolation(
            "unknown_type", f"unknown message type {tag!r} @ $.type (expected one of {allowed})"
        )
    if cls is AgentEvent and (event := _structure_agent_event(obj)) is not None:
        return event
    try:
        message: Message = CONVERTER.structure(obj, cls)
    except Exception as exc:  # any cattrs failure is the peer's malformed frame
        code: ErrorCode = "invalid_request" if cls in _REQUESTS else "invalid_message"
        raise ProtocolViolation(code, describe_structure_error(exc)) from None
    if cls in _REQUESTS:
        _refuse_nul(message)
    return message


_REQUEST_FIELDS: Final[Mapping[type[Any], tuple[str, ...]]] = {
    cls: tuple(field.name for field in attrs.fields(cls)) for cls in _REQUESTS
}


def _refuse_nul(request: Message) -> None:
    """Refuse a NUL in any string of a request (in a list too): each one reaches argv or a path.

    The kernel takes argv, environment and paths as C strings, so a NUL would cut them short
    (Python refuses such a string outright, far from the client that sent it).
    """
    for name in _REQUEST_FIELDS[type(request)]:
        value = getattr(request, name)
        if type(value) is str:
            _refuse_nul_in(value, f"$.{name}")
        elif type(value) is list:
            for index, item in enumerate(value):
                if type(item) is str:
                    _refuse_nul_in(item, f"$.{name}[{index}]")


def _refuse_nul_in(value: str, where: str) -> None:
    if (at := value.find("\0")) >= 0:
        raise ProtocolViolation(
            "invalid_request",
            f"expected a string without NUL characters, got one with NUL at index {at} @ {where}",
        )


class FrameDecoder:
    """Split a byte stream into frames and decode them; bounded memory, chunking-agnostic.

    ``feed`` appends bytes, ``feed_eof`` marks the end; ``next_message`` returns the next
    complete message, ``None`` when more bytes are needed, or raises ``ProtocolViolation``.
    After a violation the decoder keeps raising it: the conversation is over. A frame longer
    than ``max_frame_bytes`` is refused as soon as that many bytes have arrived without a
    newline, not after buffering the whole thing.
    """

    def __init__(self, accept: frozenset[type[Any]], *, max_frame_bytes: int) -> None:
        self._accept = accept
        self._max = max_frame_bytes
        self._buffer = bytearray()
        # Frames are read in place: ``_start`` is where the next one begins, and the bytes
        # before it are dropped at the next ``feed`` (one move per chunk, not one per frame).
        self._start = 0
        self._scanned = 0  # ``_buffer[_start:_scanned]`` is known to hold no newline
        self._failure: ProtocolViolation | None = None
        self._eof = False

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned message."""
        return len(self._buffer) - self._start

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes (possibly none)."""
        if self._start:
            del self._buffer[: self._start]
            self._scanned -= self._start
            self._start = 0
        self._buffer += data

    def feed_eof(self) -> None:
        """The peer closed its side: a frame left unfinished is now a violation."""
        self._eof = True

    def next_message(self) -> Message | None:
        """The next message, or ``None`` if more data is needed (or the stream ended cleanly)."""
        if self._failure is not None:
            raise self._failure
        try:
            return self._next()
        except ProtocolViolation as exc:
            self._failure = exc
            self._buffer.clear()
            self._start = self._scanned = 0
            raise

    def _next(self) -> Message | None:
        buffer, start = self._buffer, self._start
        end = buffer.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(buffer)
            if self._scanned - start > self._max:
                raise self._too_large()
            if self._eof and self._scanned > start:
                raise ProtocolViolation(
                    "truncated_frame", "connection closed in the middle of a frame"
                )
            return None
        if end - start > self._max:
            raise self._too_large()
        line = buffer[start:end]
        self._start = self._scanned = end + 1
        return decode_frame(line, self._accept)

    def _too_large(self) -> ProtocolViolation:
        return ProtocolViolation("frame_too_large", f"frame exceeds the limit of {self._max} bytes")
