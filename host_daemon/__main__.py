"""``python -m host_daemon``: the same as the ``coding-agent-daemon`` console script."""

import sys

from ._cli import main

sys.exit(main())
