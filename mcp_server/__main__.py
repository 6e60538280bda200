"""``python -m mcp_server``: the ``coding-agent`` command."""

import sys

from ._cli import main

sys.exit(main())
