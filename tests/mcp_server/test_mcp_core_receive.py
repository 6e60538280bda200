"""The core's one entry point: a parsed message and its request's facts in, a typed outcome out."""

from __future__ import annotations

from typing import Any

import trio

from mcp_server._core import (
    Accepted,
    Call,
    CancelRequest,
    Core,
    DeliverResponse,
    Incoming,
    InvalidRequest,
    MethodNotFound,
    Notification,
    OpenListen,
    OpenSession,
    Refuse,
    Registry,
    Request,
    Response,
    ServerInfo,
    SessionState,
    UnsupportedVersion,
)

MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}


def make_core() -> Core:
    return Core(Registry(), ServerInfo("test", "1.0"), secret=b"k" * 32)


def modern(method: str, **params: Any) -> tuple[Request, Incoming]:
    headers = [("MCP-Protocol-Version", MODERN), ("Mcp-Method", method)]
    return Request(1, method, {"_meta": META, **params}), Incoming(MODERN, headers)


def legacy_session(core: Core) -> SessionState:
    outcome = core.receive(
        Request(0, "initialize", {"protocolVersion": "2025-11-25"}), Incoming(None, [])
    )
    assert isinstance(outcome, OpenSession)
    return outcome.state


def in_session(state: SessionState) -> Incoming:
    return Incoming("2025-11-25", [], session_id=state.session_id, session=state)


def test_initialize_opens_a_session_with_its_reply() -> None:
    """A legacy initialize is an OpenSession carrying the negotiated result message."""
    outcome = make_core().receive(
        Request(7, "initialize", {"protocolVersion": "2025-06-18"}), Incoming(None, [])
    )
    assert isinstance(outcome, OpenSession)
    assert outcome.state.version == "2025-06-18"
    assert outcome.reply["id"] == 7
    assert outcome.reply["result"]["protocolVersion"] == "2025-06-18"


def test_initialize_while_draining_is_refused_with_503() -> None:
    """No new session while the server drains."""
    outcome = make_core().receive(Request(1, "initialize", {}), Incoming(None, [], draining=True))
    assert isinstance(outcome, Refuse)
    assert (outcome.status, outcome.rid) == (503, 1)


def test_unsupported_version_header_is_refused_with_400() -> None:
    """A version header naming no served revision is refused before routing by era."""
    outcome = make_core().receive(Request(2, "ping", {}), Incoming("1999-01-01", []))
    assert isinstance(outcome, Refuse)
    assert isinstance(outcome.error, UnsupportedVersion)
    assert (outcome.status, outcome.rid) == (400, 2)


def test_legacy_request_without_session_header_is_400_and_unknown_session_404() -> None:
    """The session a legacy request needs: missing header 400, unknown session 404."""
    core = make_core()
    missing = core.receive(Request(1, "ping", {}), Incoming(None, []))
    unknown = core.receive(Request(1, "ping", {}), Incoming(None, [], session_id="nope"))
    assert isinstance(missing, Refuse)
    assert isinstance(unknown, Refuse)
    assert isinstance(missing.error, InvalidRequest)
    assert (missing.status, unknown.status) == (400, 404)


def test_client_notifications_and_responses_become_outcomes() -> None:
    """initialized marks the session; cancelled and client responses name what to act on."""
    core = make_core()
    state = legacy_session(core)
    initialized = core.receive(Notification("notifications/initialized", {}), in_session(state))
    cancelled = core.receive(
        Notification("notifications/cancelled", {"requestId": 5}), in_session(state)
    )
    answered = core.receive(Response("srv-1", {}), in_session(state))
    assert isinstance(initialized, Accepted)
    assert state.initialized
    assert cancelled == CancelRequest(state, 5)
    assert answered == DeliverResponse(state, Response("srv-1", {}))


def test_unknown_methods_are_refused_per_era() -> None:
    """An unknown method is a 404 on the 2026-07-28 leg and a 200 error on a legacy session."""
    core = make_core()
    state = legacy_session(core)
    request, incoming = modern("nope/nothing")
    modern_outcome = core.receive(request, incoming)
    legacy_outcome = core.receive(Request(3, "nope/nothing", {}), in_session(state))
    assert isinstance(modern_outcome, Refuse)
    assert isinstance(legacy_outcome, Refuse)
    assert isinstance(modern_outcome.error, MethodNotFound)
    assert (modern_outcome.status, legacy_outcome.status) == (404, 200)


def test_listen_opens_a_stream_with_the_filter_it_asked_for() -> None:
    """subscriptions/listen is an OpenListen whose filter and acknowledgement match the ask."""
    request, incoming = modern(
        "subscriptions/listen", notifications={"toolsListChanged": True, "taskIds": ["t1"]}
    )
    outcome = make_core().receive(request, incoming)
    assert isinstance(outcome, OpenListen)
    assert outcome.listen.lists == frozenset({"tools"})
    assert outcome.listen.task_ids == frozenset({"t1"})
    honoured = outcome.ack["params"]["notifications"]
    assert honoured == {"toolsListChanged": True, "taskIds": ["t1"]}


def test_malformed_listen_filter_is_refused_with_400() -> None:
    """A listen filter that is not the expected shape is refused before any stream opens."""
    request, incoming = modern("subscriptions/listen", notifications={"taskIds": "t1"})
    outcome = make_core().receive(request, incoming)
    assert isinstance(outcome, Refuse)
    assert outcome.status == 400


async def test_a_request_is_a_call_whose_run_replies() -> None:
    """A served method is a Call; running it yields the response message and its status."""
    request, incoming = modern("tools/list")
    outcome = make_core().receive(request, incoming)
    assert isinstance(outcome, Call)
    assert (outcome.era, outcome.rid) == ("modern", 1)

    class NoPeer:
        async def notify(self, method: str, params: Any) -> None:
            raise AssertionError(method)

        async def request(self, method: str, params: Any) -> Any:
            raise AssertionError(method)

        def close_stream(self) -> None:
            raise AssertionError("close_stream")

    with trio.fail_after(10):
        reply = await outcome.run(NoPeer())
    assert reply.status == 200
    assert reply.message["result"]["tools"] == []
