"""Where notifications go and how they are signed: the environment and flags, checked.

``WEBHOOK_URLS`` (comma-separated) and ``--webhook-url`` name the owner's targets; an
``ntfy+`` prefix (``ntfy+https://ntfy.sh/topic``) or ``WEBHOOK_FORMAT=ntfy`` picks the ntfy-style
format. ``WEBHOOK_SECRET`` or ``WEBHOOK_SECRET_FILE`` give the signing secret, else one is made
once in the state dir (``webhook.secret``, 0600). ``NOTIFY_ALLOWED_HOSTS`` and
``--notify-allowed-host`` list the hosts a task's ``notify_url`` may name (none by default).
"""

from __future__ import annotations

import ipaddress
import math
import pathlib
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import cast, get_args

import attrs

from host_daemon import TokenError, load_or_create_token
from mcp_server._tasks import TaskError

from ._outbox import Format, RetryPolicy, Target

SECRET_FILE = "webhook.secret"  # noqa: S105 (the file's name, not a secret)


class NotifyConfigError(ValueError):
    """A notification setting that cannot be used; the message names the variable or flag."""


class NotifyUrlRefused(TaskError):
    """A task's ``notify_url`` that the owner's allowlist does not admit."""

    code = "invalid_arguments"


@attrs.frozen
class NotifyConfig:
    """The notifier's settings (no targets and no allowed hosts: nothing is sent)."""

    targets: tuple[Target, ...] = ()
    secret: str = attrs.field(default="", repr=False)
    allowed_hosts: frozenset[str] = frozenset()
    default_format: Format = "json"
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)


def notify_config(
    environ: Mapping[str, str],
    state: pathlib.Path,
    *,
    urls: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
) -> NotifyConfig:
    """The settings from the environment, with the flags' URLs and hosts added."""
    given_format = environ.get("WEBHOOK_FORMAT", "").strip() or "json"
    if given_format not in get_args(Format):
        raise NotifyConfigError(f"WEBHOOK_FORMAT: expected json or ntfy, got {given_format!r}")
    default_format = cast(Format, given_format)
    listed = [u.strip() for u in environ.get("WEBHOOK_URLS", "").split(",") if u.strip()]
    targets = tuple(
        parse_target(text, default_format, where)
        for where, texts in (("WEBHOOK_URLS", listed), ("--webhook-url", list(urls)))
        for text in texts
    )
    hosts = [h for h in environ.get("NOTIFY_ALLOWED_HOSTS", "").split(",") if h.strip()]
    hosts += list(allowed_hosts)
    return NotifyConfig(
        targets=tuple({t.url: t for t in targets}.values()),
        secret=_secret(environ, state),
        allowed_hosts=frozenset(_host(h) for h in hosts),
        default_format=default_format,
        policy=RetryPolicy(
            base_s=_seconds(environ, "WEBHOOK_RETRY_BASE_S", 1.0),
            cap_s=_seconds(environ, "WEBHOOK_RETRY_CAP_S", 600.0),
            max_attempts=int(_seconds(environ, "WEBHOOK_MAX_ATTEMPTS", 20, integral=True)),
            max_age_s=_seconds(environ, "WEBHOOK_MAX_AGE_S", 86_400.0),
            timeout_s=_seconds(environ, "WEBHOOK_TIMEOUT_S", 10.0),
        ),
    )


def parse_target(text: str, default_format: Format, where: str) -> Target:
    """``[ntfy+]http(s)://host[:port]/path`` as a :class:`Target`, or a clear refusal."""
    url, fmt = text.strip(), default_format
    if url.startswith("ntfy+"):
        url, fmt = url.removeprefix("ntfy+"), "ntfy"
    elif url.startswith("json+"):
        url, fmt = url.removeprefix("json+"), "json"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (a malformed port raises here)
    except ValueError as exc:
        raise NotifyConfigError(f"{where}: {exc} in {_shown(url)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotifyConfigError(f"{where}: expected an http(s) URL with a host, got {_shown(url)}")
    return Target(url, fmt)


def check_notify_url(url: str, config: NotifyConfig) -> Target:
    """A task's ``notify_url`` as a target, if the allowlist admits it: https (http only on
    loopback) to a host in ``NOTIFY_ALLOWED_HOSTS``; else :class:`NotifyUrlRefused`."""
    where = "@ $.arguments.notify_url"
    try:
        target = parse_target(url, config.default_format, "notify_url")
    except NotifyConfigError as exc:
        raise NotifyUrlRefused(f"{exc} {where}") from None
    parts = urllib.parse.urlsplit(target.url)
    host = _host(parts.hostname or "")
    if parts.scheme == "http" and not _loopback(host):
        raise NotifyUrlRefused(
            f"notify_url: expected https (http only on loopback), got http {where}"
        )
    if host not in config.allowed_hosts:
        allowed = ", ".join(sorted(config.allowed_hosts)) or "none configured"
        raise NotifyUrlRefused(
            f"notify_url: host {host!r} is not in the allowlist (NOTIFY_ALLOWED_HOSTS or "
            f"--notify-allowed-host: {allowed}) {where}"
        )
    return target


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host(text: str) -> str:
    return text.strip().strip("[]").rstrip(".").lower()


def _shown(url: str) -> str:
    """A URL in an error: its scheme and host only (the path may be a secret)."""
    head = url.split("?", 1)[0]
    scheme, _, rest = head.partition("://")
    return repr(f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}/…" if rest else head[:40])


def _secret(environ: Mapping[str, str], state: pathlib.Path) -> str:
    secret = environ.get("WEBHOOK_SECRET", "").strip()
    if secret:
        return secret
    file = environ.get("WEBHOOK_SECRET_FILE", "").strip()
    if file:
        try:
            secret = pathlib.Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise NotifyConfigError(f"WEBHOOK_SECRET_FILE: cannot read {file}: {exc}") from None
        if not secret:
            raise NotifyConfigError(f"WEBHOOK_SECRET_FILE: {file} is empty")
        return secret
    try:
        return load_or_create_token(state / SECRET_FILE)
    except TokenError as exc:
        raise NotifyConfigError(f"webhook secret: {exc}") from None


def _seconds(
    environ: Mapping[str, str], name: str, default: float, *, integral: bool = False
) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if integral else float(text)
    except ValueError:
        kind = "a whole number" if integral else "seconds"
        raise NotifyConfigError(f"{name}: expected {kind}, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise NotifyConfigError(f"{name}: expected a positive number, got {text!r}")
    return value
