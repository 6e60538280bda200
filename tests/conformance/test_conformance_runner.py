"""The conformance runner's verdict, judged on output the real harness printed.

The files under ``fixtures/`` are captured runs of the pinned harness (see its README): passing
runs against ``server.py``, runs against copies of it broken on purpose, and the crash of the
harness under a Node that is too old. ``main()`` is driven end to end with a stand-in ``node``
on PATH that replays one of them with the exit code the real harness had.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conformance.run import HARNESS_PACKAGE, SUITES, Tally, main, suite_failure, tally

FIXTURES = Path(__file__).parent / "fixtures"


def captured(name: str) -> str:
    """The text of one captured harness run."""
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_tally_of_a_real_passing_legacy_run() -> None:
    """The 0.1.16 output of a clean run counts its 39 checks, all scored, none failing."""
    assert tally(captured("legacy-pass.log")) == Tally(39, 0, 0, 0, ())


def test_tally_of_a_real_passing_modern_run_splits_off_unscored_checks() -> None:
    """The 2026-07-28 run's extension and pending scenarios go to the unscored counts."""
    assert tally(captured("2026-07-28-pass.log")) == Tally(120, 0, 76, 0, ())


def test_tally_of_a_real_legacy_failure_names_the_scenario() -> None:
    """A failing scenario in 0.1.16 output is counted and named."""
    result = tally(captured("legacy-scored-failure.log"))
    assert result == Tally(38, 1, 0, 0, ("tools-call-simple-text",))


def test_tally_of_a_real_modern_scored_failure_counts_it_as_scored() -> None:
    """A failing scored scenario in 2026-07-28 output counts as a scored failure."""
    result = tally(captured("2026-07-28-scored-failure.log"))
    assert result == Tally(119, 1, 76, 0, ("tools-call-simple-text",))


def test_tally_of_a_real_unscored_failure_keeps_it_out_of_the_scored_counts() -> None:
    """A failing pending scenario is counted as unscored and not named as failing."""
    assert tally(captured("2026-07-28-unscored-failure.log")) == Tally(120, 0, 70, 6, ())


def test_tally_of_a_real_harness_crash_finds_nothing() -> None:
    """The harness crashing at import (Node 20) prints no scenario line at all."""
    assert tally(captured("node20-crash.log")) == Tally(0, 0, 0, 0, ())


def test_clean_run_with_exit_zero_passes() -> None:
    """Results printed, no scored failure, exit 0: the suite passes."""
    assert suite_failure(0, tally(captured("2026-07-28-pass.log"))) is None


def test_unscored_failures_alone_do_not_fail_the_suite() -> None:
    """The real harness exits 0 when only unscored scenarios fail; so does the verdict."""
    assert suite_failure(0, tally(captured("2026-07-28-unscored-failure.log"))) is None


def test_scored_failures_fail_the_suite_even_with_exit_zero() -> None:
    """A tallied scored failure fails the suite whatever the harness's exit code."""
    failure = suite_failure(0, tally(captured("2026-07-28-scored-failure.log")))
    assert failure == "1 scored check(s) failed (exit 0)"


def test_nonzero_exit_fails_a_suite_whose_checks_all_passed() -> None:
    """The harness's own non-zero exit (e.g. a stale baseline) fails the suite."""
    failure = suite_failure(1, tally(captured("legacy-pass.log")))
    assert failure == "the harness exited 1"


def test_a_harness_that_printed_nothing_fails_even_with_exit_zero() -> None:
    """No scenario results (empty output, exit 0) is a failure, never a vacuous pass."""
    assert suite_failure(0, tally("")) == "the harness printed no scenario results (exit 0)"


def test_a_crashed_harness_fails_the_suite() -> None:
    """The real Node 20 crash output with its exit 1 fails the suite."""
    failure = suite_failure(1, tally(captured("node20-crash.log")))
    assert failure == "the harness printed no scenario results (exit 1)"


