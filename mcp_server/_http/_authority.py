"""Strict ``Host`` and ``Origin`` parsing, and the allow-lists they are checked against.

This is the DNS-rebinding fence (and, once the dashboard sets cookies, the only one). A Host is
an RFC 3986 authority without userinfo, ``host [":" port]``; an Origin is exactly
``scheme "://" host [":" port]`` (RFC 6454). The port is one to five ASCII digits. Anything else
(``localhost:evil.com``, ``localhost:1@evil.com``, ``http://evil.com\\@localhost``, a path, a
trailing slash) is refused, never guessed at; and only a parsed, allowed authority is written
back into a URL we advertise.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

import attrs

from .._core import clip
from ._settings import HttpSettings

LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})
_HOST: Final = r"(\[[0-9a-f:.]+\]|[a-z0-9._-]+)"
_PORT: Final = r"(?::([0-9]{1,5}))?"
_AUTHORITY_RE: Final = re.compile(_HOST + _PORT, re.ASCII | re.IGNORECASE)
_ORIGIN_RE: Final = re.compile(r"(https?)://" + _HOST + _PORT, re.ASCII | re.IGNORECASE)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_MAX_PORT: Final = 65535


@attrs.frozen
class Authority:
    """A parsed ``host [":" port]``: host in lower case, an IPv6 literal in brackets."""

    host: str
    port: int | None

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def _authority(host: str, port: str | None) -> Authority | None:
    number = int(port) if port is not None else None
    if number is not None and number > _MAX_PORT:
        return None
    return Authority(host.lower(), number)


def parse_host(text: str) -> Authority | None:
    """A ``Host`` header's authority, or None when it is not exactly ``host [":" port]``."""
    match = _AUTHORITY_RE.fullmatch(text)
    return None if match is None else _authority(match[1], match[2])


def parse_origin(text: str) -> tuple[str, Authority] | None:
    """An ``Origin`` header's scheme and authority, or None when it is not exactly
    ``http(s)://host[:port]``."""
    match = _ORIGIN_RE.fullmatch(text)
    if match is None:
        return None
    authority = _authority(match[2], match[3])
    return None if authority is None else (match[1].lower(), authority)


def _configured_host(name: str) -> str:
    name = name.lower()
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def public_bases(settings: HttpSettings) -> dict[str, list[tuple[int, str]]]:
    """``public_urls`` by lower-case host (IPv6 bracketed): (port, ``scheme://netloc``) of each."""
    bases: dict[str, list[tuple[int, str]]] = {}
    for url in settings.public_urls:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if parts.hostname:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 443)
            bases.setdefault(_configured_host(parts.hostname), []).append(
                (port, f"{parts.scheme}://{parts.netloc}")
            )
    return bases


def _base(scheme: str, host: Authority, bases: dict[str, list[tuple[int, str]]]) -> str:
    candidates = bases.get(host.host)
    if not candidates:
        return f"{scheme}://{host}"
    for public_port, base in candidates:
        if public_port == host.port:
            return base
    return candidates[0][1]


def advertised_base(scheme: str, host: str, bases: dict[str, list[tuple[int, str]]]) -> str:
    """The base URL to advertise for a request to ``host`` (its Host header, already allowed).

    A request whose Host names a public URL (a tunnel terminating TLS in front of us) is told
    that public URL, preferring the one on the same explicit port; otherwise the request's own
    scheme and (re-serialized) Host. A malformed Host is a ``ValueError``, never echoed.
    """
    authority = parse_host(host)
    if authority is None:
        raise ValueError(f"malformed Host: {host!r}")
    return _base(scheme, authority, bases)


@attrs.frozen(eq=False)
class HostFence:
    """Which ``Host`` and ``Origin`` a request may carry, and what URL to advertise to it.

    Hosts: the loopback names, the host we bind (unless a wildcard) and the public URLs' hosts,
    on any port. Origins: loopback on any port over http(s), and the public URLs exactly (scheme,
    host, port with the scheme's default filled in).
    """

    hosts: frozenset[str]
    origins: frozenset[tuple[str, str, int]]
    bases: dict[str, list[tuple[int, str]]]

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> HostFence:
        """The fence for ``settings``."""
        hosts = set(LOCAL_HOSTS)
        if settings.host not in ("0.0.0.0", "::", ""):  # noqa: S104 (comparing, not binding)
            hosts.add(_configured_host(settings.host))
        origins: set[tuple[str, str, int]] = set()
        for url in settings.public_urls:
            parts = urlsplit(url if "://" in url else f"https://{url}")
            if parts.hostname:
                host = _configured_host(parts.hostname)
                hosts.add(host)
                scheme = parts.scheme.lower()
                origins.add((scheme, host, parts.port or _DEFAULT_PORTS.get(scheme, 443)))
        return cls(frozenset(hosts), frozenset(origins), public_bases(settings))

    def allowed_host(self, header: str) -> Authority | None:
        """The Host header's authority when well-formed and allowed, else None."""
        authority = parse_host(header)
        return authority if authority is not None and authority.host in self.hosts else None

    def allows_origin(self, header: str) -> bool:
        """Whether an Origin header is well-formed and allowed."""
        parsed = parse_origin(header)
        if parsed is None:
            return False
        scheme, authority = parsed
        if authority.host in LOCAL_HOSTS:
            return True
        port = authority.port if authority.port is not None else _DEFAULT_PORTS[scheme]
        return (scheme, authority.host, port) in self.origins

    def is_own_origin(self, origin: str, scheme: str, host_header: str) -> bool:
        """Whether ``origin`` is exactly this server's, as a request over ``scheme`` to
        ``host_header`` sees it: that scheme, host and port, or a public URL exactly.

        Stricter than :meth:`allows_origin` (any loopback port): a cookie-authenticated page
        must not take a form from another port on the same machine (ports do not separate
        sites, so the browser sends the SameSite cookie along).
        """
        parsed = parse_origin(origin)
        host = self.allowed_host(host_header)
        if parsed is None or host is None:
            return False
        origin_scheme, authority = parsed
        port = authority.port if authority.port is not None else _DEFAULT_PORTS[origin_scheme]
        if (origin_scheme, authority.host, port) in self.origins:
            return True
        own_port = host.port if host.port is not None else _DEFAULT_PORTS.get(scheme, 80)
        return (origin_scheme, authority.host, port) == (scheme, host.host, own_port)

    def base_url(self, scheme: str, host: Authority) -> str:
        """The base URL to advertise to a request whose allowed Host is ``host``."""
        return _base(scheme, host, self.bases)

    def refusal(self, header: str) -> str:
        """Why a Host header is refused: what was expected, and what came."""
        names = ", ".join(sorted(self.hosts))
        got = clip(header)
        return f"Host not allowed: expected one of {names}, with an optional port, got {got!r}"
