"""Approval rules in Claude's syntax and the policy order (deny, granted, daemon allow ∩ task)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from host_daemon._rules import Policy, Rule, Verdict, parse_rule, rule_errors

CWD = "/work/project"


def decide(
    policy: Policy,
    tool: str,
    tool_input: dict[str, Any],
    *,
    task_allow: list[str] | None = None,
    task_deny: tuple[str, ...] = (),
    granted: tuple[str, ...] = (),
) -> Verdict | None:
    return policy.decide(
        tool, tool_input, CWD, task_allow=task_allow, task_deny=task_deny, granted=granted
    )


def allows(rule: str, tool: str, tool_input: dict[str, Any]) -> bool:
    """Whether a daemon allow rule alone auto-allows this use."""
    verdict = decide(Policy(allow=(parse_rule(rule),)), tool, tool_input)
    return verdict is not None and verdict.behavior == "allow"


def denies(rule: str, tool: str, tool_input: dict[str, Any]) -> bool:
    """Whether a daemon deny rule alone denies this use."""
    verdict = decide(Policy(deny=(parse_rule(rule),)), tool, tool_input)
    return verdict is not None and verdict.behavior == "deny"


def bash(command: str) -> dict[str, Any]:
    return {"command": command}


def path(file_path: str) -> dict[str, Any]:
    return {"file_path": file_path}


# -- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Bash", Rule("Bash", None)),
        ("Bash(*)", Rule("Bash", None)),
        ("Bash(pytest:*)", Rule("Bash", "pytest:*")),
        ("Bash(npm run test)", Rule("Bash", "npm run test")),
        ("  Edit(src/**)  ", Rule("Edit", "src/**")),
        ("Read(./src/**)", Rule("Read", "./src/**")),
        ("WebFetch(domain:example.com)", Rule("WebFetch", "domain:example.com")),
        ("mcp__github__create_issue", Rule("mcp__github__create_issue", None)),
        ("Bash(echo (a))", Rule("Bash", "echo (a)")),
    ],
)
def test_parse_rule_reads_claude_syntax(text: str, rule: Rule) -> None:
    """Tool, Tool(*) and Tool(specifier) parse; the text form round-trips."""
    assert parse_rule(text) == rule
    assert parse_rule(str(rule)) == rule


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "starting with a tool name, got ''"),
        ("(x)", "starting with a tool name"),
        ("Bash(", "expected a rule ending in ')', got 'Bash('"),
        ("Bash(ls", "ending in ')'"),
        ("Bash()", "expected a specifier inside the parentheses"),
        ("Bash(a:*b)", "expected ':*' only at the end"),
        ("Ba sh", "starting with a tool name"),
    ],
)
def test_parse_rule_refuses_with_a_clear_message(text: str, message: str) -> None:
    """A malformed rule raises ValueError saying what was expected and what came."""
    with pytest.raises(ValueError, match="expected") as caught:
        parse_rule(text)
    assert message in str(caught.value)


def test_parse_rule_refuses_a_non_string() -> None:
    """A rule that is not a string (from a TOML file, say) is refused, not crashed on."""
    with pytest.raises(ValueError, match=r"expected a rule string.*got int"):
        parse_rule(3)  # type: ignore[arg-type]


def test_rule_errors_name_where() -> None:
    """rule_errors lists each bad rule with its place in the request."""
    errors = rule_errors(["Bash", "Bash(", "Edit()"], "$.allow_rules")
    assert len(errors) == 2
    assert errors[0].endswith("@ $.allow_rules[1]")
    assert errors[1].endswith("@ $.allow_rules[2]")


# -- Bash -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [("pytest", True), ("pytest -q tests", True), ("  pytest -q  ", True), ("pytestx", False)],
)
def test_bash_prefix_rule_needs_a_word_boundary(command: str, expected: bool) -> None:
    """Bash(pytest:*) takes pytest alone or followed by a space, not pytestx."""
    assert allows("Bash(pytest:*)", "Bash", bash(command)) is expected


@pytest.mark.parametrize(
    ("command", "expected"), [("npm test", True), ("npm test -- -x", False), ("npm", False)]
)
def test_bash_exact_rule(command: str, expected: bool) -> None:
    """Bash(npm test) takes exactly that command."""
    assert allows("Bash(npm test)", "Bash", bash(command)) is expected


@pytest.mark.parametrize(
    ("rule", "command", "expected"),
    [
        ("Bash(git * main)", "git push origin main", True),
        ("Bash(git * main)", "git push origin dev", False),
        ("Bash(ls *)", "ls -la", True),
        ("Bash(ls *)", "ls", True),
        ("Bash(ls *)", "lsof", False),
        ("Bash(ls*)", "lsof", True),
    ],
)
def test_bash_wildcard_rule(rule: str, command: str, expected: bool) -> None:
    """``*`` matches any text; a lone trailing `` *`` keeps the word boundary and is optional."""
    assert allows(rule, "Bash", bash(command)) is expected


@pytest.mark.parametrize(
    "command",
    [
        "pytest; rm -rf /",
        "pytest && curl evil",
        "pytest || true",
        "pytest | sh",
        "pytest\nrm -rf /",
        "pytest $(rm -rf /)",
        "pytest `rm -rf /`",
        "pytest & rm -rf /",
        "pytest <(cat /etc/shadow)",
        "pytest > ~/.bashrc",
        "pytest >> notes",
    ],
)
def test_compound_commands_never_match_allow_rules(command: str) -> None:
    """A compound, substituted or file-redirected command is asked, whatever the allow rule."""
    for rule in ("Bash(pytest:*)", "Bash(pytest *)", "Bash(*pytest*)", f"Bash({command})"):
        assert not allows(rule, "Bash", bash(command)), rule


@pytest.mark.parametrize("command", ["pytest 2>&1", "pytest -q > /dev/null", "pytest 2>/dev/null"])
def test_redirections_that_write_no_file_still_match(command: str) -> None:
    """Descriptor duplication and /dev/null do not make a command compound."""
    assert allows("Bash(pytest:*)", "Bash", bash(command))


def test_bare_bash_allow_rule_takes_anything() -> None:
    """Bash (any use) allows even a compound command: the owner said any."""
    assert allows("Bash", "Bash", bash("pytest && rm -rf build"))


@pytest.mark.parametrize(
    "command",
    ["rm -rf build", "pytest && rm -rf build", "ls | rm x", "echo $(rm x)", "FOO=1 rm x", "rm"],
)
def test_deny_rule_sees_each_part_of_a_compound_command(command: str) -> None:
    """Bash(rm:*) as a deny rule catches rm anywhere in a compound command."""
    assert denies("Bash(rm:*)", "Bash", bash(command))


def test_deny_rule_leaves_other_commands() -> None:
    """A deny rule does not catch a command that only contains the word."""
    assert not denies("Bash(rm:*)", "Bash", bash("echo rm"))
    assert not denies("Bash(rm:*)", "Bash", bash("rmdir x"))


def test_bash_rule_without_a_command_does_not_match() -> None:
    """A Bash use without a string command matches no specifier rule."""
    assert not allows("Bash(ls:*)", "Bash", {})
    assert not denies("Bash(ls:*)", "Bash", {"command": ["ls"]})


# -- paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "file_path", "expected"),
    [
        ("Edit(src/**)", "src/a.py", True),
        ("Edit(src/**)", f"{CWD}/src/pkg/a.py", True),
        ("Edit(src/**)", "tests/a.py", False),
        ("Edit(src/**)", f"{CWD}x/src/a.py", False),
        ("Edit(./src/**)", "src/a.py", True),
        ("Edit(/src/**)", f"{CWD}/src/a.py", True),
        ("Edit(/src/**)", "/src/a.py", False),
        ("Edit(//etc/**)", "/etc/hosts", True),
        ("Edit(//etc/**)", f"{CWD}/etc/hosts", False),
        ("Edit(*.py)", f"{CWD}/deep/down/a.py", True),
        ("Edit(*.py)", f"{CWD}/a.pyc", False),
        ("Edit(src/*.py)", "src/a.py", True),
        ("Edit(src/*.py)", "src/pkg/a.py", False),
        ("Edit(src/**/*.py)", "src/a.py", True),
        ("Edit(src/**/*.py)", "src/x/y/a.py", True),
        ("Edit(docs)", "docs/a/b.md", True),
        ("Edit(docs/)", "docs/a.md", True),
        ("Edit(a?.txt)", "ab.txt", True),
        ("Edit(a?.txt)", "a/.txt", False),
        ("Edit([ab].txt)", "b.txt", True),
        ("Edit([!ab].txt)", "b.txt", False),
        ("Edit(**)", "/elsewhere/a.py", False),
    ],
)
def test_path_rules_are_gitignore_globs(rule: str, file_path: str, expected: bool) -> None:
    """Path rules match file_path as gitignore patterns relative to the run's directory."""
    assert allows(rule, "Edit", path(file_path)) is expected


