"""``coding-agent-daemon install-unit``: write the daemon's systemd unit for the current user.

The unit runs the daemon from this very installation (its console script, or ``python -m
host_daemon``), listens on loopback plus the Docker bridge gateway (so the container reaches it
and nothing else does), and is hardened without breaking the agents: they keep their credentials
and conversation history in the user's home, so the home stays writable while the rest of the
system is read-only.
"""

from __future__ import annotations

import argparse
import fcntl
import grp
import ipaddress
import os
import pathlib
import pwd
import socket
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import attrs

from ._cli import gibibytes, positive_finite, resolve_worktrees_dir
from ._config import DEFAULT_PORT, DaemonConfig, default_state_dir, default_token_file
from ._paths import resolve_roots

UNIT_NAME = "coding-agent-daemon.service"
DOCKER_INTERFACE = "docker0"
_SIOCGIFADDR = 0x8915  # linux/sockios.h: the interface's IPv4 address

Mode = Literal["user", "system"]


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of network interface ``name``, or None when it has none (or is absent)."""
    request = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def default_listen(port: int, interface: str = DOCKER_INTERFACE) -> list[str]:
    """Loopback, plus the Docker bridge gateway when the interface exists: never all interfaces."""
    listen = [f"127.0.0.1:{port}"]
    gateway = interface_ipv4(interface)
    if gateway is not None and not ipaddress.ip_address(gateway).is_loopback:
        listen.append(f"{gateway}:{port}")
    return listen


def stop_timeout_s() -> int:
    """Longer than the daemon's drain (grace) plus its SIGTERM-to-SIGKILL wait, with a margin."""
    defaults = DaemonConfig(token="", roots=())  # only its defaults are read
    return int(defaults.grace_s + defaults.kill_grace_s) + 15


@attrs.frozen
class UnitSpec:
    """Everything the unit file says; paths are absolute."""

    mode: Mode
    exec_argv: tuple[str, ...]
    home: str
    listen: tuple[str, ...]
    token_file: str
    state_dir: str
    roots: tuple[str, ...]
    path_env: str
    agent_env: tuple[tuple[str, str], ...] = ()
    #: More of the daemon's flags, as given to ``install-unit`` (the worktree settings).
    daemon_options: tuple[str, ...] = ()
    user: str | None = None
    group: str | None = None
    stop_timeout_s: int = attrs.field(factory=stop_timeout_s)


def _quote(word: str) -> str:
    """One word for a unit file: specifiers and variables escaped, quoted when it has blanks."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and not any(c in word for c in " \t\"'\\;"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(spec: UnitSpec) -> str:
    """The unit file's text."""
    argv = [*spec.exec_argv]
    for address in spec.listen:
        argv += ["--listen", address]
    argv += ["--token-file", spec.token_file, "--state-dir", spec.state_dir]
    for root in spec.roots:
        argv += ["--root", root]
    argv += spec.daemon_options
    system = spec.mode == "system"
    lines = [
        f"# Written by `coding-agent-daemon install-unit{' --system' if system else ''}`.",
        "[Unit]",
        "Description=Coding Agent host daemon (runs coding-agent CLIs for the MCP server)",
        "Wants=network-online.target",
        f"After=network-online.target{' docker.service' if system else ''}",
        "",
        "[Service]",
        "Type=exec",
    ]
    if system:
        lines += [f"User={_quote(spec.user or 'root')}", f"Group={_quote(spec.group or 'root')}"]
    lines += [f"Environment={_quote('PATH=' + spec.path_env)}"]
    lines += [f"Environment={_quote(f'{name}={value}')}" for name, value in spec.agent_env]
    lines += [
        "ExecStart=" + " ".join(_quote(word) for word in argv),
        "Restart=on-failure",
        "RestartSec=5s",
        # Every agent the daemon started is in the unit's cgroup: a stop (or the daemon's own
        # death) ends them all.
        "KillMode=control-group",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={spec.stop_timeout_s}s",
        # Hardening. The home stays writable: the agents keep their credentials and history
        # there (Claude Code rewrites ~/.claude.json in place). No MemoryDenyWriteExecute: Node's
        # JIT needs it.
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        *(f"ReadWritePaths={_quote(path)}" for path in _unique([spec.home, *spec.roots])),
        *(f"ReadWritePaths=-{_quote(path)}" for path in _unique([spec.state_dir])),
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "",
        "[Install]",
        f"WantedBy={'multi-user.target' if system else 'default.target'}",
        "",
    ]
    return "\n".join(lines)


def _unique(paths: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(paths))


def daemon_exec_argv() -> tuple[str, ...]:
    """This installation's daemon: the console script next to the interpreter, else ``-m``."""
    script = pathlib.Path(sys.executable).parent / "coding-agent-daemon"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (sys.executable, "-m", "host_daemon")


