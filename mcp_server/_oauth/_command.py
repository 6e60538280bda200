"""``coding-agent oauth password|clients|revoke CLIENT_ID``: the owner's side of the built-in
authorization server, working on the state dir directly (a running server picks a revocation
up within a second: see :class:`~mcp_server._oauth._service.OAuthService`)."""

from __future__ import annotations

import argparse
import datetime
import getpass
import os
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from mcp_server._config import default_data_dir

from ._book import OAuthBook
from ._records import (
    StateFileError,
    hash_password,
    read_state,
    state_lock,
    write_password_hash,
    write_state,
)
from ._service import granted_clients

MIN_PASSWORD: int = 12


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coding-agent oauth",
        description="The built-in OAuth authorization server: the owner's consent password and "
        "the clients you granted access.",
    )
    parser.add_argument("--state-path", type=pathlib.Path, help="state dir (env STATE_PATH)")
    commands = parser.add_subparsers(dest="action", required=True)
    commands.add_parser(
        "password",
        help="set the password the consent page accepts (besides the bearer token); "
        "read from the terminal, or from stdin's first line",
    )
    commands.add_parser("clients", help="list the clients holding a grant")
    revoke = commands.add_parser("revoke", help="end every grant of a client")
    revoke.add_argument("client_id", metavar="CLIENT_ID")
    return parser


def _state_dir(given: pathlib.Path | None, environ: Mapping[str, str]) -> pathlib.Path:
    return given or pathlib.Path(environ.get("STATE_PATH") or default_data_dir(environ))


def _read_password(stdin: TextIO) -> str:
    if stdin.isatty():
        first = getpass.getpass("New consent password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return stdin.readline().rstrip("\r\n")


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _set_password(state: pathlib.Path, stdin: TextIO, out: TextIO) -> int:
    password = _read_password(stdin)
    if len(password) < MIN_PASSWORD:
        raise ValueError(
            f"expected a password of at least {MIN_PASSWORD} characters, got {len(password)}"
        )
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_password_hash(state, hash_password(password))
    print(f"consent password set (scrypt hash in {state / 'oauth-password'})", file=out)
    return 0


def _list_clients(state: pathlib.Path, out: TextIO) -> int:
    listed = granted_clients(OAuthBook.from_state(read_state(state)[0]))
    if not listed:
        print("no client holds a grant", file=out)
    for client in listed:
        uris = ", ".join(client.redirect_uris)
        print(
            f"{client.client_id}  {client.client_name}  grants: {client.grants}  "
            f"since {_when(client.first_granted_at)}  redirect: {uris}",
            file=out,
        )
    return 0


def _revoke(state: pathlib.Path, client_id: str, out: TextIO) -> int:
    with state_lock(state):
        book = OAuthBook.from_state(read_state(state)[0])
        ended = book.revoke_client(client_id)
        if ended:
            write_state(state, book.to_state())
    if not ended:
        print(
            f"coding-agent oauth revoke: no grant of client {client_id!r} "
            "(coding-agent oauth clients lists them)",
            file=sys.stderr,
        )
        return 1
    print(f"revoked {ended} grant(s) of {client_id}", file=out)
    return 0


def oauth_main(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str] = os.environ,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Run one ``coding-agent oauth`` command; 0 done, 1 refused (a message says why)."""
    args = _parser().parse_args(list(argv))
    out = stdout or sys.stdout
    state = _state_dir(args.state_path, environ)
    try:
        if args.action == "password":
            return _set_password(state, stdin or sys.stdin, out)
        if args.action == "clients":
            return _list_clients(state, out)
        return _revoke(state, args.client_id, out)
    except (StateFileError, ValueError, OSError) as exc:
        print(f"coding-agent oauth {args.action}: {exc}", file=sys.stderr)
        return 1
