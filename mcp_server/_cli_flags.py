"""The argument types and flag groups of the ``coding-agent`` command line (``_cli``)."""

from __future__ import annotations

import argparse

from ._config import ConfigError, parse_port


def port_flag(value: str) -> int:
    try:
        return parse_port(value, "--port")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def grace_flag(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not 0 <= number <= 3600:
        raise argparse.ArgumentTypeError(f"must be 0..3600 seconds, got {value}")
    return number


def count_flag(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 1000:
        raise argparse.ArgumentTypeError(f"expected 1..1000, got {value!r}")
    return int(value)


def notify_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--webhook-url",
        action="append",
        default=[],
        metavar="URL",
        help="POST task notifications here, added to WEBHOOK_URLS (repeatable; "
        "'ntfy+https://…' for the ntfy format)",
    )
    parser.add_argument(
        "--notify-allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host a task's notify_url may name, added to NOTIFY_ALLOWED_HOSTS (repeatable)",
    )
