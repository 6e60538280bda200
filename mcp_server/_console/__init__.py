"""The task CLI: ``coding-agent tasks|show|logs|new|send|approve|interrupt|end|merge|discard``,
an MCP client of the server (see :mod:`._commands`)."""

from ._commands import COMMANDS, add_console_commands, console_main
from ._discovery import Endpoint, find_endpoint

__all__ = ["COMMANDS", "Endpoint", "add_console_commands", "console_main", "find_endpoint"]
