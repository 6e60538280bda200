"""The host daemon: runs coding-agent CLIs in process groups for authenticated clients.

The public API: the wire records, the client library (``probe``, ``open_run``), its errors
(``DaemonError`` and its subclasses, each with a code of ``ErrorCode``), the shared token, the
daemon itself (``serve_daemon``, ``DaemonConfig``) and its process-group helpers
(``spawn_group``, ``become_subreaper``). Import these from ``host_daemon`` only: the ``_modules``
are private and may change.
"""

from ._auth import TokenError, load_or_create_token, token_from_environment
from ._client import RunStream, open_run, probe
from ._config import DaemonConfig, default_state_dir, default_token_file
from ._errors import (
    ERROR_CODES,
    AuthenticationFailed,
    DaemonBusy,
    DaemonError,
    DaemonUnavailable,
    ErrorCode,
    ProtocolError,
    RequestRejected,
)
from ._output import OutputLine
from ._process import ExitStatus, GroupProcess, spawn_group
from ._protocol import PROTOCOL_VERSION
from ._records import (
    AGENT_NAMES,
    AgentEvent,
    AgentEventKind,
    AgentInfo,
    AgentName,
    Outcome,
    ProbeInfo,
    RunEvent,
    RunFinished,
    RunRequest,
    RunStarted,
)
from ._server import serve_daemon
from ._signals import watch_shutdown_signals
from ._tree import become_subreaper, is_subreaper
from ._version import __version__

__all__ = [
    "AGENT_NAMES",
    "ERROR_CODES",
    "PROTOCOL_VERSION",
    "AgentEvent",
    "AgentEventKind",
    "AgentInfo",
    "AgentName",
    "AuthenticationFailed",
    "DaemonBusy",
    "DaemonConfig",
    "DaemonError",
    "DaemonUnavailable",
    "ErrorCode",
    "ExitStatus",
    "GroupProcess",
    "Outcome",
    "OutputLine",
    "ProbeInfo",
    "ProtocolError",
    "RequestRejected",
    "RunEvent",
    "RunFinished",
    "RunRequest",
    "RunStarted",
    "RunStream",
    "TokenError",
    "__version__",
    "become_subreaper",
    "default_state_dir",
    "default_token_file",
    "is_subreaper",
    "load_or_create_token",
    "open_run",
    "probe",
    "serve_daemon",
    "spawn_group",
    "token_from_environment",
    "watch_shutdown_signals",
]
