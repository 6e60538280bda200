"""The host daemon: runs coding-agent CLIs in process groups for authenticated clients.

The public API: the wire records, the client library (``probe``, ``open_run``), its errors,
the shared token, and the daemon itself (``serve_daemon``, ``DaemonConfig``).
"""

from ._auth import TokenError, load_or_create_token, token_from_environment
from ._client import (
    AuthenticationFailed,
    DaemonBusy,
    DaemonError,
    DaemonUnavailable,
    ProtocolError,
    RequestRejected,
    RunStream,
    open_run,
    probe,
)
from ._config import DaemonConfig, default_state_dir, default_token_file
from ._protocol import PROTOCOL_VERSION
from ._records import (
    AGENT_NAMES,
    AgentEvent,
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
from ._version import __version__

__all__ = [
    "AGENT_NAMES",
    "PROTOCOL_VERSION",
    "AgentEvent",
    "AgentInfo",
    "AgentName",
    "AuthenticationFailed",
    "DaemonBusy",
    "DaemonConfig",
    "DaemonError",
    "DaemonUnavailable",
    "Outcome",
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
    "default_state_dir",
    "default_token_file",
    "load_or_create_token",
    "open_run",
    "probe",
    "serve_daemon",
    "token_from_environment",
    "watch_shutdown_signals",
]
