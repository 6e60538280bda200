"""Flood `coding-agent up` (under a small fd limit) with slow-body connections; print figures.

usage: python bench/flood_slow_bodies.py N [--auth] [--hard 256] [--soft 256] [--watch SECONDS]

Loopback only. Each of N connections sends complete headers, ``Content-Length: 1000``, 10
bytes, then nothing; the script prints what the server holds at 1, 5, 15, 30 and 60 s and
whether an authenticated request is still answered meanwhile (a sessionless ``ping``: its
expected answer is a 400 status line; a timeout means the server is starved). Run from the
repository root with ``PYTHONPATH=.``; needs ``prlimit`` (util-linux).
"""

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

p = argparse.ArgumentParser()
p.add_argument("n", type=int)
p.add_argument("--auth", action="store_true", help="the flood carries the bearer token")
p.add_argument("--hard", type=int, default=256)
p.add_argument("--soft", type=int, default=256)
p.add_argument("--watch", type=float, default=60.0)
args = p.parse_args()

tmp = pathlib.Path(tempfile.mkdtemp())
(tmp / "root").mkdir()
env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "PYTHONPATH") if k in os.environ}
server_log = open(tmp / "log", "wb")  # noqa: SIM115 (held for the server's whole life)
proc = subprocess.Popen(
    [
        "prlimit",
        f"--nofile={args.soft}:{args.hard}",
        sys.executable,
        "-m",
        "mcp_server",
        "up",
        "--port",
        "0",
        "--state-path",
        str(tmp / "state"),
        "--root",
        str(tmp / "root"),
    ],
    stdout=subprocess.PIPE,
    stderr=server_log,
    env=env,
    text=True,
)
fields = {}
while "Daemon" not in fields:
    line = proc.stdout.readline()
    if not line:
        sys.exit("up exited: " + (tmp / "log").read_text())
    k, _, v = line.strip().partition(": ")
    fields[k] = v
url, token = fields["MCP URL"], fields["Bearer token"]
port = int(url.rsplit(":", 1)[1].split("/")[0])
limits_text = pathlib.Path(f"/proc/{proc.pid}/limits").read_text().splitlines()
limits = next(line for line in limits_text if "open files" in line).split()
print(f"server pid {proc.pid}: open files soft {limits[3]} hard {limits[4]}")


def fds() -> int:
    return len(os.listdir(f"/proc/{proc.pid}/fd"))


def held_tcp() -> int:
    n = 0
    for fd in os.listdir(f"/proc/{proc.pid}/fd"):
        try:
            if os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def request(auth: bool, timeout: float = 5.0) -> str:
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    head = (
        f"POST /mcp HTTP/1.1\r\nhost: localhost:{port}\r\ncontent-type: application/json\r\n"
        f"accept: application/json, text/event-stream\r\ncontent-length: {len(body)}\r\n"
    )
    if auth:
        head += f"authorization: Bearer {token}\r\n"
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.sendall(head.encode() + b"\r\n" + body)
        data = s.recv(4096)
        s.close()
        return data.split(b"\r\n", 1)[0].decode() or "EOF"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


print(f"baseline: server fds {fds()}, sockets {held_tcp()}; authenticated ping -> {request(True)}")
head = (
    f"POST /mcp HTTP/1.1\r\nhost: localhost:{port}\r\ncontent-type: application/json\r\n"
    f"accept: application/json, text/event-stream\r\ncontent-length: 1000\r\n"
)
if args.auth:
    head += f"authorization: Bearer {token}\r\n"
flood = []
t0 = time.monotonic()
failed = 0
for _ in range(args.n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        s.sendall(head.encode() + b"\r\n" + b"0123456789")
        flood.append(s)
    except OSError:
        failed += 1
elapsed = time.monotonic() - t0
print(f"flood: {len(flood)} slow-body connections opened ({failed} failed) in {elapsed:.1f} s")
t0 = time.monotonic()  # the watch starts when the flood is in
for when in (1, 5, 15, 30, 60):
    if when > args.watch:
        break
    time.sleep(max(0, t0 + when - time.monotonic()))
    open_ = 0
    for s in flood:
        s.setblocking(False)
        try:
            data = s.recv(65536)
            if data:
                open_ += 0  # answered; EOF decides
                try:
                    while s.recv(65536):
                        pass
                except BlockingIOError:
                    open_ += 1
                    continue
        except BlockingIOError:
            open_ += 1
        except OSError:
            pass
    print(
        f"t={when:>2}s: client side: {open_} of {len(flood)} still open; server fds {fds()} "
        f"(sockets {held_tcp()}); authenticated ping -> {request(True)}"
    )
for s in flood:
    s.close()
proc.terminate()
proc.wait()
server_log.close()
proc.wait(30)
