"""A stand-in live ``claude`` for bench/bench_approvals.py: it times permission round trips.

Speaks the part of Claude Code's stream-json control protocol that the daemon's live driver
uses (``-p --input-format=stream-json --output-format=stream-json --permission-prompt-tool=stdio
--replay-user-messages``), and its ``--help`` names those flags, so the daemon's live check
takes it for a Claude Code that can run live. Benchmark-only and self-contained (standard
library only): the benchmark installs it as ``CLAUDE_PATH``.

Each ``user`` line on stdin is a prompt ``approvals N FILE``: the stand-in echoes the line
(``isReplay``, as ``--replay-user-messages`` does), then writes N ``control_request
{subtype: can_use_tool}`` lines one after another, a Bash command each, and times each one with
its own monotonic clock from just before the request is written to the moment its
``control_response`` is read. It appends the samples (nanoseconds, one JSON line
``{"samples_ns": [...], "denied": D}``) to FILE and ends the turn with a ``result``. Any other
prompt ends its turn at once. End of stdin ends the process (exit 0), as Claude does.
"""

import json
import os
import sys
import time
import uuid

HELP = """Usage: claude [options] [prompt]   (stand-in for bench/bench_approvals.py)

Options:
  -p, --print                      Print the response and exit
  --input-format <format>          Input format: "text" or "stream-json"
  --output-format <format>         Output format: "text", "json" or "stream-json"
  --verbose                        Verbose output
  --permission-prompt-tool <tool>  Where permission prompts go ("stdio": control requests)
  --permission-mode <mode>         Permission mode
  --replay-user-messages           Echo user messages taken from stdin
  --resume <id>                    Resume a conversation
"""


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def read_line() -> dict | None:
    """The next JSON object on stdin; None at its end."""
    while True:
        line = sys.stdin.readline()
        if not line:
            return None
        if line.strip():
            return json.loads(line)


def result(session: str, text: str) -> None:
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": text,
            "session_id": session,
            "num_turns": 1,
            "total_cost_usd": 0,
        }
    )


def time_approvals(session: str, turn: int, count: int) -> tuple[list[int], int]:
    """Ask ``count`` times, one request after another; each round trip's nanoseconds."""
    samples: list[int] = []
    denied = 0
    for n in range(count):
        request_id = f"bench-{turn}-{n}"
        command = f"echo approval {turn}.{n}"
        request = {
            "subtype": "can_use_tool",
            "tool_name": "Bash",
            "input": {"command": command, "description": "a benchmark step"},
            "tool_use_id": f"toolu_{turn}_{n}",
            "permission_suggestions": [],
        }
        line = json.dumps({"type": "control_request", "request_id": request_id, "request": request})
        start = time.monotonic_ns()
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        while True:
            message = read_line()
            if message is None:
                raise SystemExit(f"stdin ended while request {request_id} was pending")
            response = message.get("response") or {}
            if message.get("type") == "control_response" and (
                response.get("request_id") == request_id
            ):
                break
        samples.append(time.monotonic_ns() - start)
        if (response.get("response") or {}).get("behavior") != "allow":
            denied += 1
    return samples, denied


def main() -> int:
    argv = sys.argv[1:]
    if "--help" in argv:
        print(HELP)
        return 0
    if argv == ["--version"]:
        print("0.0.0 (stand-in live claude for bench/bench_approvals.py)")
        return 0
    resumes = [word.removeprefix("--resume=") for word in argv if word.startswith("--resume=")]
    session = resumes[0] if resumes else str(uuid.uuid4())
    emit({"type": "system", "subtype": "init", "session_id": session, "cwd": os.getcwd()})
    turn = 0
    while True:
        message = read_line()
        if message is None:
            return 0
        if message.get("type") != "user":
            continue  # a control_response with no request pending, an interrupt: not scripted
        turn += 1
        emit(message | {"isReplay": True, "session_id": session})
        words = str(message["message"]["content"]).split()
        if len(words) == 3 and words[0] == "approvals":
            samples, denied = time_approvals(session, turn, int(words[1]))
            with open(words[2], "a") as out:
                out.write(json.dumps({"samples_ns": samples, "denied": denied}) + "\n")
            result(session, f"{len(samples)} approvals timed, {denied} denied")
        else:
            result(session, "nothing to do")


if __name__ == "__main__":
    sys.exit(main())
