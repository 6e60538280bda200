"""A stand-in for the ``claude`` CLI: prints stream-json lines chosen by its prompt.

Run as the agent through ``CLAUDE_PATH`` (see ``_support.daemon.install_stand_in_agent``): the
daemon builds the real Claude adapter's argv, whose last word is the prompt. Prompts:

- ``hello``: init, one assistant text, a success result; exit 0.
- ``stderr``: one line on stderr, then as ``hello``.
- ``hang``: init, then starts a grandchild (``sleep``) in its group, reports both pids in an
  assistant text as ``pids <leader> <grandchild>``, and sleeps until killed.
- ``sleep S``: init, sleeps S seconds, then a success result.
- ``lines N``: N assistant texts of 1 KiB, then a success result.
- ``flood``: init, then 1 KiB assistant texts without end (for backpressure tests).
- ``huge N M``: N assistant texts of M MiB each, then a success result.
- ``exit N``: init, then exits with code N without a result.
- ``gated A B …``: init, ``pids <leader> <grandchild>`` (a ``sleep`` in its group), then A
  assistant texts ``step 1.1`` … ``step 1.A``; then waits for a file ``gate1`` in its working
  directory, prints B texts ``step 2.1`` …, waits for ``gate2``, and so on; then a success
  result.
- ``write NAME``: init, writes ``NAME`` (a relative path) in its working directory with the
  text ``written by the stand-in``, then a success result.
"""

import json
import os
import subprocess
import sys
import time

SESSION = "00000000-0000-4000-8000-000000000001"


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def text(message: str) -> None:
    emit(
        {
            "type": "assistant",
            "session_id": SESSION,
            "message": {"content": [{"type": "text", "text": message}]},
        }
    )


def result(final: str) -> None:
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": final,
            "session_id": SESSION,
            "num_turns": 1,
            "total_cost_usd": 0.01,
            "usage": {"input_tokens": 3, "output_tokens": 5},
        }
    )


def main() -> int:  # noqa: PLR0911, PLR0912 -- one branch per scripted prompt
    if sys.argv[1:] == ["--version"]:
        print("9.9.9 (stand-in claude)")
        return 0
    prompt = sys.argv[-1]
    word, _, arg = prompt.partition(" ")
    emit({"type": "system", "subtype": "init", "session_id": SESSION, "cwd": os.getcwd()})
    if word == "stderr":
        sys.stderr.write("a warning on stderr\n")
        sys.stderr.flush()
    if word in ("hello", "stderr"):
        text(f"hello from {os.getcwd()}")
        result("done")
        return 0
    if word == "hang":
        child = subprocess.Popen(["sleep", "600"])
        text(f"pids {os.getpid()} {child.pid}")
        while True:
            time.sleep(60)
    if word == "sleep":
        time.sleep(float(arg))
        result("slept")
        return 0
    if word == "lines":
        for _ in range(int(arg)):
            text("x" * 1024)
        result("done")
        return 0
    if word == "huge":
        count, _, mebibytes = arg.partition(" ")
        for _ in range(int(count)):
            text("z" * (int(mebibytes) << 20))
        result("done")
        return 0
    if word == "flood":
        while True:
            text("y" * 1024)
    if word == "exit":
        return int(arg)
    if word == "gated":
        child = subprocess.Popen(["sleep", "600"])
        text(f"pids {os.getpid()} {child.pid}")
        for part, count in enumerate(arg.split(), start=1):
            if part > 1:
                while not os.path.exists(f"gate{part - 1}"):
                    time.sleep(0.02)
            for step in range(1, int(count) + 1):
                text(f"step {part}.{step}")
        child.kill()
        result("gated done")
        return 0
    if word == "write":
        with open(arg, "w") as file:
            file.write("written by the stand-in\n")
        result(f"wrote {arg}")
        return 0
    text(f"unknown prompt {prompt!r}")
    return 3


if __name__ == "__main__":
    sys.exit(main())
