"""Legacy sessions on disk: one small JSON record per session, named by the hash of its id.

Layout::

    STATE/sessions/<sha256 of the session id>.json   one record, 0600, replaced atomically
    STATE/quarantine/session-<name>.<stamp>         a record that could not be read, moved aside

A session id is a bearer-like secret: only its SHA-256 is written (a request's
``Mcp-Session-Id`` is hashed to find its record), so the files do not let anyone resume a
session. Plain blocking code, run in worker threads by :mod:`._session_store`.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import pathlib
import re
from typing import Any, Final

import attrs
import orjson

from .._core import LOG_LEVELS, strict_converter, strict_error

log = logging.getLogger("mcp_server.http")

SESSIONS_DIR: Final = "sessions"
QUARANTINE_DIR: Final = "quarantine"
SUFFIX: Final = ".json"
MAX_RECORD_BYTES: Final = 64 * 1024
"""A record is at most this big (client info, capabilities, subscriptions); a larger session
is kept in memory only."""
_HASH: Final = re.compile(r"[0-9a-f]{64}")


def id_hash(session_id: str) -> str:
    """The name a session's record is stored under: the SHA-256 of its id, in hex."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


def _known_level(_: object, __: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and value not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")


@attrs.frozen
class SessionRecord:
    """What a legacy session needs to carry on after a restart (its streams do not)."""

    id_hash: str
    version: str
    client_capabilities: dict[str, Any]
    client_info: dict[str, Any]
    log_level: str | None = attrs.field(default=None, validator=_known_level)
    subscriptions: tuple[str, ...] = ()
    initialized: bool = False
    last_seen: float = 0.0
    """Wall-clock seconds of the session's last request (kept within a touch interval)."""

    def same_state(self, other: SessionRecord) -> bool:
        """True when only ``last_seen`` differs."""
        return attrs.evolve(other, last_seen=self.last_seen) == self


_CONVERTER = strict_converter()


def _structure_strings(value: Any, _: Any) -> tuple[str, ...]:
    if type(value) is not list or any(type(item) is not str for item in value):
        raise TypeError("expected array of strings")
    return tuple(value)


_CONVERTER.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_strings)


def encode_record(record: SessionRecord) -> bytes:
    """The record's file content."""
    return orjson.dumps(_CONVERTER.unstructure(record))


def decode_record(data: bytes, expected_hash: str) -> SessionRecord:
    """The record in ``data``; ``ValueError`` naming what is wrong where."""
    try:
        record = _CONVERTER.structure(orjson.loads(data), SessionRecord)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    except Exception as exc:
        raise ValueError(strict_error(exc)) from None
    if record.id_hash != expected_hash:
        raise ValueError(f"expected id_hash {expected_hash}, got {record.id_hash!r} @ $.id_hash")
    return record


def fsync_dir(path: pathlib.Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_record(directory: pathlib.Path, name: str, data: bytes) -> None:
    """Replace ``directory/name.json`` with ``data`` atomically and durably (0600)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / f"{name}{SUFFIX}"
    partial = directory / f"{name}.tmp"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, target)
    fsync_dir(directory)


def remove_record(directory: pathlib.Path, name: str) -> None:
    """Remove ``directory/name.json`` durably (gone already is fine)."""
    try:
        (directory / f"{name}{SUFFIX}").unlink()
    except FileNotFoundError:
        return
    fsync_dir(directory)


def quarantine(path: pathlib.Path, quarantine_dir: pathlib.Path, why: str) -> pathlib.Path:
    """Move ``path`` aside into ``quarantine_dir`` (never deleted), with a warning."""
    quarantine_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = quarantine_dir / f"session-{path.name}.{stamp}"
    os.replace(path, target)
    fsync_dir(quarantine_dir)
    fsync_dir(path.parent)
    log.warning("quarantined session file %s: %s (moved to %s)", path, why, target)
    return target


def read_records(directory: pathlib.Path, quarantine_dir: pathlib.Path) -> list[SessionRecord]:
    """Every readable record in ``directory``; what cannot be read is quarantined."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for leftover in directory.glob("*.tmp"):
        log.warning("removing %s: an unfinished write (the old record stands)", leftover)
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    records: list[SessionRecord] = []
    for path in sorted(directory.iterdir()):
        if path.suffix != SUFFIX or path.is_dir():
            continue
        try:
            records.append(_read_one(path))
        except (OSError, ValueError) as exc:
            quarantine(path, quarantine_dir, str(exc))
    return records


def _read_one(path: pathlib.Path) -> SessionRecord:
    name = path.name.removesuffix(SUFFIX)
    if not _HASH.fullmatch(name):
        raise ValueError("expected a file named <sha256 hex>.json")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_RECORD_BYTES + 1)
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"expected at most {MAX_RECORD_BYTES} bytes, got more")
    return decode_record(data, name)
