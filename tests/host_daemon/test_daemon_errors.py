"""The error vocabulary: one base with a code, one ``ErrorCode`` type, one type-error wording."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import orjson
import pytest

import host_daemon
from host_daemon import ERROR_CODES, DaemonError, ErrorCode
from host_daemon._errors import CLIENT_ERROR_CLASSES, error_from_code
from host_daemon._protocol import (
    DAEMON_TO_CLIENT,
    ErrorFrame,
    FrameDecoder,
    ProtocolViolation,
    decode_frame,
    encode_frame,
)

#: Local failures that never become an error frame, each reported as text where it is caught:
#: the token file at start-up, a CLI's ``--version`` in a probe, a converter hook's refusal, a
#: live agent's stdin gone (the session logs it; the turn ends by the agent's exit), and a state
#: directory another process holds at start-up (the command exits naming the holder).
UNCODED = {"TokenError", "AgentVersionError", "_Mismatch", "StdinClosed", "StateDirLocked"}


def package_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in a module of ``host_daemon``."""
    found = []
    for info in pkgutil.iter_modules(host_daemon.__path__):
        if info.name == "__main__":
            continue  # importing it runs the daemon's command line
        module = importlib.import_module(f"host_daemon.{info.name}")
        found += [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__
        ]
    return found


@pytest.mark.parametrize(
    "cls",
    [cls for cls in package_exceptions() if cls.__name__ not in UNCODED],
    ids=lambda cls: f"{cls.__module__}.{cls.__name__}",
)
def test_every_coded_error_derives_from_the_one_base(cls: type[BaseException]) -> None:
    """Each exception of the package (but the named local ones) is a ``DaemonError``."""
    assert issubclass(cls, DaemonError)


def test_the_uncoded_exceptions_exist() -> None:
    """The exceptions left out above are real classes of the package (no stale name)."""
    assert {cls.__name__ for cls in package_exceptions()} >= UNCODED


def test_every_code_has_a_client_class() -> None:
    """``error_from_code`` knows a class for each ``ErrorCode``, and for nothing else."""
    assert set(CLIENT_ERROR_CLASSES) == ERROR_CODES


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_code_crosses_the_wire(code: ErrorCode) -> None:
    """An error frame with any code decodes to itself, and the client raises its class."""
    frame = ErrorFrame(code=code, message="why")
    assert decode_frame(encode_frame(frame).rstrip(b"\n"), DAEMON_TO_CLIENT) == frame
    error = error_from_code(code, "why")
    assert type(error) is CLIENT_ERROR_CLASSES[code]
    assert (error.code, error.message, str(error)) == (code, "why", f"why ({code})")


def test_an_unknown_code_is_a_malformed_frame() -> None:
    """An error frame whose code is not an ``ErrorCode`` is refused, naming ``$.code``."""
    line = orjson.dumps({"type": "error", "code": "made_up", "message": "x"})
    with pytest.raises(ProtocolViolation) as caught:
        decode_frame(line, DAEMON_TO_CLIENT)
    assert caught.value.code == "invalid_message"
    assert caught.value.message.startswith("expected one of 'invalid_utf8', 'invalid_json'")
    assert caught.value.message.endswith(" @ $.code")


@pytest.mark.parametrize(
    ("value", "name"),
    [([], "array"), ("x", "str"), (3, "int"), (1.5, "float"), (True, "bool"), (None, "null")],
)
def test_a_frame_that_is_no_object_is_worded_like_every_type_error(
    value: object, name: str
) -> None:
    """``expected object, got int @ $``: the wording of the converter's own type errors."""
    decoder = FrameDecoder(DAEMON_TO_CLIENT, max_frame_bytes=1024)
    decoder.feed(orjson.dumps(value) + b"\n")
    with pytest.raises(ProtocolViolation) as caught:
        decoder.next_message()
    assert (caught.value.code, caught.value.message) == (
        "not_an_object",
        f"expected object, got {name} @ $",
    )
