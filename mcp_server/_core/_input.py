"""A 2026-07-28 call's input round trip: the client's answers so far, and ``input_required``.

Answers come back signed in ``requestState`` (so the server keeps no state between the rounds)
and new ones in ``inputResponses``.
"""

from __future__ import annotations

from typing import Any

from ._context import Envelope, NeedInput
from ._errors import InvalidParams
from ._jsonrpc import Request
from ._registry import JSON
from ._schema import clip, kind_of
from ._state import Signer, open_state, sign_state


def client_answers(signer: Signer, request: Request, env: Envelope, name: str) -> dict[str, Any]:
    """The client's answers so far: from the signed ``requestState`` and ``inputResponses``."""
    answers: dict[str, Any] = {}
    if env.request_state is not None:
        answers.update(open_state(signer, env.request_state, request.method, name))
    responses = env.input_responses
    if responses is not None:
        if type(responses) is not dict:
            raise InvalidParams(
                f"expected object, got {kind_of(responses)} @ $.params.inputResponses"
            )
        for key, value in responses.items():
            if type(value) is not dict:
                where = f"$.params.inputResponses.{clip(key)}"
                raise InvalidParams(f"expected object, got {kind_of(value)} @ {where}")
        answers.update(responses)
    return answers


def input_required(
    signer: Signer, request: Request, name: str, answers: dict[str, Any], need: NeedInput
) -> JSON:
    """End a call with ``input_required``: what it needs, and the signed answers so far."""
    return {
        "resultType": "input_required",
        "inputRequests": need.requests,
        "requestState": sign_state(signer, request.method, name, answers),
    }
