"""The trio Streamable HTTP transport: Quart-trio on Hypercorn's trio worker."""

from ._serve import serve
from ._settings import HttpSettings

__all__ = ["HttpSettings", "serve"]
