"""The authorization server's trio side: its books loaded from and written to the state dir.

Every change runs inside :meth:`OAuthService.changing`: take ``oauth.lock`` (in a thread),
reload ``oauth.json`` if another process (``coding-agent oauth revoke``) replaced it, run the
synchronous Authlib step on the books, write them back if they changed, let go. Between
changes, :meth:`OAuthService.run` notices such a replacement within ``reload_interval_s`` so a
revocation from the command line ends access on a running server too.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio

from ._authlib import OAuthCore
from ._book import OAuthBook
from ._consent import ConsentDesk, ConsentSettings
from ._records import (
    LOCK_FILE,
    STATE_FILE,
    ClientRecord,
    FileSignature,
    GrantRecord,
    read_password_hash,
    read_state,
    signature,
    write_state,
)


@attrs.frozen
class OAuthSettings:
    """Token lifetimes and bounds of the built-in authorization server."""

    access_lifetime_s: float = 3600.0
    refresh_lifetime_s: float = 30 * 24 * 3600.0
    max_clients: int = 1000
    reload_interval_s: float = 1.0
    consent: ConsentSettings = attrs.field(factory=ConsentSettings)


@attrs.frozen
class GrantedClient:
    """A client holding at least one grant, as the CLI and the dashboard list it."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    grants: int
    first_granted_at: float
    last_refreshed_until: float


def granted_clients(book: OAuthBook) -> list[GrantedClient]:
    """The clients with live grants, oldest grant first."""
    by_client: dict[str, list[GrantRecord]] = {}
    for grant in book.grants.values():
        by_client.setdefault(grant.client_id, []).append(grant)
    listed = []
    for client_id, grants in by_client.items():
        client = book.clients.get(client_id)
        listed.append(
            GrantedClient(
                client_id=client_id,
                client_name=client.client_name if client else "(unregistered)",
                redirect_uris=client.redirect_uris if client else (),
                grants=len(grants),
                first_granted_at=min(grant.granted_at for grant in grants),
                last_refreshed_until=max(grant.access_expires_at for grant in grants),
            )
        )
    return sorted(listed, key=lambda item: item.first_granted_at)


class OAuthService:
    """The authorization server of one state dir, for the routes, ``/mcp`` and the dashboard."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        static_token: str | None,
        settings: OAuthSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state_dir = state_dir
        self.settings = settings or OAuthSettings()
        self.clock = clock
        self.core = OAuthCore(
            OAuthBook(),
            access_lifetime_s=self.settings.access_lifetime_s,
            refresh_lifetime_s=self.settings.refresh_lifetime_s,
            max_clients=self.settings.max_clients,
            clock=clock,
        )
        self.desk = ConsentDesk(static_token, self.settings.consent, time.monotonic)
        self._lock = trio.Lock()
        self._signature: FileSignature | None = None

    @property
    def book(self) -> OAuthBook:
        return self.core.book

    async def load(self) -> None:
        """Read the stored clients and grants (a bad file is a :class:`StateFileError`)."""
        state, self._signature = await trio.to_thread.run_sync(read_state, self.state_dir)
        self.core.book = OAuthBook.from_state(state)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Pick up changes another process wrote, and expire codes, until cancelled."""
        task_status.started()
        path = self.state_dir / STATE_FILE
        while True:
            await trio.sleep(self.settings.reload_interval_s)
            self.core.expire_codes()
            async with self._lock:
                found = await trio.to_thread.run_sync(signature, path)
                if found != self._signature:
                    await self._reload()

    async def _reload(self) -> None:
        state, self._signature = await trio.to_thread.run_sync(read_state, self.state_dir)
        self.core.book = OAuthBook.from_state(state)

    @asynccontextmanager
    async def changing(self) -> AsyncIterator[OAuthCore]:
        """The core, current with the disk and locked against other writers; what changed in its
        books is written before the lock is let go."""
        async with self._lock:
            descriptor = await trio.to_thread.run_sync(self._take_file_lock)
            try:
                found = await trio.to_thread.run_sync(signature, self.state_dir / STATE_FILE)
                if found != self._signature:
                    await self._reload()
                self.book.dirty = False
                yield self.core
                if self.book.dirty:
                    state = self.book.to_state()
                    self._signature = await trio.to_thread.run_sync(
                        write_state, self.state_dir, state
                    )
                    self.book.dirty = False
            finally:
                os.close(descriptor)

    def _take_file_lock(self) -> int:
        descriptor = os.open(
            self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600
        )
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        return descriptor

    def verify(self, access_token: str, resource: str) -> bool:
        """Whether ``access_token`` is a live access token of this server for ``resource``."""
        return self.core.verify(access_token, resource)

    async def password_hash(self) -> str | None:
        return await trio.to_thread.run_sync(read_password_hash, self.state_dir)

    def client(self, client_id: str) -> ClientRecord | None:
        return self.book.clients.get(client_id)

    def granted(self) -> list[GrantedClient]:
        return granted_clients(self.book)

    async def revoke_client(self, client_id: str) -> int:
        """End every grant of ``client_id`` (written at once); how many there were."""
        async with self.changing() as core:
            return core.book.revoke_client(client_id)
