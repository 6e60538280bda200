"""The outbox on disk: one file per event, written atomically, and what was announced.

Blocking file I/O (the notifier calls it through ``trio.to_thread``). Under ``STATE/notify``:
``outbox/<event id>.json`` (an entry with deliveries pending), ``dead/<event id>.json`` (dead
letters), ``seen.json`` (per task, the last state announced: what start-up compares the tasks
with to derive the events a crash lost). Every write goes to a temporary file, is fsynced,
renamed over the old one and the directory fsynced: a crash leaves the old file or the new one.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Any

import attrs
import cattrs

from mcp_server._tasks import describe_error, make_strict_converter

from ._outbox import OutboxEntry

log = logging.getLogger("mcp_server.notify")

_converter = make_strict_converter()


@attrs.frozen
class Loaded:
    """What start-up reads back."""

    entries: list[OutboxEntry]
    dead: int
    seen: dict[str, str] | None
    """``None``: the notifier never ran on this state dir (its tasks are announced as seen)."""


class NotifyDir:
    """``STATE/notify`` and its files."""

    def __init__(self, state: pathlib.Path) -> None:
        self.root = state / "notify"
        self.outbox = self.root / "outbox"
        self.dead = self.root / "dead"
        self.seen = self.root / "seen.json"

    def load(self) -> Loaded:
        """The pending entries, the dead letters' count and the seen states; a file that does
        not read back is renamed ``*.unreadable`` (kept for a person) and logged."""
        for directory in (self.root, self.outbox, self.dead):
            directory.mkdir(mode=0o700, exist_ok=True)
        entries = []
        for path in sorted(self.outbox.glob("*.json")):
            entry = self._read_entry(path)
            if entry is not None:
                entries.append(entry)
        dead = sum(1 for _ in self.dead.glob("*.json"))
        seen: dict[str, str] | None = None
        if self.seen.exists():
            try:
                seen = _converter.structure(json.loads(self.seen.read_bytes()), dict[str, str])
            except (ValueError, cattrs.BaseValidationError) as exc:
                self._set_aside(self.seen, describe_error(exc))
                seen = {}
        return Loaded(entries, dead, seen)

    def _read_entry(self, path: pathlib.Path) -> OutboxEntry | None:
        try:
            return _converter.structure(json.loads(path.read_bytes()), OutboxEntry)
        except (ValueError, cattrs.BaseValidationError) as exc:
            self._set_aside(path, describe_error(exc))
            return None

    def _set_aside(self, path: pathlib.Path, why: str) -> None:
        log.error("notify: %s does not read back (%s); renamed *.unreadable", path, why)
        os.replace(path, path.with_name(path.name + ".unreadable"))

    def write(self, entry: OutboxEntry) -> None:
        """Save a pending entry, or settle it: delete it, or move it to the dead letters."""
        name = f"{entry.event.id}.json"
        if not entry.settled:
            _write_atomic(self.outbox / name, _encode(entry))
            return
        if entry.dead:
            _write_atomic(self.dead / name, _encode(entry))
        try:
            (self.outbox / name).unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.outbox)

    def exists(self, event_id: str) -> bool:
        """Whether the event was written already (pending or a dead letter)."""
        name = f"{event_id}.json"
        return (self.outbox / name).exists() or (self.dead / name).exists()

    def save_seen(self, seen: dict[str, str]) -> None:
        """Record the last announced state of each task."""
        _write_atomic(self.seen, json.dumps(seen, sort_keys=True).encode())


def _encode(entry: OutboxEntry) -> bytes:
    data: Any = _converter.unstructure(entry)
    return json.dumps(data, ensure_ascii=False).encode()


def fsync_dir(path: pathlib.Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: pathlib.Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_dir(path.parent)
