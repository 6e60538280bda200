"""Protocol revisions served, and how a request is classified into an era."""

from __future__ import annotations

from typing import Any, Final, Literal

Era = Literal["legacy", "modern"]

MODERN: Final = "2026-07-28"
LATEST_LEGACY: Final = "2025-11-25"
DEFAULT_LEGACY: Final = "2025-03-26"
LEGACY_VERSIONS: Final = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
MODERN_VERSIONS: Final = (MODERN,)
SUPPORTED_VERSIONS: Final = (MODERN, *LEGACY_VERSIONS)

META_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES: Final = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO: Final = "io.modelcontextprotocol/clientInfo"
META_LOG_LEVEL: Final = "io.modelcontextprotocol/logLevel"
META_SERVER_INFO: Final = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION: Final = "io.modelcontextprotocol/subscriptionId"
META_RELATED_TASK: Final = "io.modelcontextprotocol/related-task"
TASKS_EXTENSION: Final = "io.modelcontextprotocol/tasks"


def negotiate_legacy(offered: Any) -> str:
    """The version a legacy ``initialize`` gets: an echo when served, else 2025-11-25."""
    if isinstance(offered, str) and offered in LEGACY_VERSIONS:
        return offered
    return LATEST_LEGACY


def classify(header_version: str | None, params: Any) -> Era:
    """Modern when the header names a non-legacy version or the body carries the envelope."""
    if header_version is not None and header_version not in LEGACY_VERSIONS:
        return "modern"
    if isinstance(params, dict):
        meta = params.get("_meta")
        if isinstance(meta, dict) and META_VERSION in meta:
            return "modern"
    return "legacy"