def test_home_rule_is_under_the_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read(~/notes/**) is relative to the home directory."""
    monkeypatch.setenv("HOME", "/home/someone")
    assert allows("Read(~/notes/**)", "Read", path("/home/someone/notes/a"))
    assert not allows("Read(~/notes/**)", "Read", path(f"{CWD}/notes/a"))
    assert os.path.expanduser("~") == "/home/someone"


@pytest.mark.parametrize(
    "file_path",
    ["../other/src/a.py", "src/../../other/a.py", "src/../a.py", f"{CWD}/src/../../x/src/a.py"],
)
def test_dotdot_paths_never_match_allow_rules(file_path: str) -> None:
    """A path with a .. component is asked, even when it normalizes inside the rule."""
    assert not allows("Edit(src/**)", "Edit", path(file_path))
    assert not allows("Edit(**)", "Edit", path(file_path))
    assert not allows("Edit(//**)", "Edit", path(file_path))


def test_dotdot_path_is_still_denied() -> None:
    """A deny rule matches the normalized path, .. or not."""
    assert denies("Edit(secrets/**)", "Write", path("src/../secrets/key"))
    assert denies("Edit(//etc/**)", "Edit", path("../../../../../etc/passwd"))


@pytest.mark.parametrize("tool", ["Edit", "Write", "MultiEdit"])
def test_edit_rules_cover_every_edit_tool(tool: str) -> None:
    """Edit(...) covers Write and MultiEdit (and NotebookEdit's notebook_path)."""
    assert allows("Edit(src/**)", tool, path("src/a.py"))
    assert allows("Edit(src/**)", "NotebookEdit", {"notebook_path": "src/a.ipynb"})


def test_write_rule_does_not_cover_edit() -> None:
    """Write(...) is about Write only."""
    assert not allows("Write(src/**)", "Edit", path("src/a.py"))
    assert allows("Write(src/**)", "Write", path("src/a.py"))


def test_read_rules_cover_the_search_tools() -> None:
    """Read(...) is applied to Grep/Glob on their path (the run's directory when none)."""
    assert allows("Read(src/**)", "Grep", {"pattern": "x", "path": "src/pkg"})
    assert not allows("Read(src/**)", "Grep", {"pattern": "x"})
    assert allows("Read", "Glob", {"pattern": "*"})


def test_path_rule_without_a_path_does_not_match() -> None:
    """An Edit use with no file_path matches no specifier rule (it is asked)."""
    assert not allows("Edit(**)", "Edit", {})
    assert not denies("Edit(**)", "Write", {"content": "x"})


def patch(*paths: str) -> dict[str, Any]:
    """An edit of several files, as Codex asks it (``file_path`` is the first of them)."""
    return {"file_path": paths[0], "file_paths": list(paths)}


def test_edit_of_several_files_is_allowed_only_if_every_path_matches() -> None:
    """A patch touching a file outside the allow rule is asked, even if its first path fits."""
    assert allows("Edit(src/**)", "Edit", patch("src/a.py", "src/b/c.py"))
    assert not allows("Edit(src/**)", "Edit", patch("src/a.py", "/etc/passwd"))
    assert not allows("Edit(src/**)", "Edit", patch("src/a.py", "src/../../x"))
    assert not allows("Edit(src/**)", "Edit", {"file_path": "src/a.py", "file_paths": "src/b"})
    assert not allows("Edit(src/**)", "Edit", {"file_path": "src/a.py", "file_paths": [3]})


def test_edit_of_several_files_is_denied_if_any_path_matches() -> None:
    """A deny rule on one file of a patch denies the whole patch, wherever that file is."""
    assert denies("Edit(secrets/**)", "Edit", patch("src/a.py", "secrets/key"))
    assert denies("Edit(//etc/**)", "Edit", patch("src/a.py", "src/b.py", "/etc/hosts"))
    assert not denies("Edit(secrets/**)", "Edit", patch("src/a.py", "src/b.py"))


def test_other_tools_match_by_name() -> None:
    """A rule for another tool matches that tool only; a bare rule any use of it."""
    assert allows("WebSearch", "WebSearch", {"query": "x"})
    assert not allows("WebSearch", "Bash", bash("ls"))
    assert not allows("Bash", "WebSearch", {"query": "x"})


def test_webfetch_domain_rule() -> None:
    """WebFetch(domain:example.com) matches that host and its subdomains only."""
    assert allows("WebFetch(domain:example.com)", "WebFetch", {"url": "https://example.com/a"})
    assert allows("WebFetch(domain:example.com)", "WebFetch", {"url": "http://a.example.com"})
    assert not allows(
        "WebFetch(domain:example.com)", "WebFetch", {"url": "https://evilexample.com"}
    )


def test_mcp_server_rule_covers_its_tools() -> None:
    """mcp__srv and mcp__srv__* cover every tool of server srv, not of srv2."""
    assert allows("mcp__srv", "mcp__srv__create", {})
    assert allows("mcp__srv__*", "mcp__srv__create", {})
    assert not allows("mcp__srv", "mcp__srv2__create", {})


# -- the policy order -----------------------------------------------------------------------------


def test_nothing_matches_asks() -> None:
    """No rule matching: the policy decides nothing (the client is asked)."""
    policy = Policy(allow=(parse_rule("Bash(pytest:*)"),))
    assert decide(policy, "Bash", bash("make")) is None


def test_daemon_allow_rule_allows() -> None:
    """A daemon allow rule allows and names itself."""
    policy = Policy(allow=(parse_rule("Bash(pytest:*)"),))
    assert decide(policy, "Bash", bash("pytest -q")) == Verdict("allow", "Bash(pytest:*)", None)


def test_deny_beats_allow() -> None:
    """A use matching both a daemon allow and a daemon deny rule is denied, with the rule named."""
    policy = Policy(allow=(parse_rule("Bash"),), deny=(parse_rule("Bash(rm:*)"),))
    assert decide(policy, "Bash", bash("rm -rf x")) == Verdict(
        "deny", "Bash(rm:*)", "denied by rule Bash(rm:*)"
    )


def test_task_deny_beats_granted_and_allow() -> None:
    """The task's deny rules beat the daemon's allow rules and the granted ones."""
    policy = Policy(allow=(parse_rule("Bash"),))
    verdict = decide(
        policy, "Bash", bash("git push"), task_deny=("Bash(git push:*)",), granted=("Bash",)
    )
    assert verdict == Verdict("deny", "Bash(git push:*)", "denied by rule Bash(git push:*)")


def test_daemon_deny_beats_granted() -> None:
    """A rule a person granted for the task does not lift the host owner's deny."""
    policy = Policy(deny=(parse_rule("Edit(//etc/**)"),))
    verdict = decide(policy, "Edit", path("/etc/hosts"), granted=("Edit",))
    assert verdict is not None
    assert verdict.behavior == "deny"


def test_granted_rule_allows_without_a_daemon_rule() -> None:
    """A granted rule allows though no daemon allow rule matches."""
    verdict = decide(Policy(), "Bash", bash("make test"), granted=("Bash(make test)",))
    assert verdict == Verdict("allow", "Bash(make test)", None)


def test_granted_rule_is_not_narrowed_by_task_allow() -> None:
    """The task's narrowing limits the daemon's rules, not what a person granted."""
    verdict = decide(Policy(), "Bash", bash("make"), task_allow=[], granted=("Bash(make)",))
    assert verdict is not None
    assert verdict.behavior == "allow"


def test_granted_rule_never_matches_a_compound_command() -> None:
    """A granted prefix rule does not let a compound command through."""
    assert decide(Policy(), "Bash", bash("make; rm x"), granted=("Bash(make:*)",)) is None


def test_task_allow_narrows_the_daemon_allow_rules() -> None:
    """With task allow rules, a daemon rule allows only what one of them matches too."""
    policy = Policy(allow=(parse_rule("Bash"),))
    narrowed = ["Bash(pytest:*)"]
    assert decide(policy, "Bash", bash("pytest"), task_allow=narrowed) == Verdict(
        "allow", "Bash", None
    )
    assert decide(policy, "Bash", bash("make"), task_allow=narrowed) is None


def test_task_allow_never_widens() -> None:
    """A task allow rule alone allows nothing: the daemon's rules bound it."""
    policy = Policy(allow=(parse_rule("Bash(pytest:*)"),))
    assert decide(policy, "Bash", bash("make"), task_allow=["Bash", "Bash(make)"]) is None
    assert decide(Policy(), "Edit", path("src/a"), task_allow=["Edit"]) is None


def test_empty_task_allow_allows_nothing() -> None:
    """An empty task allow list turns the daemon's allow rules off for the task."""
    policy = Policy(allow=(parse_rule("Bash"),))
    assert decide(policy, "Bash", bash("ls"), task_allow=[]) is None


def test_bad_task_rules_fail_closed() -> None:
    """An unreadable task allow or granted rule allows nothing; an unreadable deny rule denies."""
    policy = Policy(allow=(parse_rule("Bash"),))
    assert decide(policy, "Bash", bash("ls"), task_allow=["Bash("]) is None
    assert decide(Policy(), "Bash", bash("ls"), granted=("Bash(",)) is None
    verdict = decide(policy, "Bash", bash("ls"), task_deny=("Edit(",))
    assert verdict is not None
    assert verdict.behavior == "deny"
    assert verdict.message is not None
    assert "'Edit('" in verdict.message


def test_from_texts_parses_or_raises() -> None:
    """Policy.from_texts parses the daemon's rules and raises on a bad one."""
    policy = Policy.from_texts(["Bash(pytest:*)"], ["Edit(//etc/**)"])
    assert policy == Policy((Rule("Bash", "pytest:*"),), (Rule("Edit", "//etc/**"),))
    with pytest.raises(ValueError, match="Bash\\("):
        Policy.from_texts(["Bash("], [])
