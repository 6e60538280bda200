"""A stand-in agent CLI that replays a recorded event stream (codex, gemini, claude).

The prompt (the last argv word, or gemini's ``--prompt=…``) is ``FIXTURE EXIT``: it prints
``$REPLAY_FIXTURES/FIXTURE.jsonl`` line by line on stdout and exits with EXIT. ``--version``
prints a version. The daemon builds the real adapter's argv; only the prompt matters here.
"""

import os
import sys


def main() -> int:
    if sys.argv[1:] == ["--version"]:
        print("0.0.0 (replay)")
        return 0
    prompts = [a.removeprefix("--prompt=") for a in sys.argv if a.startswith("--prompt=")]
    name, _, code = (prompts or sys.argv[-1:])[0].partition(" ")
    path = os.path.join(os.environ["REPLAY_FIXTURES"], os.path.basename(name) + ".jsonl")
    with open(path, encoding="utf-8") as recorded:
        for line in recorded:
            sys.stdout.write(line)
            sys.stdout.flush()
    return int(code or "0")


if __name__ == "__main__":
    sys.exit(main())
