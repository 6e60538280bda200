"""Where the task CLI finds the server: flags, then the environment, then what ``up`` left.

URL: ``--url``, else ``CODING_AGENT_URL``, else the ``mcp.url`` file a running
``coding-agent up`` keeps in its state dir. Token: ``--token``, else ``MCP_AUTH_TOKEN``, else the
state dir's ``mcp.token``. The state dir: ``--state-path``, else ``STATE_PATH``, else the user
data dir (as for ``up``).
"""

from __future__ import annotations

import pathlib
import urllib.parse
from collections.abc import Mapping

import attrs

from mcp_server._config import (
    URL_FILE,
    ConfigError,
    default_data_dir,
    stored_mcp_token,
    stored_mcp_url,
)

from ._client import ConsoleError


class NotConfigured(ConsoleError):
    """No server URL or token could be found: nothing to reach."""

    exit_code = 3
    code = "not_configured"


@attrs.frozen
class Endpoint:
    """The server's MCP URL and the bearer token it accepts."""

    url: str
    token: str = attrs.field(repr=False)


def normalize_url(url: str, where: str) -> str:
    """An ``http(s)://HOST[:PORT]/PATH`` URL; a bare origin gets ``/mcp``."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NotConfigured(f"expected an http(s) URL of the MCP server, got {url!r} @ {where}")
    path = parts.path if parts.path not in ("", "/") else "/mcp"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def find_endpoint(
    environ: Mapping[str, str],
    *,
    url: str | None = None,
    token: str | None = None,
    state_path: pathlib.Path | None = None,
) -> Endpoint:
    """The server to talk to (see the module docstring); :class:`NotConfigured` says what is
    missing and how to give it."""
    state = state_path or pathlib.Path(environ.get("STATE_PATH") or default_data_dir(environ))
    if url is not None:
        found_url = normalize_url(url, "--url")
    elif environ.get("CODING_AGENT_URL", "").strip():
        found_url = normalize_url(environ["CODING_AGENT_URL"], "CODING_AGENT_URL")
    else:
        stored = stored_mcp_url(state)
        if stored is None:
            raise NotConfigured(
                f"no server URL: pass --url, set CODING_AGENT_URL, or start `coding-agent up` "
                f"(it records its URL in {state / URL_FILE})"
            )
        found_url = normalize_url(stored, str(state / URL_FILE))
    if token is not None and token.strip():
        return Endpoint(found_url, token.strip())
    try:
        return Endpoint(found_url, stored_mcp_token(environ, state))
    except ConfigError as exc:
        raise NotConfigured(f"{exc}; or pass --token") from None
