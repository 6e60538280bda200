"""A stand-in for the ``claude`` CLI for task tests: stream-json lines chosen by the prompt.

Installed as ``CLAUDE_PATH`` for the daemon; the prompt is the last argv word. It honours
``--resume ID`` (the init event reports ID, so follow-ups keep the conversation) and prints
``resumed ID`` as its first text when resuming. Prompts:

- ``hello``: a text and a success result.
- ``edit NAME WORDS...``: an ``Edit`` tool use that writes WORDS to NAME (in the cwd), its
  tool result, and a success result.
- ``sleep S``: sleeps S seconds, then succeeds.
- ``waitfile PATH``: waits until PATH exists (no output meanwhile), then succeeds.
- ``gates PATH``: says ``at gate 1`` and waits until ``PATH.1`` exists, says ``at gate 2`` and
  waits until ``PATH.2`` exists, then succeeds (a run held in flight, with news, by the test).
- ``hang``: starts ``sleep 600`` in a new session (like Claude's Bash tool does) and an
  escapee: ``sleep 601`` in a session of its own, orphaned at once (out of the agent's group
  and process tree) and ignoring SIGTERM; reports ``pids LEADER CHILD ESCAPEE`` and waits to be
  killed.
- ``lines N``: N short texts, then succeeds.
- ``steps DIR N``: for each i in 1..N, waits until ``DIR/i`` exists, then a text ``step i``;
  then succeeds once ``DIR/done`` exists (a test paces the events).
- ``fail``: an error result (``is_error``), exit 1.
- ``newsession``: like ``hello`` but reports a new session id even when resuming.
- ``limit S``: a ``rate_limit_event`` (``rejected``, ``resetsAt`` S seconds ahead), then the
  error result Claude Code 2.1.332 printed for a refused 429
  (``tests/host_daemon/fixtures/claude_usage_limit_429.jsonl``), exit 1.
- ``Continue …`` (the server's turn after a usage limit): a success result ``continued``.
- ``cost USD``: like ``hello``, its result reporting ``total_cost_usd`` USD and cache tokens.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def assistant(session: str, *content: dict) -> None:
    emit({"type": "assistant", "session_id": session, "message": {"content": list(content)}})


def result(
    session: str, final: str, *, error: bool = False, turns: int = 1, cost: float = 0.0125
) -> None:
    usage = {"input_tokens": 12, "output_tokens": 34}
    if cost != 0.0125:
        usage |= {"cache_read_input_tokens": 56, "cache_creation_input_tokens": 78}
    emit(
        {
            "type": "result",
            "subtype": "error_during_execution" if error else "success",
            "is_error": error,
            "result": final,
            "session_id": session,
            "num_turns": turns,
            "total_cost_usd": cost,
            "usage": usage,
        }
    )


def usage_limit(session: str, resets_at: int) -> None:
    info = {"status": "rejected", "resetsAt": resets_at, "rateLimitType": "five_hour"}
    emit({"type": "rate_limit_event", "rate_limit_info": info, "session_id": session})
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "api_error_status": 429,
            "api_error_type": "rate_limit_error",
            "result": "API Error: Request rejected (429) · This request would exceed your limit.",
            "session_id": session,
            "num_turns": 1,
            "total_cost_usd": 0,
        }
    )


def escape(argv: list) -> int:
    """Start ``argv`` in a new session, orphaned at once, ignoring SIGTERM; returns its pid."""
    read, write = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(read)
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # kept across exec
            os.write(write, str(os.getpid()).encode())
            os.close(write)
            os.execvp(argv[0], argv)  # noqa: S606 -- an argv list, no shell on purpose
        os._exit(0)
    os.close(write)
    os.waitpid(middle, 0)
    with os.fdopen(read) as pipe:
        return int(pipe.read())


def main() -> int:  # noqa: PLR0911, PLR0912 -- one branch and return per scripted prompt
    argv = sys.argv[1:]
    if argv == ["--version"]:
        print("9.9.9 (stand-in claude for tasks)")
        return 0
    prompt = argv[-1]
    resumes = [word.removeprefix("--resume=") for word in argv if word.startswith("--resume=")]
    resumed = resumes[0] if resumes else None
    word, _, rest = prompt.partition(" ")
    session = resumed or str(uuid.uuid4())
    if word == "newsession":
        session = str(uuid.uuid4())
    emit({"type": "system", "subtype": "init", "session_id": session, "cwd": os.getcwd()})
    if resumed:
        assistant(session, {"type": "text", "text": f"resumed {resumed}"})
    if word in ("hello", "newsession"):
        assistant(session, {"type": "text", "text": f"hello from {os.getcwd()}"})
        result(session, "said hello")
        return 0
    if word == "cost":
        result(session, f"spent {rest}", cost=float(rest))
        return 0
    if word == "edit":
        name, _, words = rest.partition(" ")
        path = os.path.join(os.getcwd(), name)
        assistant(
            session,
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "Edit",
                "input": {"file_path": path, "old_string": "", "new_string": words},
            },
        )
        with open(path, "w") as handle:
            handle.write(words + "\n")
        emit(
            {
                "type": "user",
                "session_id": session,
                "message": {
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "edited"}
                    ]
                },
            }
        )
        result(session, f"wrote {name}", turns=2)
        return 0
    if word == "sleep":
        time.sleep(float(rest))
        result(session, "slept")
        return 0
    if word == "waitfile":
        while not os.path.exists(rest):
            time.sleep(0.02)
        result(session, "the file came")
        return 0
    if word == "gates":
        for gate in (1, 2):
            assistant(session, {"type": "text", "text": f"at gate {gate}"})
            while not os.path.exists(f"{rest}.{gate}"):
                time.sleep(0.02)
        result(session, "passed the gates")
        return 0
    if word == "hang":
        child = subprocess.Popen(["sleep", "600"], start_new_session=True)
        escapee = escape(["sleep", "601"])
        assistant(session, {"type": "text", "text": f"pids {os.getpid()} {child.pid} {escapee}"})
        while True:
            time.sleep(60)
    if word == "lines":
        for n in range(int(rest)):
            assistant(session, {"type": "text", "text": f"line {n}"})
        result(session, "done")
        return 0
    if word == "steps":
        directory, _, count = rest.rpartition(" ")
        for step in range(1, int(count) + 1):
            while not os.path.exists(os.path.join(directory, str(step))):
                time.sleep(0.02)
            assistant(session, {"type": "text", "text": f"step {step}"})
        while not os.path.exists(os.path.join(directory, "done")):
            time.sleep(0.02)
        result(session, "stepped")
        return 0
    if word == "fail":
        result(session, "it went wrong", error=True)
        return 1
    if word == "limit":
        usage_limit(session, int(time.time()) + int(rest))
        return 1
    if word == "Continue":
        result(session, "continued")
        return 0
    assistant(session, {"type": "text", "text": f"unknown prompt {prompt!r}"})
    return 3


if __name__ == "__main__":
    sys.exit(main())
