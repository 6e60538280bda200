"""The authorization server's HTTP face: a Quart blueprint around :class:`OAuthService`.

``/.well-known/oauth-authorization-server`` (RFC 8414), ``POST /oauth/register`` (RFC 7591),
``GET/POST /oauth/authorize`` (the consent page and its form), ``POST /oauth/token`` and
``POST /oauth/revoke`` (RFC 7009). Each request passes the same Host fence as ``/mcp``; the URLs
advertised are the request's base as ``/mcp``'s 401 names it (a tunnel's public https URL when
the request came through it). The JSON endpoints carry no cookies and answer any origin (CORS),
so browser-based clients can use them; the consent form takes only its own origin.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

import attrs
import orjson
from authlib.oauth2 import OAuth2Error
from quart import Blueprint, Response, render_template, request

from mcp_server._http import HostFence, HttpSettings

from ._authlib import AUTH_METHODS, GRANT_TYPES, SCOPE, Incoming
from ._consent import CredentialRefused
from ._service import OAuthService

FORM_FIELDS: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
)
"""The authorization request's parameters the consent form carries as hidden inputs."""
PAGE_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
CORS_HEADERS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, MCP-Protocol-Version",
    "Access-Control-Max-Age": "600",
}


def authorization_server_metadata(base: str) -> dict[str, Any]:
    """RFC 8414 metadata of the authorization server at ``base``."""
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "registration_endpoint": f"{base}/oauth/register",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "scopes_supported": [SCOPE],
        "response_types_supported": ["code"],
        "grant_types_supported": list(GRANT_TYPES),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
    }


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(orjson.dumps(body), status, content_type="application/json")
    response.headers.update(CORS_HEADERS)
    response.headers.update(headers or {})
    return response


def _error(status: int, error: str, description: str) -> Response:
    return _json({"error": error, "error_description": description}, status)


def _answer(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    """Authlib's ``(status, body, headers)`` as a response."""
    status, body, headers = result
    if isinstance(body, dict):
        response = _json(body, status)
    else:
        response = Response(body or "", status, content_type="text/plain")
    for name, value in headers:
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _multi(values: Any) -> dict[str, list[str]]:
    return {key: list(items) for key, items in values.lists()}


def _csp(redirect_uri: str | None) -> str:
    """The consent page's CSP: its own stylesheet, and its form may lead only here and to the
    client's redirect URI (browsers apply ``form-action`` to the redirect after the POST)."""
    targets = "'self'"
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        if parts.scheme in ("http", "https") and parts.netloc:
            targets += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        f"frame-ancestors 'none'; form-action {targets}"
    )


async def _page(template: str, status: int, form_target: str | None, **context: Any) -> Response:
    body = await render_template(f"oauth/{template}", **context)
    response = Response(body, status, content_type="text/html; charset=utf-8")
    response.headers.update(PAGE_HEADERS)
    response.headers["Content-Security-Policy"] = _csp(form_target)
    return response


@attrs.frozen(eq=False)
class _Routes:
    """What every route needs: the service, the fence, and the request seen through them."""

    service: OAuthService
    fence: HostFence

    def base(self) -> str | None:
        """The request's advertised base URL; None when its Host is not one we answer to."""
        host = self.fence.allowed_host(request.headers.get("host", ""))
        return None if host is None else self.fence.base_url(request.scheme, host)

    async def incoming(self, *, json: Any = None) -> Incoming:
        base_url = self.base() or ""
        form = _multi(await request.form) if request.method == "POST" and json is None else {}
        return Incoming(
            method=request.method,
            uri=base_url + request.full_path.rstrip("?"),
            headers=request.headers,
            args=_multi(request.args),
            form=form,
            resource=f"{base_url}/mcp",
            json=json,
        )

    def same_origin(self) -> bool:
        """Whether a form POST comes from this server's own page (Origin, Sec-Fetch-Site)."""
        origin = request.headers.get("origin")
        fetch_site = request.headers.get("sec-fetch-site")
        host_header = request.headers.get("host", "")
        if origin is not None and not self.fence.is_own_origin(origin, request.scheme, host_header):
            return False
        return fetch_site is None or fetch_site.lower() in ("same-origin", "none")


def oauth_blueprint(service: OAuthService, http: HttpSettings) -> Blueprint:
    """The authorization server's routes over ``service``, fenced like ``/mcp``."""
    routes = _Routes(service, HostFence.from_settings(http))
    blueprint = Blueprint(
        "oauth",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/oauth/static",
    )

    @blueprint.before_request
    async def fenced() -> Response | None:
        if routes.base() is None:
            host_header = request.headers.get("host", "")
            return _error(421, "invalid_request", routes.fence.refusal(host_header))
        if request.method == "OPTIONS":
            return _json({}, 204)
        return None

    _register_json(blueprint, routes)
    _register_consent(blueprint, routes)
    return blueprint


