"""The web dashboard: the coding tasks in a browser, served by the MCP server on its own port.

:func:`dashboard_blueprint` builds a Quart blueprint over the same task runner the MCP tools use
(``/`` the board, ``/tasks/<id>``, ``/status``, ``/login``, ``/logout``); :class:`BoardHub` is the
runner listener that wakes its live streams. Modules: logins and the failed-login throttle
(``_sessions``, sans-IO), the fence (``_guard``), what pages show (``_render``, sans-IO), the
routes (``_app``, ``_task_pages``, ``_streams``); templates and the vendored htmx in
``templates/`` and ``static/``.
"""

from ._app import dashboard_blueprint
from ._hub import BoardHub, FanOut
from ._settings import DashboardSettings

__all__ = ["BoardHub", "DashboardSettings", "FanOut", "dashboard_blueprint"]
