"""Negotiation: capabilities, the legacy ``initialize``, and each era's request envelope."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from . import _versions as v
from ._context import LOG_LEVELS, Envelope, SessionState
from ._errors import InvalidParams, UnsupportedVersion
from ._headers import check_headers
from ._jsonrpc import Request
from ._registry import JSON, Registry


@attrs.frozen
class ServerInfo:
    """Who we are, as told in ``initialize`` and ``server/discover``."""

    name: str
    version: str
    instructions: str | None = None


def capabilities(era: v.Era, version: str) -> JSON:
    """The server capabilities for one revision."""
    caps: JSON = {
        "tools": {"listChanged": True},
        "resources": {"listChanged": True},
        "prompts": {"listChanged": True},
        "completions": {},
        "logging": {},
    }
    if era == "legacy":
        caps["resources"]["subscribe"] = True
        if version >= "2025-11-25":
            caps["tasks"] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    else:
        caps["resources"]["subscribe"] = True
        caps["extensions"] = {v.TASKS_EXTENSION: {}}
    return caps


def initialize(info: ServerInfo, params: JSON, session_id: str) -> tuple[SessionState, JSON]:
    """Answer a legacy ``initialize``: negotiate the version and open session state."""
    caps = params.get("capabilities", {})
    client = params.get("clientInfo", {})
    if type(caps) is not dict or type(client) is not dict:
        raise InvalidParams("expected object @ $.params.capabilities")
    version = v.negotiate_legacy(params.get("protocolVersion"))
    state = SessionState(session_id, version, caps, client)
    result: JSON = {
        "protocolVersion": version,
        "capabilities": capabilities("legacy", version),
        "serverInfo": {"name": info.name, "version": info.version},
    }
    if info.instructions:
        result["instructions"] = info.instructions
    return state, result


def legacy_envelope(request: Request, session: SessionState) -> Envelope:
    """The context of a request on a legacy session."""
    meta = request.params.get("_meta")
    token = meta.get("progressToken") if type(meta) is dict else None
    return Envelope(
        era="legacy",
        version=session.version,
        client_capabilities=session.client_capabilities,
        log_level=session.log_level,
        progress_token=token if type(token) in (str, int) else None,
        session=session,
    )


def modern_envelope(
    registry: Registry, request: Request, headers: Sequence[tuple[str, str]]
) -> Envelope:
    """Validate a 2026-07-28 request's ``_meta`` envelope and routing headers."""
    meta = request.params.get("_meta")
    if type(meta) is not dict:
        raise InvalidParams("required field missing @ $.params._meta")
    version = meta.get(v.META_VERSION)
    if type(version) is not str:
        raise InvalidParams(f"required field missing @ $.params._meta['{v.META_VERSION}']")
    check_headers(registry, request, version, headers)
    if version not in v.MODERN_VERSIONS:
        raise UnsupportedVersion(version, list(v.SUPPORTED_VERSIONS))
    caps = meta.get(v.META_CAPABILITIES)
    if type(caps) is not dict:
        raise InvalidParams(f"required field missing @ $.params._meta['{v.META_CAPABILITIES}']")
    level = meta.get(v.META_LOG_LEVEL)
    if level is not None and level not in LOG_LEVELS:
        raise InvalidParams(f"unknown log level @ $.params._meta['{v.META_LOG_LEVEL}']")
    token = meta.get("progressToken")
    return Envelope(
        era="modern",
        version=version,
        client_capabilities=caps,
        log_level=level,
        progress_token=token if type(token) in (str, int) else None,
        input_responses=request.params.get("inputResponses"),
        request_state=request.params.get("requestState"),
    )
