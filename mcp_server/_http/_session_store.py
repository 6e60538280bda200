"""Legacy sessions written through to the state directory, so a restart is invisible.

Policy:

- A session's record is written (temp file, fsync, rename, directory fsync) before the answer
  that acknowledges it: ``initialize``, and any request or notification that changed what it
  keeps (``logging/setLevel``, ``resources/subscribe``, ``notifications/initialized``). A crash
  loses no session a client was told about.
- While a session is used its ``last_seen`` is rewritten at most every ``touch_interval_s`` (by
  the flusher), so idle expiry still works across restarts; a graceful shutdown writes it last.
- A session that ends (``DELETE``, idle expiry, eviction) has its record removed: at once for a
  ``DELETE`` (before the ``204``), by the flusher otherwise.
- A disk that refuses a write costs only durability: the session goes on in memory and the
  failure is logged.
- Blocking file I/O runs in ``trio.to_thread``; one lock orders every write and removal.
"""

from __future__ import annotations

import logging
import pathlib
import time

import trio

from ._session_files import (
    MAX_RECORD_BYTES,
    QUARANTINE_DIR,
    SESSIONS_DIR,
    SessionRecord,
    encode_record,
    read_records,
    remove_record,
    write_record,
)
from ._sessions import HttpSession, SessionTable

log = logging.getLogger("mcp_server.http")


def session_record(session: HttpSession) -> SessionRecord:
    """What ``session`` keeps across a restart, seen now."""
    state = session.state
    return SessionRecord(
        id_hash=session.id_hash,
        version=state.version,
        client_capabilities=state.client_capabilities,
        client_info=state.client_info,
        log_level=state.log_level,
        subscriptions=tuple(sorted(state.subscriptions)),
        initialized=state.initialized,
        last_seen=time.time() - (time.monotonic() - session.last_seen),
    )


class SessionStore:
    """The records of a ``SessionTable``'s sessions under ``STATE/sessions``."""

    def __init__(self, state_dir: pathlib.Path, touch_interval_s: float) -> None:
        self.directory = state_dir / SESSIONS_DIR
        self.quarantine_dir = state_dir / QUARANTINE_DIR
        self.touch_interval_s = touch_interval_s
        self._saved: dict[str, SessionRecord] = {}
        """The record last written for each id hash (unchanged ones are not rewritten)."""
        self._doomed: set[str] = set()
        """Id hashes whose records the flusher is to remove."""
        self._lock = trio.Lock()
        self._wakeup = trio.Event()

    async def load(self) -> list[SessionRecord]:
        """Every record on disk (unreadable ones are quarantined with a warning)."""
        async with self._lock:
            records = await trio.to_thread.run_sync(
                read_records, self.directory, self.quarantine_dir
            )
        self._saved.update((record.id_hash, record) for record in records)
        return records

    async def save(self, session: HttpSession, *, touch: float | None = None) -> None:
        """Write ``session``'s record if what it keeps changed, or if its ``last_seen`` moved
        by ``touch`` seconds or more (``None``: never for that alone)."""
        record = session_record(session)
        async with self._lock:
            if session.ended:
                return  # ended while this waited: its record is (being) removed
            old = self._saved.get(record.id_hash)
            if (
                old is not None
                and old.same_state(record)
                and (touch is None or record.last_seen - old.last_seen < touch)
            ):
                return
            data = encode_record(record)
            if len(data) > MAX_RECORD_BYTES:
                log.warning(
                    "a session's state is %d bytes (more than %d): kept in memory only, it will "
                    "not survive a restart",
                    len(data),
                    MAX_RECORD_BYTES,
                )
                await self._remove(record.id_hash)
                return
            try:
                await trio.to_thread.run_sync(write_record, self.directory, record.id_hash, data)
            except OSError as exc:
                log.warning(
                    "cannot write a session's record (%s at %s): it goes on in memory and will "
                    "not survive a restart until a write succeeds",
                    exc.strerror or exc,
                    exc.filename or self.directory,
                )
                return
            self._saved[record.id_hash] = record

    def forget(self, id_hash: str) -> None:
        """Have the flusher remove the record of an ended (or expired dormant) session."""
        self._doomed.add(id_hash)
        self._wakeup.set()

    async def remove_now(self, id_hash: str) -> None:
        """Remove an ended session's record before answering (``DELETE``)."""
        self._doomed.discard(id_hash)
        async with self._lock:
            await self._remove(id_hash)

    async def _remove(self, id_hash: str) -> None:
        self._saved.pop(id_hash, None)
        try:
            await trio.to_thread.run_sync(remove_record, self.directory, id_hash)
        except OSError as exc:
            log.warning("cannot remove an ended session's record: %s", exc)

    async def sync(self, table: SessionTable, *, touch: float | None) -> None:
        """Remove the records of ended sessions and write the changed (or touched) ones."""
        while self._doomed:
            doomed = self._doomed.pop()
            async with self._lock:
                await self._remove(doomed)
        for session in list(table.sessions.values()):
            await self.save(session, touch=touch)

    async def run(self, table: SessionTable) -> None:
        """The flusher: removals as soon as asked, touches every ``touch_interval_s``."""
        while True:
            with trio.move_on_after(self.touch_interval_s):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            await self.sync(table, touch=self.touch_interval_s)

    async def flush(self, table: SessionTable) -> None:
        """At shutdown: every change and every ``last_seen`` written."""
        await self.sync(table, touch=0.0)