FAKE_NODE = """\
#!{python}
# Stands in for node: reports major 22, else replays the captured run planned for the suite
# (named by the results directory the runner passes with -o) with the harness's exit code.
import json
import os
import sys

if sys.argv[1:2] == ["-p"]:
    print(22)
    sys.exit(0)
suite = os.path.basename(sys.argv[sys.argv.index("-o") + 1]).removesuffix("-results")
path, code = json.loads(os.environ["FAKE_HARNESS_PLAN"])[suite]
with open(path, encoding="utf-8") as captured:
    sys.stdout.write(captured.read())
sys.exit(code)
"""

Plan = Callable[[dict[str, tuple[Path, int]]], None]


@pytest.fixture
def replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plan:
    """A stand-in node first on PATH, every pinned harness 'installed' in a private cache.

    Call the result with ``{suite: (captured output, exit code)}`` to say what each suite's
    harness run prints and how it exits.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    node = bin_dir / "node"
    node.write_text(FAKE_NODE.format(python=sys.executable), encoding="utf-8")
    node.chmod(node.stat().st_mode | stat.S_IXUSR)
    cache = tmp_path / "cache"
    for version in {suite.version for suite in SUITES}:
        entry = cache / "coding-agent-conformance" / f"conformance-{version}" / "node_modules"
        entry = entry / HARNESS_PACKAGE / "dist" / "index.js"
        entry.parent.mkdir(parents=True)
        entry.write_text("", encoding="utf-8")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))

    def plan(runs: dict[str, tuple[Path, int]]) -> None:
        encoded = {suite: (str(path), code) for suite, (path, code) in runs.items()}
        monkeypatch.setenv("FAKE_HARNESS_PLAN", json.dumps(encoded))

    return plan


def run_main(*suites: str) -> int:
    """main() against a URL (so no server starts) for the named suites."""
    argv = ["--url", "http://localhost:9/mcp"]
    for suite in suites:
        argv += ["--only", suite]
    return main(argv)


@pytest.mark.parametrize(
    ("fixture", "suite", "harness_exit", "expected"),
    [
        ("legacy-pass.log", "legacy", 0, 0),
        ("2026-07-28-pass.log", "2026-07-28", 0, 0),
        ("2026-07-28-unscored-failure.log", "2026-07-28", 0, 0),
        ("legacy-scored-failure.log", "legacy", 1, 1),
        ("2026-07-28-scored-failure.log", "2026-07-28", 1, 1),
        ("node20-crash.log", "2026-07-28", 1, 1),
        ("legacy-pass.log", "legacy", 1, 1),
    ],
)
def test_main_exit_code_follows_the_verdict(
    replay: Plan, fixture: str, suite: str, harness_exit: int, expected: int
) -> None:
    """main() exits 0 only when the (replayed) harness run is clean."""
    replay({suite: (FIXTURES / fixture, harness_exit)})
    assert run_main(suite) == expected


def test_main_fails_when_the_harness_printed_nothing(replay: Plan, tmp_path: Path) -> None:
    """A harness that exits 0 having printed nothing makes main() exit 1."""
    empty = tmp_path / "empty.log"
    empty.write_text("", encoding="utf-8")
    replay({"legacy": (empty, 0)})
    assert run_main("legacy") == 1


@pytest.mark.parametrize("failing", ["legacy", "legacy-all"])
def test_main_fails_when_one_of_several_suites_fails(
    replay: Plan, capsys: pytest.CaptureFixture[str], failing: str
) -> None:
    """One failing suite, first or last, fails main() and every suite still gets its line."""
    runs = {
        "legacy": (FIXTURES / "legacy-pass.log", 0),
        "legacy-all": (FIXTURES / "legacy-pass.log", 0),
    }
    runs[failing] = (FIXTURES / "legacy-scored-failure.log", 1)
    replay(runs)
    assert run_main("legacy", "legacy-all") == 1
    lines = {
        "legacy": "conformance[legacy]: 39 passed, 0 failed",
        "legacy-all": "conformance[legacy-all]: 39 passed, 0 failed",
    }
    lines[failing] = f"conformance[{failing}]: 38 passed, 1 failed"
    assert capsys.readouterr().out.splitlines() == [lines["legacy"], lines["legacy-all"]]
