"""The shared token and the challenge-response proofs, sans-IO.

Both sides prove they hold the token without sending it: the client answers the daemon's fresh
nonce with ``HMAC-SHA256(token, "client" | server_nonce | client_nonce)``, the daemon answers with
the same MAC under the ``"server"`` label. A replayed client proof is useless because every
connection gets a new server nonce; a replayed daemon proof is useless because every connection
gets a new client nonce; the labels keep one side's proof from serving as the other's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pathlib
import secrets
from collections.abc import Mapping
from typing import Final, Literal

NONCE_BYTES: Final = 32
_LABEL: Final = b"coding-agent-daemon/1 "


class TokenError(Exception):
    """The shared token could not be read or created."""


def new_nonce() -> str:
    """A fresh random nonce, hex-encoded for the wire."""
    return secrets.token_hex(NONCE_BYTES)


def compute_proof(
    token: str, role: Literal["client", "server"], server_nonce: str, client_nonce: str
) -> str:
    """The MAC one side sends to show it holds ``token`` for this very pair of nonces."""
    message = b"\0".join((_LABEL + role.encode(), server_nonce.encode(), client_nonce.encode()))
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def verify_proof(
    token: str,
    role: Literal["client", "server"],
    server_nonce: str,
    client_nonce: str,
    proof: str,
) -> bool:
    """Whether ``proof`` is ``role``'s MAC for these nonces (constant-time comparison)."""
    expected = compute_proof(token, role, server_nonce, client_nonce)
    return hmac.compare_digest(expected.encode(), proof.encode())


def load_or_create_token(path: pathlib.Path) -> str:
    """Read the shared token from ``path``, creating it (mode 0600) with a fresh token if absent.

    A missing parent directory is created (0700): a fresh account has no state directory yet.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise TokenError(f"cannot create token file {path}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise TokenError(f"cannot create token file {path}: {exc.strerror}") from None
    else:
        token = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(token + "\n")
            file.flush()
            os.fsync(file.fileno())
        return token
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenError(f"cannot read token file {path}: {exc.strerror}") from None
    if not token:
        raise TokenError(f"token file {path} is empty")
    return token


def token_from_environment(
    environ: Mapping[str, str], default_file: pathlib.Path | None = None
) -> str:
    """The token from ``DAEMON_TOKEN``, else from ``DAEMON_TOKEN_FILE`` or ``default_file``."""
    token = environ.get("DAEMON_TOKEN", "").strip()
    if token:
        return token
    file = environ.get("DAEMON_TOKEN_FILE")
    if file:
        return load_or_create_token(pathlib.Path(file))
    if default_file is None:
        raise TokenError("no token: set DAEMON_TOKEN or DAEMON_TOKEN_FILE")
    return load_or_create_token(default_file)
