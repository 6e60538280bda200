#!/usr/bin/env python3
"""Container health probe: exit 0 when the MCP server's ``/healthz`` answers 200, else 1.

Standard library only, so the image needs no curl. ``/healthz`` needs no token and reveals
nothing; the port comes from ``PORT`` (the server's own setting).
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    """Probe ``http://127.0.0.1:$PORT/healthz`` once, with a short timeout."""
    url = f"http://127.0.0.1:{os.environ.get('PORT', '3000')}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status = response.status
    except OSError as exc:  # URLError and HTTPError (non-2xx) are OSErrors
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
