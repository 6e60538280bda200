"""The prompt templates of the original server, served as MCP prompts and by ``get_prompt``."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from mcp_server._core import JSON, InvalidParams, Prompt, PromptArgument, PromptResult


@attrs.frozen
class PromptSpec:
    """A prompt template with ``{{arg}}`` placeholders and its arguments."""

    name: str
    description: str
    template: str
    arguments: tuple[PromptArgument, ...]

    def render_text(self, values: Mapping[str, str]) -> str:
        missing = [a.name for a in self.arguments if a.required and not values.get(a.name)]
        if missing:
            raise InvalidParams(f"missing required argument(s): {', '.join(missing)}")
        unknown = sorted(set(values) - {a.name for a in self.arguments})
        if unknown:
            raise InvalidParams(f"unknown argument(s): {', '.join(unknown)}")
        text = self.template
        for argument in self.arguments:
            text = text.replace("{{" + argument.name + "}}", values.get(argument.name) or "")
        return "\n".join(line for line in text.splitlines() if not line.endswith(": ")).strip()

    def prompt(self) -> Prompt:
        async def render(values: Mapping[str, str]) -> PromptResult:
            text = self.render_text(values)
            return PromptResult(
                messages=[{"role": "user", "content": {"type": "text", "text": text}}],
                description=self.description,
            )

        return Prompt(
            name=self.name, description=self.description, render=render, arguments=self.arguments
        )


def prompt_view(spec: PromptSpec) -> JSON:
    return {
        "id": spec.name,
        "name": spec.name,
        "description": spec.description,
        "template": spec.template,
        "arguments": [
            {"name": a.name, "description": a.description, "required": a.required}
            for a in spec.arguments
        ],
    }


def _arg(name: str, description: str, required: bool = False) -> PromptArgument:
    return PromptArgument(name=name, description=description, required=required)


PROMPTS: dict[str, PromptSpec] = {
    spec.name: spec
    for spec in (
        PromptSpec(
            name="fix_bug",
            description="Find and fix a bug, with a test that shows it fixed.",
            template=(
                "Fix this bug: {{bug_description}}\n"
                "Error message: {{error_message}}\n"
                "Affected files: {{affected_files}}\n"
                "Steps to reproduce: {{reproduction_steps}}\n"
                "Find the root cause, fix it, and add a test that fails without the fix."
            ),
            arguments=(
                _arg("bug_description", "What goes wrong", required=True),
                _arg("error_message", "The error message, if any"),
                _arg("affected_files", "Files involved, if known"),
                _arg("reproduction_steps", "How to make it happen"),
            ),
        ),
        PromptSpec(
            name="create_unit_tests",
            description="Write unit tests for a file.",
            template=(
                "Write unit tests for {{file_path}}.\n"
                "Test framework: {{test_framework}}\n"
                "Coverage target: {{coverage_target}}\n"
                "Cover normal cases, edge cases and errors; run the tests and make them pass."
            ),
            arguments=(
                _arg("file_path", "The file to test", required=True),
                _arg("test_framework", "Which framework to use (default: the project's)"),
                _arg("coverage_target", "Coverage to reach, e.g. 90%"),
            ),
        ),
        PromptSpec(
            name="create_react_component",
            description="Create a React component.",
            template=(
                "Create a React component named {{component_name}}: {{description}}\n"
                "Component type: {{component_type}}\n"
                "Styling: {{styling_approach}}\n"
                "Include tests: {{include_tests}}"
            ),
            arguments=(
                _arg("component_name", "The component's name", required=True),
                _arg("description", "What it does", required=True),
                _arg("component_type", "functional or class"),
                _arg("styling_approach", "CSS modules, styled-components, Tailwind, …"),
                _arg("include_tests", "yes or no"),
            ),
        ),
    )
}
