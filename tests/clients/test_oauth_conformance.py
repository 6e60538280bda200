"""The official MCP conformance harness's authorization-server scenarios against the built-in
authorization server: its metadata, and the authorization code grant driven through our
consent page (the harness prints the URL a browser would open; the test fills the form)."""

from __future__ import annotations

import pathlib
import re

import pytest
import trio
from _support.oauth import oauth_server
from conformance.run import cache_dir, ensure_harness, ensure_node, free_port

HARNESS_VERSION = "0.2.0-alpha.12"
pytestmark = pytest.mark.real_clients


async def read_until(stream: trio.abc.ReceiveStream, marker: bytes, sink: bytearray) -> None:
    """Append ``stream``'s output to ``sink`` until ``marker`` shows (or the stream ends)."""
    while marker not in sink:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        sink += chunk


async def test_harness_authorization_scenarios_pass(tmp_path: pathlib.Path) -> None:
    """``conformance authorization``: metadata and the code grant (PKCE, resource) all pass."""
    node = await trio.to_thread.run_sync(ensure_node)
    entry = await trio.to_thread.run_sync(ensure_harness, cache_dir(), HARNESS_VERSION)
    async with oauth_server(tmp_path) as server:
        port = free_port()
        client = await server.register(redirect_uris=[f"http://127.0.0.1:{port}/callback"])
        command = [
            node,
            str(entry),
            "authorization",
            "--url",
            server.base,
            "--client-id",
            client.client_id,
            "--resource",
            server.mcp,
            "--port",
            str(port),
            "-o",
            str(tmp_path / "results"),
        ]
        output = bytearray()
        with trio.fail_after(300):
            process = await trio.lowlevel.open_process(command, stdout=-1, stderr=-2)
            try:
                assert process.stdout is not None
                await read_until(process.stdout, b"Callback server started", output)
                found = re.search(rb"(http://\S+/oauth/authorize\?\S+)", output)
                assert found is not None, output.decode()
                page = await server.http.get(found[1].decode())
                assert page.status_code == 200, page.text
                allowed = await server.submit(page.text, "allow")
                assert allowed.status_code == 302, allowed.text
                callback = await server.http.get(allowed.headers["location"])
                assert callback.status_code == 200
                await read_until(process.stdout, b"\x00", output)
                returncode = await process.wait()
            finally:
                process.kill()
    text = output.decode()
    assert returncode == 0, text
    assert "authorization-server-metadata-endpoint: 2 passed, 0 failed" in text
    assert "authorization-code-grant: 1 passed, 0 failed" in text