def unit_path(mode: Mode, environ: Mapping[str, str], home: str) -> pathlib.Path:
    """Where systemd looks for the unit in this mode."""
    if mode == "system":
        return pathlib.Path("/etc/systemd/system") / UNIT_NAME
    config = environ.get("XDG_CONFIG_HOME") or str(pathlib.Path(home) / ".config")
    return pathlib.Path(config) / "systemd" / "user" / UNIT_NAME


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coding-agent-daemon install-unit",
        description="Write the systemd unit that runs this daemon for the current user.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--user",
        dest="mode",
        action="store_const",
        const="user",
        help="a user unit in ~/.config/systemd/user (the default)",
    )
    mode.add_argument(
        "--system",
        dest="mode",
        action="store_const",
        const="system",
        help="a system unit in /etc/systemd/system running as --run-as (needs root)",
    )
    parser.set_defaults(mode="user")
    parser.add_argument("--print", action="store_true", help="print the unit instead of writing it")
    parser.add_argument("--output", type=pathlib.Path, help="write the unit to this path instead")
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        help="a directory agents may work in (repeatable; default $HOST_FILE_ROOT)",
    )
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="address to listen on (repeatable; default loopback plus the docker0 address)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the defaults")
    parser.add_argument(
        "--docker-interface",
        default=DOCKER_INTERFACE,
        help="the bridge whose address the container reaches as host.docker.internal",
    )
    parser.add_argument("--token-file", type=pathlib.Path, help="the token shared with the server")
    parser.add_argument("--state-dir", type=pathlib.Path, help="the daemon's state directory")
    parser.add_argument(
        "--run-as", help="the user of a --system unit (default: $SUDO_USER, else you)"
    )
    parser.add_argument(
        "--worktrees-dir",
        type=pathlib.Path,
        help="the daemon's worktrees directory (default STATE_DIR/worktrees)",
    )
    parser.add_argument(
        "--worktrees-max-gb",
        metavar="GIB",
        help="the worktrees' disk budget (the daemon's default when absent)",
    )
    parser.add_argument(
        "--git-timeout",
        metavar="SECONDS",
        help="the bound of each git command (the daemon's default when absent)",
    )
    return parser


def _daemon_options(
    args: argparse.Namespace, state_dir: pathlib.Path, roots: tuple[str, ...]
) -> tuple[str, ...]:
    """The worktree flags for the daemon, checked as the daemon will check them."""
    options: list[str] = []
    if args.worktrees_dir is not None:
        options += ["--worktrees-dir", resolve_worktrees_dir(args.worktrees_dir, state_dir, roots)]
    options += _checked("--worktrees-max-gb", args.worktrees_max_gb, gibibytes)
    options += _checked("--git-timeout", args.git_timeout, positive_finite)
    return tuple(options)


def _checked(flag: str, value: str | None, check: Callable[[str], object]) -> list[str]:
    if value is None:
        return []
    try:
        check(value)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"{flag}: {exc}") from None
    return [flag, value]


def _account(args: argparse.Namespace, environ: Mapping[str, str]) -> pwd.struct_passwd:
    if args.run_as:
        return pwd.getpwnam(args.run_as)
    sudo_user = environ.get("SUDO_USER")
    if args.mode == "system" and sudo_user:
        return pwd.getpwnam(sudo_user)
    return pwd.getpwuid(os.getuid())


def build_spec(args: argparse.Namespace, environ: Mapping[str, str]) -> UnitSpec:
    """The unit for these arguments; raises ``ValueError`` with a message for the user."""
    account = _account(args, environ)
    home = account.pw_dir
    roots = resolve_roots(args.root, environ)
    user_environ = {**environ, "HOME": home} if account.pw_uid != os.getuid() else environ
    state_dir = args.state_dir or _state_dir_for(home, user_environ)
    token_file = args.token_file or default_token_file(state_dir)
    state_dir = pathlib.Path(os.path.abspath(os.path.expanduser(state_dir)))
    # The agents are found on the PATH of whoever installs the unit (npm, ~/.local/bin, ...).
    searched = environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")
    path_env = ":".join(_unique([p for p in searched if p.startswith("/")]))
    agent_env = tuple(
        (name, environ[name])
        for name in ("CLAUDE_PATH", "CODEX_PATH", "GEMINI_PATH")
        if environ.get(name)
    )
    return UnitSpec(
        mode=args.mode,
        exec_argv=daemon_exec_argv(),
        home=home,
        listen=tuple(args.listen or default_listen(args.port, args.docker_interface)),
        token_file=os.path.abspath(os.path.expanduser(token_file)),
        state_dir=str(state_dir),
        roots=roots,
        path_env=path_env,
        agent_env=agent_env,
        daemon_options=_daemon_options(args, state_dir, roots),
        user=account.pw_name if args.mode == "system" else None,
        group=grp.getgrgid(account.pw_gid).gr_name if args.mode == "system" else None,
    )


def _state_dir_for(home: str, environ: Mapping[str, str]) -> pathlib.Path:
    if environ.get("XDG_STATE_HOME"):
        return default_state_dir(environ)
    return pathlib.Path(home) / ".local" / "state" / "coding-agent"


def install_unit_main(argv: list[str]) -> int:
    """Entry point of ``coding-agent-daemon install-unit``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        spec = build_spec(args, os.environ)
    except (ValueError, KeyError) as exc:
        print(f"install-unit: {exc}", file=sys.stderr)
        return 2
    text = render_unit(spec)
    if args.print:
        sys.stdout.write(text)
        return 0
    target = args.output or unit_path(spec.mode, os.environ, spec.home)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.chmod(0o644)
        temporary.replace(target)
    except OSError as exc:
        print(f"install-unit: cannot write {target}: {exc.strerror}", file=sys.stderr)
        return 1
    systemctl = "systemctl" if spec.mode == "system" else "systemctl --user"
    print(f"wrote {target}")
    print(f"listening on {', '.join(spec.listen)}; token file {spec.token_file}")
    print(f"next: {systemctl} daemon-reload && {systemctl} enable --now coding-agent-daemon")
    if spec.mode == "user":
        user = pwd.getpwuid(os.getuid()).pw_name
        print(f"to keep it running after you log out: loginctl enable-linger {user}")
    return 0
