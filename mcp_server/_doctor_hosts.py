"""``coding-agent doctor`` for several hosts (``--daemon``, ``DAEMONS``): each host daemon's
token, its answer, its agents, and its roots against the daemon's own.

Each configured host is checked as the single daemon is (:func:`check_daemon`,
:func:`check_agents`), its findings named ``host NAME``; a root the host is configured with
that lies outside every root its daemon serves fails (every run there would be refused).
"""

from __future__ import annotations

import pathlib

import attrs

from host_daemon import ProbeInfo

from ._config import DaemonSpec
from ._doctor import Check, DoctorSettings, check_agents, check_daemon


def _token(spec: DaemonSpec, settings: DoctorSettings) -> tuple[str | None, str]:
    """The host's token and where it came from (its ``token_file``, else the shared one)."""
    if spec.token_file is None:
        return settings.token, settings.token_source
    try:
        token = spec.token_file.read_text(encoding="utf-8").strip()
    except OSError:
        return None, str(spec.token_file)
    return (token or None), str(spec.token_file)


def _roots(spec: DaemonSpec, info: ProbeInfo) -> Check:
    name = f"host {spec.name} roots"
    outside = [
        str(root)
        for root in spec.roots
        if not any(root.is_relative_to(pathlib.PurePosixPath(served)) for served in info.roots)
    ]
    if outside:
        return Check(
            name,
            "fail",
            f"{', '.join(outside)} outside every root of its daemon "
            f"({', '.join(info.roots) or 'none'}): every run there would be refused",
            f"add `--root` for them to the daemon on host {spec.name}, or fix its roots= here",
        )
    shown = ", ".join(map(str, spec.roots)) or "the workspace"
    return Check(name, "ok", f"{shown}, inside the daemon's roots")


async def check_host(
    spec: DaemonSpec, settings: DoctorSettings
) -> tuple[list[Check], ProbeInfo | None]:
    """One host: its token, its daemon's answer, its agents, its roots."""
    token, source = _token(spec, settings)
    host_settings = attrs.evolve(
        settings,
        daemon_host=spec.host,
        daemon_port=spec.port,
        token=token,
        token_source=source,
        daemon_source=f"{spec.where} {spec.name}",
    )
    prefix = f"host {spec.name}"
    if token is None:
        missing = Check(
            f"{prefix} token",
            "fail",
            f"no daemon token in {source} (missing, empty or unreadable)",
            f"copy the token file of the daemon on host {spec.name} here (mode 0600) and name "
            "it with token_file=",
        )
        return [missing], None
    daemon, info = await check_daemon(host_settings)
    checks = [attrs.evolve(daemon, name=prefix)]
    if info is not None:
        checks += [attrs.evolve(c, name=f"{prefix} {c.name}") for c in check_agents(info)]
        checks.append(_roots(spec, info))
    return checks, info


async def check_hosts(settings: DoctorSettings) -> tuple[list[Check], ProbeInfo | None]:
    """Every configured host, in order; the first host's probe (for the workspace check)."""
    checks: list[Check] = []
    first: ProbeInfo | None = None
    for index, spec in enumerate(settings.hosts):
        found, info = await check_host(spec, settings)
        checks += found
        if index == 0:
            first = info
    return checks, first