def _register_json(blueprint: Blueprint, routes: _Routes) -> None:
    service = routes.service

    @blueprint.route("/.well-known/oauth-authorization-server", methods=["GET", "OPTIONS"])
    async def metadata() -> Response:
        return _json(authorization_server_metadata(routes.base() or ""))

    @blueprint.route("/oauth/register", methods=["POST", "OPTIONS"])
    async def register() -> Response:
        try:
            body = orjson.loads(await request.get_data())
        except orjson.JSONDecodeError as exc:
            return _error(400, "invalid_client_metadata", f"expected a JSON object: {exc}")
        if not isinstance(body, dict):
            return _error(400, "invalid_client_metadata", "expected a JSON object")
        async with service.changing() as core:
            try:
                result = core.create_endpoint_response(
                    "client_registration", await routes.incoming(json=body)
                )
            except OAuth2Error as error:
                result = core.handle_error_response(None, error)
        return _answer(result)

    @blueprint.route("/oauth/token", methods=["POST", "OPTIONS"])
    async def token() -> Response:
        async with service.changing() as core:
            try:
                result = core.create_token_response(await routes.incoming())
            except OAuth2Error as error:
                result = core.handle_error_response(None, error)
        return _answer(result)

    @blueprint.route("/oauth/revoke", methods=["POST", "OPTIONS"])
    async def revoke() -> Response:
        async with service.changing() as core:
            try:
                result = core.create_endpoint_response("revocation", await routes.incoming())
            except OAuth2Error as error:
                result = core.handle_error_response(None, error)
        return _answer(result)


def _register_consent(blueprint: Blueprint, routes: _Routes) -> None:
    service = routes.service

    @blueprint.get("/oauth/authorize")
    async def authorize() -> Response:
        try:
            grant = service.core.get_consent_grant(await routes.incoming())
        except OAuth2Error as error:
            return await _refused(error)
        client = grant.client.record
        params = tuple(
            (name, value)
            for name in FORM_FIELDS
            if (value := grant.request.payload.data.get(name)) is not None
        )
        ticket = service.desk.open(params, client.client_id)
        return await _consent_page(service, client.client_id, params, ticket, routes.base() or "")

    @blueprint.post("/oauth/authorize")
    async def authorize_post() -> Response:
        base_url = routes.base() or ""
        if not routes.same_origin():
            message = "This form must be sent from this server's own consent page."
            return await _page("error.html", 403, None, message=message)
        form = await request.form
        ticket = form.get("csrf", "")
        pending = service.desk.find(ticket)
        if pending is None:
            message = (
                "This consent page has expired or was already answered: start the connection "
                "again from the client."
            )
            return await _page("error.html", 400, None, message=message)
        allow = form.get("decision") == "allow"
        if allow:
            try:
                service.desk.check_credential(
                    request.remote_addr or "",
                    form.get("credential", ""),
                    await service.password_hash(),
                )
            except CredentialRefused as refused:
                response = await _consent_page(
                    service,
                    pending.client_id,
                    pending.params,
                    ticket,
                    base_url,
                    status=refused.status,
                    error=refused.message,
                )
                if refused.retry_after is not None:
                    response.headers["Retry-After"] = str(refused.retry_after)
                return response
        service.desk.close(ticket)
        decided = Incoming(
            method="GET",
            uri=f"{base_url}/oauth/authorize",
            headers=request.headers,
            args={name: [value] for name, value in pending.params},
            form={},
            resource=f"{base_url}/mcp",
        )
        async with service.changing() as core:
            try:
                grant = core.get_consent_grant(decided)
            except OAuth2Error as error:
                return await _refused(error)
            result = core.create_authorization_response(
                grant.request, grant_user="owner" if allow else None, grant=grant
            )
        return _answer(result)


async def _refused(error: OAuth2Error) -> Response:
    """An invalid authorization request: back to the client when its redirect URI is known good,
    else a page (never a redirect to an unchecked URI)."""
    if error.redirect_uri:
        status, body, headers = error()
        return _answer((status, body, headers))
    return await _page(
        "error.html",
        400,
        None,
        message=f"This authorization request cannot be honoured: {error.error}: "
        f"{error.description or 'invalid request'}",
    )


async def _consent_page(
    service: OAuthService,
    client_id: str,
    params: tuple[tuple[str, str], ...],
    ticket: str,
    base_url: str,
    *,
    status: int = 200,
    error: str | None = None,
) -> Response:
    client = service.client(client_id)
    fields = dict(params)
    redirect_uri = fields.get("redirect_uri") or (client.redirect_uris[0] if client else "")
    return await _page(
        "consent.html",
        status,
        redirect_uri,
        client_name=client.client_name if client else client_id,
        client_id=client_id,
        client_uri=client.client_uri if client else None,
        redirect_uri=redirect_uri,
        resource=fields.get("resource") or f"{base_url}/mcp",
        params=params,
        ticket=ticket,
        error=error,
    )
