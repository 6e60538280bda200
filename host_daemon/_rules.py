"""Approval rules in Claude Code's syntax, and the policy that applies them (sans-IO).

A live agent's permission request (normalized: ``Bash`` with ``command``, ``Edit``/``Write``/
``Read`` with ``file_path``) is decided at once when a rule says so, else asked of the client:

1. a deny rule (the daemon's ``--deny-rule`` or the task's) matches → deny;
2. a rule granted for the task or remembered in the session matches → allow;
3. a daemon ``--allow-rule`` matches and the task's narrowing (if any) matches too → allow;
4. else nobody decided: ask.

Rule syntax (as Claude's, see docs/daemon.md "Approvals policy"): ``Tool`` or ``Tool(*)`` (any
use), ``Bash(npm test)`` (that exact command), ``Bash(pytest:*)`` (``pytest`` then the end or a
space), ``Bash(git * main)`` (``*`` any text), ``Edit(src/**)``/``Read(./src/**)``/
``Write(//abs/**)``/``Read(~/x)`` (gitignore-style globs on the file path; relative and ``/x``
to the run's directory, ``//x`` absolute, ``~/x`` the home), ``WebFetch(domain:host)``.

Safety beyond Claude's own matching, all towards asking: a compound or substituted command never
matches an allow rule but a deny rule sees each part; a path with a ``..`` component never matches
a path allow rule; an output redirection to a file never matches a Bash allow rule. An edit of
several files (``file_paths``, as Codex asks for a patch) is allowed by a path rule only if every
path matches, and denied if any does.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ._records import ApprovalBehavior

_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*(?:\*)?")
#: Tools whose specifier is a path glob, and the input keys that hold their path.
_PATH_TOOLS = frozenset(
    {"Edit", "Write", "MultiEdit", "NotebookEdit", "Read", "Grep", "Glob", "LS"}
)
_PATH_KEYS = ("file_path", "notebook_path", "path")
#: A rule for the first tool also covers these (Claude: ``Edit`` rules cover every edit tool,
#: ``Read`` rules are applied to the tools that read).
_COVERS = {
    "Edit": frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"}),
    "Read": frozenset({"Read", "Grep", "Glob", "LS"}),
}
#: What makes a shell command more than one simple command (or runs another one inside it).
_COMPOUND = re.compile(r";|&|\||\n|\r|`|\$\(|<\(|>\(")
#: Redirections that write no file: duplicating a descriptor (``2>&1``) or into /dev/null.
_HARMLESS_REDIRECT = re.compile(r"[0-9]*[<>]&[0-9-]|[0-9]*>>?\s*/dev/null(?=\s|$)")
#: Where a compound command is cut into the parts deny rules look at.
_SEPARATORS = re.compile(r"&&|\|\||;|&|\||\n|\r|`|\$\(|<\(|>\(|\(|\)")
#: ``NAME=value`` assignments before a command (a deny rule looks past them).
_ASSIGNMENTS = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)+")


@attrs.frozen
class Rule:
    """One parsed rule: the tool name and what it is narrowed to (None: any use)."""

    tool: str
    specifier: str | None

    def __str__(self) -> str:
        return self.tool if self.specifier is None else f"{self.tool}({self.specifier})"


def parse_rule(text: str) -> Rule:
    """``Tool`` or ``Tool(specifier)``; ``ValueError`` saying what was expected and what came."""
    if not isinstance(text, str):
        # ValueError, not TypeError: one error type for every bad rule, wherever it came from.
        raise ValueError(  # noqa: TRY004
            f"expected a rule string like Bash(pytest:*), got {type(text).__name__}"
        )
    stripped = text.strip()
    name, paren, rest = stripped.partition("(")
    if not _TOOL_NAME.fullmatch(name):
        raise ValueError(
            f"expected a rule Tool or Tool(specifier) starting with a tool name, got {text!r}"
        )
    if not paren:
        return Rule(name, None)
    if not rest.endswith(")"):
        raise ValueError(f"expected a rule ending in ')', got {text!r}")
    specifier = rest[:-1].strip()
    if not specifier:
        raise ValueError(f"expected a specifier inside the parentheses, got {text!r}")
    if specifier == "*":
        return Rule(name, None)
    if specifier.find(":*") not in (-1, len(specifier) - 2):
        raise ValueError(f"expected ':*' only at the end of the specifier, got {text!r}")
    if name in _PATH_TOOLS and "\0" in specifier:
        raise ValueError(f"expected a path pattern, got a NUL byte in {text!r}")
    return Rule(name, specifier)


def rule_errors(rules: Iterable[object], where: str) -> list[str]:
    """Every rule that does not parse, as ``message @ where[i]`` (for validating a request)."""
    errors = []
    for index, text in enumerate(rules):
        try:
            parse_rule(text)  # type: ignore[arg-type]  # validating what came off the wire
        except ValueError as exc:
            errors.append(f"{exc} @ {where}[{index}]")
    return errors


@attrs.frozen
class Verdict:
    """The policy decided: ``behavior``, by which ``rule``, with the model's ``message``."""

    behavior: ApprovalBehavior
    rule: str
    message: str | None


