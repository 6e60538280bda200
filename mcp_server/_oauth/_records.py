"""What the authorization server keeps (sans-IO records) and how it is written to the state dir.

``STATE/oauth.json`` holds the registered clients and the live grants (one per consent, with
its current access and refresh token *hashes*: a stolen state file names no usable token).
``STATE/oauth-password`` holds the owner's consent password as an scrypt hash. Both are written
0600 and replaced atomically; ``STATE/oauth.lock`` (an ``flock``) orders the server's writes and
the ``coding-agent oauth`` commands' so neither loses the other's change. Authorization codes
live in memory only: they last a minute.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import pathlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import attrs
import cattrs
import orjson

from mcp_server._tasks import describe_error, make_strict_converter

STATE_FILE: Final = "oauth.json"
PASSWORD_FILE: Final = "oauth-password"  # noqa: S105 (a file name, not a password)
LOCK_FILE: Final = "oauth.lock"
FORMAT_VERSION: Final = 1
MAX_RETIRED_REFRESH: Final = 32
"""Rotated-out refresh token hashes a grant remembers (to catch a reuse)."""

_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1}


class StateFileError(Exception):
    """``oauth.json`` or ``oauth-password`` cannot be read as what it should hold."""


def token_hash(token: str) -> str:
    """The stored form of a token or client secret: hex SHA-256 (they are random, 256 bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh opaque token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@attrs.frozen
class ClientRecord:
    """A registered client (RFC 7591), as registration checked it."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    scope: str
    registered_at: float
    client_secret_hash: str | None = attrs.field(default=None, repr=False)
    client_uri: str | None = None
    from_document: bool = False
    """Described by a client ID metadata document at ``client_id`` (fetched, not registered)."""


@attrs.frozen
class GrantRecord:
    """One consent the owner gave a client: its current tokens (hashed), the resource they are
    for, and the refresh tokens rotated out of it (reusing one revokes the grant)."""

    grant_id: str
    client_id: str
    scope: str
    resource: str
    granted_at: float
    access_hash: str = attrs.field(repr=False)
    access_expires_at: float
    refresh_hash: str = attrs.field(repr=False)
    refresh_expires_at: float
    retired_refresh_hashes: tuple[str, ...] = attrs.field(default=(), repr=False)


@attrs.frozen
class OAuthState:
    """Everything ``oauth.json`` holds."""

    version: int = FORMAT_VERSION
    clients: tuple[ClientRecord, ...] = ()
    grants: tuple[GrantRecord, ...] = ()


CONVERTER: Final = make_strict_converter()
"""The one converter of ``oauth.json`` (strict scalars, no extra keys)."""


def decode_state(data: bytes, where: str) -> OAuthState:
    """``oauth.json``'s bytes as records; a clear :class:`StateFileError` naming ``where``."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StateFileError(f"{where} is not JSON: {exc}") from None
    try:
        state = CONVERTER.structure(raw, OAuthState)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise StateFileError(f"{where}: {describe_error(exc)}") from None
    if state.version != FORMAT_VERSION:
        raise StateFileError(f"{where}: expected version {FORMAT_VERSION}, got {state.version}")
    return state


def encode_state(state: OAuthState) -> bytes:
    return orjson.dumps(CONVERTER.unstructure(state), option=orjson.OPT_INDENT_2)


@attrs.frozen
class FileSignature:
    """What tells a file apart from the one last read: inode, size and modification time."""

    inode: int
    size: int
    mtime_ns: int


def signature(path: pathlib.Path) -> FileSignature | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return FileSignature(info.st_ino, info.st_size, info.st_mtime_ns)


def read_state(state_dir: pathlib.Path) -> tuple[OAuthState, FileSignature | None]:
    """The stored state (empty when there is no file yet) and the file's signature."""
    path = state_dir / STATE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return OAuthState(), None
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror}") from None
    return decode_state(data, str(path)), signature(path)


def write_private(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (0600, fsynced, replaced atomically)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_state(state_dir: pathlib.Path, state: OAuthState) -> FileSignature | None:
    """Replace ``oauth.json`` with ``state``; the new file's signature."""
    path = state_dir / STATE_FILE
    write_private(path, encode_state(state))
    return signature(path)


@contextmanager
def state_lock(state_dir: pathlib.Path) -> Iterator[None]:
    """Hold ``oauth.lock`` (blocking): one writer of ``oauth.json`` at a time across processes."""
    descriptor = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


# -- the owner's consent password -----------------------------------------------------------------


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) of ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    parts = (_SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"])
    encoded = [base64.b64encode(value).decode() for value in (salt, digest)]
    return "scrypt$" + "$".join(map(str, parts)) + "$" + "$".join(encoded)


def check_password(stored: str, candidate: str) -> bool:
    """Whether ``candidate`` is the password ``stored`` (from :func:`hash_password`) hashes."""
    fields = stored.strip().split("$")
    if len(fields) != 6 or fields[0] != "scrypt":
        return False
    try:
        n, r, p = (int(value) for value in fields[1:4])
        salt, digest = (base64.b64decode(value) for value in fields[4:6])
        # maxmem: scrypt needs 128 * n * r bytes; allow twice that and no more.
        computed = hashlib.scrypt(
            candidate.encode(), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=256 * n * r
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed, digest)


def read_password_hash(state_dir: pathlib.Path) -> str | None:
    """The owner's stored password hash, or None when none was set."""
    try:
        text = (state_dir / PASSWORD_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def write_password_hash(state_dir: pathlib.Path, hashed: str) -> None:
    write_private(state_dir / PASSWORD_FILE, (hashed + "\n").encode())
