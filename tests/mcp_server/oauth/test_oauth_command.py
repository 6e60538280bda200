"""``coding-agent oauth password|clients|revoke``: the owner's commands, run as the real
``python -m mcp_server`` against a state dir a running server uses."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import trio
from _support.oauth import oauth_server, pkce
from _support.polling import eventually

from mcp_server._oauth._records import read_password_hash


async def coding_agent(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``python -m mcp_server ARGS`` (this checkout), its output captured."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return await trio.run_process(
        [sys.executable, "-m", "mcp_server", *args],
        stdin=stdin,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )


async def test_password_sets_what_the_consent_page_accepts(tmp_path: pathlib.Path) -> None:
    """``oauth password`` reads stdin, stores an scrypt hash, and the consent page takes it."""
    async with oauth_server(tmp_path) as server:
        done = await coding_agent(
            "oauth", "--state-path", str(server.state_dir), "password", stdin=b"a long passphrase\n"
        )
        assert done.returncode == 0, done.stderr
        stored = read_password_hash(server.state_dir)
        assert stored is not None
        assert stored.startswith("scrypt$")
        assert "a long passphrase" not in stored
        client = await server.register()
        _, challenge = pkce()
        page = await server.consent_page(server.authorize_params(client, challenge))
        answer = await server.submit(page.text, "allow", "a long passphrase")
        assert answer.status_code == 302


async def test_short_password_is_refused(tmp_path: pathlib.Path) -> None:
    """A password under 12 characters: exit 1 saying what was expected; nothing stored."""
    done = await coding_agent("oauth", "--state-path", str(tmp_path), "password", stdin=b"short\n")
    assert done.returncode == 1
    assert b"at least 12 characters, got 5" in done.stderr
    assert read_password_hash(tmp_path) is None


async def test_clients_lists_granted_clients(tmp_path: pathlib.Path) -> None:
    """``oauth clients`` lists each client holding a grant, by id and name."""
    async with oauth_server(tmp_path) as server:
        client = await server.register(client_name="Phone")
        await server.tokens(client)
        await server.register(client_name="Never granted")
        done = await coding_agent("oauth", "--state-path", str(server.state_dir), "clients")
        assert done.returncode == 0, done.stderr
        out = done.stdout.decode()
        assert client.client_id in out
        assert "Phone" in out
        assert "Never granted" not in out


async def test_revoke_ends_access_on_the_running_server(tmp_path: pathlib.Path) -> None:
    """``oauth revoke CLIENT_ID`` ends the client's grants; the running server refuses its token."""
    async with oauth_server(tmp_path) as server:
        client = await server.register()
        tokens = await server.tokens(client)
        assert (await server.call_mcp(tokens["access_token"])).status_code == 200
        done = await coding_agent(
            "oauth", "--state-path", str(server.state_dir), "revoke", client.client_id
        )
        assert done.returncode == 0, done.stderr
        assert b"revoked 1 grant" in done.stdout
        service = server.service
        assert service is not None
        await eventually(lambda: not service.book.grants, "the server to reload oauth.json")
        assert (await server.call_mcp(tokens["access_token"])).status_code == 401
        assert (await server.refresh(client, tokens["refresh_token"])).status_code == 400


async def test_revoke_of_unknown_client_says_so(tmp_path: pathlib.Path) -> None:
    """Revoking a client with no grant: exit 1 naming it."""
    done = await coding_agent("oauth", "--state-path", str(tmp_path), "revoke", "nobody")
    assert done.returncode == 1
    assert b"no grant of client 'nobody'" in done.stderr


async def test_corrupt_state_file_is_reported(tmp_path: pathlib.Path) -> None:
    """A damaged oauth.json: the command says which file and what is wrong, exit 1."""
    (tmp_path / "oauth.json").write_text('{"version": 1, "clients": 5}')
    done = await coding_agent("oauth", "--state-path", str(tmp_path), "clients")
    assert done.returncode == 1
    assert b"oauth.json" in done.stderr
    assert b"@ $.clients" in done.stderr