@attrs.frozen
class Policy:
    """The daemon's rules (``--allow-rule``/``--deny-rule``/``--policy-file``), parsed."""

    allow: tuple[Rule, ...] = ()
    deny: tuple[Rule, ...] = ()

    @classmethod
    def from_texts(cls, allow: Iterable[str], deny: Iterable[str]) -> Policy:
        """Parse the daemon's rules (``ValueError`` on the first bad one)."""
        return cls(tuple(parse_rule(t) for t in allow), tuple(parse_rule(t) for t in deny))

    def decide(
        self,
        tool_name: str,
        tool_input: dict[str, Any],
        cwd: str,
        *,
        task_allow: Sequence[str] | None,
        task_deny: Sequence[str],
        granted: Sequence[str],
    ) -> Verdict | None:
        """Deny, allow, or None (ask the client); see the module docstring for the order.

        A task rule that does not parse never allows; a task deny rule that does not parse
        denies everything (it meant to deny something, and what cannot be told).
        """
        use = _Use(tool_name, tool_input, cwd)
        for rule in self.deny:
            if use.matches(rule, deny=True):
                return _denied(str(rule))
        for text in task_deny:
            rule_or_none = _parsed(text)
            if rule_or_none is None:
                return Verdict("deny", str(text), f"denied: the task's deny rule {text!r} is bad")
            if use.matches(rule_or_none, deny=True):
                return _denied(str(rule_or_none))
        for text in granted:
            rule_or_none = _parsed(text)
            if rule_or_none is not None and use.matches(rule_or_none, deny=False):
                return Verdict("allow", str(rule_or_none), None)
        for rule in self.allow:
            if not use.matches(rule, deny=False):
                continue
            if task_allow is None or any(
                (narrow := _parsed(text)) is not None and use.matches(narrow, deny=False)
                for text in task_allow
            ):
                return Verdict("allow", str(rule), None)
        return None


def _denied(rule: str) -> Verdict:
    return Verdict("deny", rule, f"denied by rule {rule}")


def _parsed(text: object) -> Rule | None:
    try:
        return parse_rule(text)  # type: ignore[arg-type]  # task rules come off the wire
    except ValueError:
        return None


@attrs.frozen
class _Use:
    """One tool use, as the rules see it."""

    tool_name: str
    tool_input: dict[str, Any]
    cwd: str

    def matches(self, rule: Rule, *, deny: bool) -> bool:
        if not _tool_matches(rule.tool, self.tool_name):
            return False
        if rule.specifier is None:
            return True
        if rule.tool == "Bash":
            command = self.tool_input.get("command")
            return isinstance(command, str) and _command_matches(rule.specifier, command, deny)
        if rule.tool in _PATH_TOOLS:
            return self._path_matches(rule.specifier, deny=deny)
        if rule.specifier.startswith("domain:"):
            return _domain_matches(rule.specifier.removeprefix("domain:"), self.tool_input)
        return False

    def _path_matches(self, pattern: str, *, deny: bool) -> bool:
        """A deny rule matches if any of the use's paths does, an allow rule only if all do."""
        paths = self._paths()
        if not paths:
            return False
        found = [
            isinstance(raw, str) and bool(raw) and self._one_path_matches(pattern, raw, deny=deny)
            for raw in paths
        ]
        return any(found) if deny else all(found)

    def _paths(self) -> list[object]:
        """Every path the use touches: ``file_paths`` (an edit of several files, as Codex's
        patches) and the one of ``file_path``/``notebook_path``/``path``."""
        many = self.tool_input.get("file_paths", [])
        # Not a list: what it names cannot be told, so no allow rule can match it all.
        paths: list[object] = list(many) if isinstance(many, list) else [None]
        one = next(
            (v for k in _PATH_KEYS if isinstance(v := self.tool_input.get(k), str) and v), None
        )
        if one is None and not paths and self.tool_name in {"Grep", "Glob", "LS"}:
            one = "."  # they search the working directory when no path is given
        if one is not None and one not in paths:
            paths.append(one)
        return paths

    def _one_path_matches(self, pattern: str, raw: str, *, deny: bool) -> bool:
        if not deny and ".." in raw.replace("\\", "/").split("/"):
            return False
        path = posixpath.normpath(posixpath.join(self.cwd, raw))
        return _glob_matches(pattern, path, self.cwd)


