"""Where runs happen: the host daemon's endpoint and the workspace that project dirs live in."""

from __future__ import annotations

from pathlib import PurePosixPath

import attrs

from ._errors import TaskError


class PathRefused(TaskError, ValueError):
    """A project directory outside the workspace."""

    code = "path_outside_workspace"


@attrs.frozen
class DaemonEndpoint:
    """Where the host daemon listens, as seen from the server, and its token."""

    host: str
    port: int
    token: str = attrs.field(repr=False)


@attrs.frozen
class Workspace:
    """Maps project dirs as clients name them to host directories, by path components.

    In the container the client's root is ``/workspace`` and the host root is
    ``HOST_FILE_ROOT``; with ``coding-agent up`` both are the configured root.
    """

    client_root: PurePosixPath
    host_root: PurePosixPath

    def resolve(self, project_dir: str | None) -> tuple[str, str]:
        """(project dir relative to the workspace, host directory); :class:`PathRefused` if out."""
        given = project_dir or "."
        if "\x00" in given:
            raise PathRefused("project_dir contains a NUL byte")
        path = PurePosixPath(given)
        if path.is_absolute():
            if not path.is_relative_to(self.client_root):
                raise PathRefused(
                    f"project_dir {given!r} is outside the workspace {self.client_root}"
                )
            path = path.relative_to(self.client_root)
        if ".." in path.parts:
            raise PathRefused(f"project_dir {given!r} must not contain '..'")
        relative = "/".join(path.parts)
        host = self.host_root.joinpath(*path.parts)
        return relative, str(host)
