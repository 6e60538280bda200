"""The mutation check's own logic, on a tiny project of its own, and its list on this one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mutants.run import MUTANTS, REPO_ROOT, Mutant, main, stale_reason

ADDER = "def add(a, b):\n    return a + b\n\n\ndef unused():\n    return 1\n"
ADDER_TEST = (
    'from adder import add\n\n\ndef test_add():\n    """1 + 2 is 3."""\n    assert add(1, 2) == 3\n'
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A one-module project whose single test checks ``add``, not ``unused``."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "adder.py").write_text(ADDER, encoding="utf-8")
    (root / "test_adder.py").write_text(ADDER_TEST, encoding="utf-8")
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    return root


def mutant(name: str, original: str, replacement: str) -> Mutant:
    """A mutant of the tiny project's ``adder.py`` checked by its one test."""
    return Mutant(name, f"{name} is noticed", "adder.py", original, replacement, ("test_adder.py",))


def results(out: str) -> dict[str, str]:
    """The report's table as ``{mutant: result}``."""
    table = {}
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 4:
            table[cells[0]] = cells[2]
    return table


SUBTRACTS = mutant("subtracts", "return a + b", "return a - b")
UNUSED = mutant("unused-changes", "return 1", "return 2")


def test_a_mutant_the_tests_catch_is_killed(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Breaking what the test checks makes the test fail: killed, and the check passes."""
    assert main([], [SUBTRACTS], project) == 0
    out = capsys.readouterr().out
    assert results(out) == {"mutant": "result", "baseline": "passed", "subtracts": "killed"}
    killed_row = next(line for line in out.splitlines() if line.startswith("subtracts "))
    assert killed_row.endswith("  test_adder.py::test_add")


def test_a_mutant_the_tests_miss_survives_and_fails_the_check(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Breaking what no test checks leaves the tests green: survived, and the check fails."""
    assert main([], [SUBTRACTS, UNUSED], project) == 1
    out = capsys.readouterr().out
    assert results(out)["unused-changes"] == "survived"
    assert "mutants: 1 of 2 killed, baseline passed" in out


def test_a_snippet_no_longer_in_the_file_is_stale(project: Path) -> None:
    """An original snippet that is gone is reported, not silently skipped."""
    gone = mutant("gone", "return a * b", "return 0")
    assert stale_reason(gone, project) == (
        "expected the original snippet once in adder.py, found it 0 times"
    )


def test_a_snippet_found_twice_is_stale(project: Path) -> None:
    """An ambiguous original snippet is reported: which occurrence is meant is unknowable."""
    twice = mutant("twice", "    return ", "    return -")
    assert stale_reason(twice, project) == (
        "expected the original snippet once in adder.py, found it 2 times"
    )


def test_a_stale_mutant_fails_the_check(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A stale mutant fails the whole check even when every other mutant is killed."""
    gone = mutant("gone", "return a * b", "return 0")
    assert main([], [SUBTRACTS, gone], project) == 1
    assert results(capsys.readouterr().out)["gone"] == "stale"


def test_a_failing_baseline_fails_the_check(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the unmutated tests already fail, no kill counts: the check fails."""
    (project / "adder.py").write_text(ADDER.replace("a + b", "a + b + 1"), encoding="utf-8")
    assert main([], [SUBTRACTS], project) == 1
    assert results(capsys.readouterr().out)["baseline"] == "error"


def test_the_working_tree_is_never_mutated(project: Path) -> None:
    """Mutants are applied to a copy: the project's files are unchanged afterwards."""
    main([], [SUBTRACTS, UNUSED], project)
    assert (project / "adder.py").read_text(encoding="utf-8") == ADDER


HANGS = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open({pid_file!r}, "w").write(f"{{child.pid}}\\n")
time.sleep(600)
return a + b"""


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return text[text.rindex(")") + 2] not in "ZX"


def test_a_hanging_run_is_an_error_and_leaves_nothing_running(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mutant that hangs its tests times out as an error; what its tests started is ended."""
    pid_file = tmp_path / "child.pid"
    body = HANGS.format(pid_file=str(pid_file)).replace("\n", "\n    ")
    assert main(["--timeout", "10"], [mutant("hangs", "return a + b", body)], project) == 1
    out = capsys.readouterr().out
    assert results(out)["hangs"] == "error"
    assert "timed out after 10.0s" in out
    assert pid_file.read_text(encoding="utf-8").endswith("\n"), "the child never started"
    assert not running(int(pid_file.read_text(encoding="utf-8")))


@pytest.mark.parametrize("listed", MUTANTS, ids=[listed.name for listed in MUTANTS])
def test_every_listed_mutant_applies_to_this_repository(listed: Mutant) -> None:
    """Each mutant's original snippet is in its file exactly once, and its tests exist."""
    assert stale_reason(listed, REPO_ROOT) is None
    for test in listed.tests:
        path, _, function = test.partition("::")
        source = (REPO_ROOT / path).read_text(encoding="utf-8")
        assert not function or f"def {function}(" in source, f"{function} is not in {path}"