def _tool_matches(rule_tool: str, tool_name: str) -> bool:
    if rule_tool == tool_name:
        return True
    if tool_name in _COVERS.get(rule_tool, ()):
        return True
    if rule_tool.startswith("mcp__"):
        # ``mcp__server`` and ``mcp__server__*`` cover every tool of that server.
        server = rule_tool.removesuffix("__*").removesuffix("*")
        return tool_name.startswith(server.rstrip("_") + "__")
    return False


def _command_matches(specifier: str, command: str, deny: bool) -> bool:
    command = command.strip()
    if not deny:
        rest = _HARMLESS_REDIRECT.sub(" ", command)
        if _COMPOUND.search(rest) or ">" in rest:
            return False
        return _simple_command_matches(specifier, command)
    parts = [command, *(part.strip() for part in _SEPARATORS.split(command))]
    parts += [_ASSIGNMENTS.sub("", part, count=1) for part in parts]
    return any(part and _simple_command_matches(specifier, part) for part in parts)


def _simple_command_matches(specifier: str, command: str) -> bool:
    if specifier.endswith(":*"):
        prefix = specifier[:-2]
        return command == prefix or command.startswith(prefix + " ")
    if "*" in specifier:
        return _wildcard(specifier).fullmatch(command) is not None
    return command == specifier


@functools.lru_cache(maxsize=256)
def _wildcard(specifier: str) -> re.Pattern[str]:
    """``*`` is any text; a lone trailing `` *`` may also match nothing (``ls *`` takes ``ls``)."""
    if specifier.endswith(" *") and specifier.count("*") == 1:
        return re.compile(re.escape(specifier[:-2]) + r"(?: .*)?", re.DOTALL)
    return re.compile(".*".join(re.escape(piece) for piece in specifier.split("*")), re.DOTALL)


def _domain_matches(domain: str, tool_input: dict[str, Any]) -> bool:
    url = tool_input.get("url")
    if not isinstance(url, str):
        return False
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    domain = domain.lower()
    return host == domain or host.endswith("." + domain)


def _glob_matches(pattern: str, path: str, cwd: str) -> bool:
    """Gitignore-style: ``pattern`` against the normalized absolute ``path``."""
    if pattern.startswith("//"):
        base, pattern, anchored = "/", pattern[2:], True
    elif pattern.startswith("~/"):
        base, pattern, anchored = os.path.expanduser("~"), pattern[2:], True
    elif pattern.startswith("/"):
        base, pattern, anchored = cwd, pattern[1:], True
    else:
        pattern = pattern.removeprefix("./")
        base = cwd
        anchored = "/" in pattern.rstrip("/")
    base = posixpath.normpath(base)
    if pattern.endswith("/"):
        pattern += "**"
    if base != "/" and not (path == base or path.startswith(base + "/")):
        return False
    relative = posixpath.relpath(path, base) if path != base else "."
    if relative == ".":
        return False
    regex = _gitignore_regex(pattern, anchored)
    # A pattern naming a directory covers everything under it, as in gitignore.
    parts = relative.split("/")
    return any(regex.fullmatch("/".join(parts[:end])) for end in range(1, len(parts) + 1))


@functools.lru_cache(maxsize=256)
def _gitignore_regex(pattern: str, anchored: bool) -> re.Pattern[str]:
    out = [] if anchored else ["(?:.*/)?"]
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        elif pattern[index] == "[" and (close := pattern.find("]", index + 2)) != -1:
            body = pattern[index + 1 : close]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            index = close + 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out), re.DOTALL)
