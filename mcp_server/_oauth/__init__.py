"""The built-in OAuth 2.1 authorization server (MCP authorization, 2025-06-18 onward).

When no external authorization server is configured, the MCP server is its own: clients that
only speak OAuth (claude.ai and Claude Desktop custom connectors, the phone apps) discover it
from ``/mcp``'s 401, register (RFC 7591), send the owner to the consent page, and trade the
code (PKCE S256) for a short-lived opaque access token bound to ``<base>/mcp`` (RFC 8707).

Modules: records and their files (``_records``), the books in memory and redirect-URI rules
(``_book``), Authlib's server core over them (``_authlib``), the consent tickets and credential
check (``_consent``), the trio service (``_service``), the Quart routes (``_routes``) and the
``coding-agent oauth`` commands (``_command``).
"""

from ._command import oauth_main
from ._records import StateFileError
from ._routes import authorization_server_metadata, oauth_blueprint
from ._service import GrantedClient, OAuthService, OAuthSettings

__all__ = [
    "GrantedClient",
    "OAuthService",
    "OAuthSettings",
    "StateFileError",
    "authorization_server_metadata",
    "oauth_blueprint",
    "oauth_main",
]
