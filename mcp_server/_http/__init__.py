"""The trio Streamable HTTP transport: Quart-trio on Hypercorn's trio worker."""

from ._authority import HostFence
from ._connections import raise_open_files_limit
from ._serve import serve
from ._settings import HttpSettings

__all__ = ["HostFence", "HttpSettings", "raise_open_files_limit", "serve"]
