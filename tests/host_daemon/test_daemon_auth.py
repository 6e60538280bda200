"""The shared token file and the challenge-response proofs."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from host_daemon import TokenError, load_or_create_token, token_from_environment
from host_daemon._auth import compute_proof, new_nonce, verify_proof


def test_proof_verifies_with_the_same_token() -> None:
    """A client proof made with the token verifies against the same nonces."""
    server, client = new_nonce(), new_nonce()
    proof = compute_proof("tok", "client", server, client)
    assert verify_proof("tok", "client", server, client, proof)


def test_proof_with_a_wrong_token_fails() -> None:
    """A proof computed with another token is refused."""
    server, client = new_nonce(), new_nonce()
    assert not verify_proof(
        "tok", "client", server, client, compute_proof("bad", "client", server, client)
    )


def test_replayed_proof_fails_against_a_fresh_challenge() -> None:
    """A proof captured on one connection is useless on the next (new server nonce)."""
    client = new_nonce()
    captured = compute_proof("tok", "client", new_nonce(), client)
    assert not verify_proof("tok", "client", new_nonce(), client, captured)


def test_client_proof_is_not_a_server_proof() -> None:
    """The role label keeps a reflected client proof from passing as the daemon's."""
    server, client = new_nonce(), new_nonce()
    proof = compute_proof("tok", "client", server, client)
    assert not verify_proof("tok", "server", server, client, proof)


def test_proof_does_not_contain_the_token() -> None:
    """What crosses the wire is a MAC and nonces, never the token."""
    token = "s3cret-token-value"
    server, client = new_nonce(), new_nonce()
    assert token not in compute_proof(token, "client", server, client)
    assert len(server) == 64
    assert server != new_nonce()


def test_token_file_created_0600(tmp_path: pathlib.Path) -> None:
    """An absent token file is created with mode 0600 and a long random token."""
    path = tmp_path / "daemon.token"
    token = load_or_create_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 40
    assert path.read_text().strip() == token


def test_token_file_read_back(tmp_path: pathlib.Path) -> None:
    """A second call reads the same token instead of replacing it."""
    path = tmp_path / "daemon.token"
    assert load_or_create_token(path) == load_or_create_token(path)


def test_token_file_honours_umask_free_mode(tmp_path: pathlib.Path) -> None:
    """The 0600 mode does not depend on a permissive umask."""
    old = os.umask(0)
    try:
        load_or_create_token(tmp_path / "t")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t").stat().st_mode) == 0o600


def test_empty_token_file_refused(tmp_path: pathlib.Path) -> None:
    """An empty token file is an error, not an empty secret."""
    path = tmp_path / "t"
    path.write_text("\n")
    with pytest.raises(TokenError, match="empty"):
        load_or_create_token(path)


def test_token_file_in_missing_directory_created(tmp_path: pathlib.Path) -> None:
    """A fresh account has no state directory: it is created (0700) along with the token file."""
    path = tmp_path / "state" / "coding-agent" / "daemon.token"
    token = load_or_create_token(path)
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_token_file_that_cannot_be_created_refused(tmp_path: pathlib.Path) -> None:
    """A token file that cannot be created (its parent is a file) gives a clear error."""
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(TokenError, match="cannot create token file"):
        load_or_create_token(tmp_path / "not-a-dir" / "t")


def test_environment_token_wins(tmp_path: pathlib.Path) -> None:
    """``DAEMON_TOKEN`` wins over ``DAEMON_TOKEN_FILE``, which wins over the default file."""
    file = tmp_path / "f"
    file.write_text("from-file\n")
    env = {"DAEMON_TOKEN": "from-env", "DAEMON_TOKEN_FILE": str(file)}
    assert token_from_environment(env, tmp_path / "default") == "from-env"
    del env["DAEMON_TOKEN"]
    assert token_from_environment(env, tmp_path / "default") == "from-file"
    assert (
        token_from_environment({}, tmp_path / "default")
        == (tmp_path / "default").read_text().strip()
    )
