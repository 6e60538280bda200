"""Authlib's OAuth 2 server core over our books (synchronous, no I/O): the authorization code
grant with PKCE (S256 only), refresh with rotation, RFC 7591 registration, RFC 7009 revocation,
and the RFC 8707 ``resource`` checks Authlib leaves to its host.

Authlib's classes are untyped; each subclass line carries ``type: ignore[misc]`` for that. The
adapter (:mod:`._routes`) hands requests in as :class:`Incoming` and gets ``(status, body,
headers)`` back from :meth:`OAuthCore.handle_response`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    JsonPayload,
    JsonRequest,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import (
    ClientRegistrationEndpoint,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
)
from authlib.oauth2.rfc7636 import CodeChallenge

from ._book import OAuthBook, redirect_uri_matches, redirect_uri_problem
from ._records import MAX_RETIRED_REFRESH, ClientRecord, GrantRecord, new_token, token_hash

# Authlib logs issued tokens at DEBUG: keep its loggers above that whatever the root level.
logging.getLogger("authlib").setLevel(logging.INFO)

SCOPE: Final = "mcp"
OWNER: Final = "owner"
AUTH_METHODS: Final = ("none", "client_secret_post", "client_secret_basic")
GRANT_TYPES: Final = ("authorization_code", "refresh_token")
MAX_CLIENT_NAME: Final = 200


@attrs.frozen
class Incoming:
    """One HTTP request as the core needs it: ``uri`` is the advertised URL (a tunnel's https)."""

    method: str
    uri: str
    headers: Any
    """Case-insensitive, as Quart's (Authlib reads ``Authorization``)."""
    args: Mapping[str, list[str]]
    form: Mapping[str, list[str]]
    resource: str
    """This server's resource, ``<base>/mcp``: what tokens issued here are for."""
    json: Any = None


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707: the ``resource`` names something this server does not issue tokens for."""

    error = "invalid_target"


@attrs.frozen
class AuthorizationCode:
    """An issued code (memory only, one use, a minute long)."""

    client_id: str
    redirect_uri: str
    scope: str
    resource: str
    code_challenge: str
    code_challenge_method: str
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, values: Mapping[str, list[str]]) -> None:
        self._values = values

    @property
    def data(self) -> dict[str, str]:
        return {key: values[0] for key, values in self._values.items() if values}

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return defaultdict(list, self._values)


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, incoming: Incoming) -> None:
        super().__init__(incoming.method, incoming.uri, headers=incoming.headers)
        self.incoming = incoming
        merged: dict[str, list[str]] = {}
        for source in (incoming.args, incoming.form):
            for key, values in source.items():
                merged.setdefault(key, []).extend(values)
        self.payload = _Payload(merged)
        self.issued_grant_id: str | None = None

    @property
    def args(self) -> dict[str, str]:
        return {key: values[0] for key, values in self.incoming.args.items() if values}

    @property
    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in self.incoming.form.items() if values}


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: Any) -> None:
        self._data = data

    @property
    def data(self) -> Any:
        return self._data


class _JsonRequest(JsonRequest):  # type: ignore[misc]
    def __init__(self, incoming: Incoming) -> None:
        super().__init__(incoming.method, incoming.uri, incoming.headers)
        self.payload = _JsonPayload(incoming.json)


class _Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, record: ClientRecord) -> None:
        self.record = record

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.record.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        # One scope exists; whatever a client asks for, it gets (only) that.
        del scope
        return SCOPE

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri_matches(self.record.redirect_uris, redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        stored = self.record.client_secret_hash
        return stored is not None and secrets.compare_digest(stored, token_hash(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        del endpoint
        return method == self.record.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.record.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.record.grant_types


class _Token(TokenMixin):  # type: ignore[misc]
    """A grant seen through one of its tokens (refresh or revocation)."""

    def __init__(self, grant: GrantRecord, now: float) -> None:
        self.grant = grant
        self.now = now

    def check_client(self, client: _Client) -> bool:
        return client.get_client_id() == self.grant.client_id

    def get_scope(self) -> str:
        return self.grant.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.grant.access_expires_at - self.now))

    def is_expired(self) -> bool:
        return self.grant.refresh_expires_at <= self.now

    def is_revoked(self) -> bool:
        return False

    def get_user(self) -> str:
        return OWNER

    def get_client(self) -> None:
        return None


def _check_resource(request: _Request, expected: str) -> None:
    """RFC 8707: at most one ``resource``, and it must be ``expected`` (this server's ``/mcp``)."""
    given = request.payload.datalist.get("resource", [])
    if len(given) > 1:
        raise InvalidTargetError("Expected one 'resource', got several.")
    if given and given[0].rstrip("/") != expected:
        raise InvalidTargetError(f"Expected resource {expected}, got another.")


class _S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE is required, and only with S256 (OAuth 2.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: Final = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE with S256 is required.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Expected code_challenge_method=S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.code_challenge_method


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: Final = list(AUTH_METHODS)
    server: OAuthCore

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        try:
            _check_resource(self.request, self.request.incoming.resource)
        except OAuth2Error as error:
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri

    def save_authorization_code(self, code: str, request: _Request) -> None:
        data = request.payload.data
        self.server.codes[token_hash(code)] = AuthorizationCode(
            client_id=request.client.get_client_id(),
            redirect_uri=data.get("redirect_uri") or request.client.get_default_redirect_uri(),
            scope=request.scope or SCOPE,
            resource=request.incoming.resource,
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            expires_at=self.server.clock() + self.server.code_lifetime_s,
        )

    def query_authorization_code(self, code: str, client: _Client) -> AuthorizationCode | None:
        server = self.server
        found = server.codes.get(token_hash(code))
        if found is None:
            # A code used twice: revoke what it bought (RFC 6749 §4.1.2).
            spent = server.spent_codes.pop(token_hash(code), None)
            if spent is not None:
                server.book.remove_grant(spent)
            return None
        if found.client_id != client.get_client_id() or found.expires_at <= server.clock():
            return None
        return found

    def validate_token_request(self) -> None:
        super().validate_token_request()
        code: AuthorizationCode = self.request.authorization_code
        given = self.request.payload.datalist.get("resource", [])
        if given and (len(given) > 1 or given[0].rstrip("/") != code.resource):
            raise InvalidTargetError("Expected the resource the code was issued for.")

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        for key, code in list(self.server.codes.items()):
            if code is authorization_code:
                del self.server.codes[key]
                if self.request.issued_grant_id is not None:
                    self.server.spent_codes[key] = self.request.issued_grant_id

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        del authorization_code
        return OWNER


class _RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: Final = list(AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: OAuthCore

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        book, hashed, now = self.server.book, token_hash(refresh_token), self.server.clock()
        grant = book.by_refresh(hashed)
        if grant is not None:
            token = _Token(grant, now)
            return None if token.is_expired() else token
        reused = book.by_retired_refresh(hashed)
        if reused is not None:
            # A rotated-out refresh token came back: someone holds a copy. End the grant.
            book.remove_grant(reused.grant_id)
        return None

    def validate_token_request(self) -> None:
        super().validate_token_request()
        token: _Token = self.request.refresh_token
        given = self.request.payload.datalist.get("resource", [])
        if given and (len(given) > 1 or given[0].rstrip("/") != token.grant.resource):
            raise InvalidTargetError("Expected the resource the grant is for.")

    def authenticate_user(self, refresh_token: _Token) -> str:
        del refresh_token
        return OWNER

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        del refresh_token  # save_token rotated it out of the grant already


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS: Final = list(AUTH_METHODS)
    server: OAuthCore

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        del token_type_hint  # both kinds are looked up: the hint is only a hint
        book, hashed = self.server.book, token_hash(token_string)
        grant = book.by_access(hashed) or book.by_refresh(hashed)
        return None if grant is None else _Token(grant, self.server.clock())

    def revoke_token(self, token: _Token, request: _Request) -> None:
        del request
        self.server.book.remove_grant(token.grant.grant_id)


class _Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    server: OAuthCore

    def authenticate_token(self, request: _JsonRequest) -> bool:
        del request
        return True  # open registration (RFC 7591 §3): consent is where the owner decides

    def get_server_metadata(self) -> dict[str, Any]:
        return {
            "response_types_supported": ["code"],
            "grant_types_supported": list(GRANT_TYPES),
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        }

    def extract_client_metadata(self, request: _JsonRequest) -> dict[str, Any]:
        data = request.payload.data
        if not isinstance(data, dict):
            raise InvalidClientMetadataError("Expected a JSON object of client metadata.")
        uris = data.get("redirect_uris")
        if not isinstance(uris, list) or not uris:
            raise InvalidRedirectURIError("Expected redirect_uris: a non-empty array of URLs.")
        for index, uri in enumerate(uris):
            problem = redirect_uri_problem(uri)
            if problem is not None:
                raise InvalidRedirectURIError(_ascii(f"redirect_uris[{index}]: {problem}"))
        name = data.get("client_name")
        if name is not None and (not isinstance(name, str) or len(name) > MAX_CLIENT_NAME):
            raise InvalidClientMetadataError(
                f"Expected client_name: a string of at most {MAX_CLIENT_NAME} characters."
            )
        data = {"grant_types": list(GRANT_TYPES), **data}
        data.setdefault("token_endpoint_auth_method", "client_secret_basic")
        request.payload = _JsonPayload(data)
        metadata: dict[str, Any] = super().extract_client_metadata(request)
        return metadata

    def generate_client_secret(self, request: _JsonRequest) -> str | None:
        method = request.payload.data.get("token_endpoint_auth_method")
        return None if method == "none" else new_token()

    def save_client(
        self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: _JsonRequest
    ) -> ClientRecord:
        del request
        secret = client_info.get("client_secret")
        record = ClientRecord(
            client_id=client_info["client_id"],
            client_name=client_metadata.get("client_name") or "unnamed client",
            redirect_uris=tuple(client_metadata["redirect_uris"]),
            token_endpoint_auth_method=client_metadata["token_endpoint_auth_method"],
            grant_types=tuple(client_metadata.get("grant_types", GRANT_TYPES)),
            response_types=tuple(client_metadata.get("response_types") or ("code",)),
            scope=SCOPE,
            registered_at=self.server.wall_clock(),
            client_secret_hash=None if secret is None else token_hash(secret),
            client_uri=client_metadata.get("client_uri"),
        )
        self.server.prune_clients()
        self.server.book.add_client(record)
        return record


def _ascii(text: str) -> str:
    """``text`` with what an OAuth error description may not carry (RFC 6749) replaced."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)


class OAuthCore(AuthorizationServer):  # type: ignore[misc]
    """The authorization server over ``book``: tokens issued, rotated and revoked there."""

    def __init__(
        self,
        book: OAuthBook,
        *,
        access_lifetime_s: float,
        refresh_lifetime_s: float,
        code_lifetime_s: float = 60.0,
        max_clients: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.book = book
        self.access_lifetime_s = access_lifetime_s
        self.refresh_lifetime_s = refresh_lifetime_s
        self.code_lifetime_s = code_lifetime_s
        self.max_clients = max_clients
        self.clock = clock
        self.wall_clock = clock
        self.codes: dict[str, AuthorizationCode] = {}
        self.spent_codes: dict[str, str] = {}
        self.register_token_generator("default", self._generate_token)
        self.register_grant(_CodeGrant, [_S256Only(required=True)])
        self.register_grant(_RefreshGrant)
        self.register_endpoint(_Revocation)
        self.register_endpoint(_Registration(self))

    def query_client(self, client_id: str) -> _Client | None:
        record = self.book.clients.get(client_id)
        return None if record is None else _Client(record)

    def prune_clients(self) -> None:
        self.book.prune_clients(self.wall_clock(), 24 * 3600.0, self.max_clients - 1)

    def _generate_token(  # noqa: PLR0917 (Authlib's generator signature)
        self,
        grant_type: str,
        client: _Client,
        user: str | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        del grant_type, client, user, expires_in, include_refresh_token
        return {
            "token_type": "Bearer",
            "access_token": new_token(),
            "refresh_token": new_token(),
            "expires_in": int(self.access_lifetime_s),
            "scope": scope or SCOPE,
        }

    def save_token(self, token: dict[str, Any], request: _Request) -> None:
        now = self.clock()
        access_hash = token_hash(token["access_token"])
        refresh_hash = token_hash(token["refresh_token"])
        access_expires_at = now + self.access_lifetime_s
        refresh_expires_at = now + self.refresh_lifetime_s
        if request.refresh_token is not None:
            old: GrantRecord = request.refresh_token.grant
            retired = (*old.retired_refresh_hashes, old.refresh_hash)[-MAX_RETIRED_REFRESH:]
            grant = attrs.evolve(
                old,
                access_hash=access_hash,
                access_expires_at=access_expires_at,
                refresh_hash=refresh_hash,
                refresh_expires_at=refresh_expires_at,
                retired_refresh_hashes=retired,
            )
        else:
            code: AuthorizationCode = request.authorization_code
            grant = GrantRecord(
                grant_id=secrets.token_urlsafe(12),
                client_id=code.client_id,
                scope=code.scope,
                resource=code.resource,
                granted_at=now,
                access_hash=access_hash,
                access_expires_at=access_expires_at,
                refresh_hash=refresh_hash,
                refresh_expires_at=refresh_expires_at,
            )
            request.issued_grant_id = grant.grant_id
        self.book.put_grant(grant)

    def create_oauth2_request(self, request: Incoming) -> _Request:
        return _Request(request)

    def create_json_request(self, request: Incoming) -> _JsonRequest:
        return _JsonRequest(request)

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        if isinstance(body, dict):
            body = {key: value for key, value in body.items() if value is not None}
            if "client_secret" not in body:
                body.pop("client_secret_expires_at", None)
        return status, body, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        del name, args, kwargs  # no listeners

    def verify(self, access_token: str, resource: str) -> bool:
        """Whether ``access_token`` is a live access token issued here for ``resource``."""
        grant = self.book.by_access(token_hash(access_token))
        return (
            grant is not None
            and grant.access_expires_at > self.clock()
            and grant.resource == resource
        )

    def expire_codes(self) -> None:
        now = self.clock()
        for key, code in list(self.codes.items()):
            if code.expires_at <= now:
                del self.codes[key]
        while len(self.spent_codes) > 1000:
            del self.spent_codes[next(iter(self.spent_codes))]
