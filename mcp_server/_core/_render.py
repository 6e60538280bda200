"""Registry items and results rendered as protocol JSON."""

from __future__ import annotations

import re

from ._registry import (
    JSON,
    BlobContents,
    Prompt,
    Resource,
    ResourceContents,
    ResourceTemplate,
    Tool,
    ToolResult,
)


def drop_none(d: JSON) -> JSON:
    return {k: val for k, val in d.items() if val is not None}


def tool_json(tool: Tool, with_execution: bool) -> JSON:
    out: JSON = {
        "name": tool.name,
        "description": tool.description,
        "inputSchema": tool.input_schema,
    }
    if tool.title is not None:
        out["title"] = tool.title
    if tool.output_schema is not None:
        out["outputSchema"] = tool.output_schema
    if tool.annotations is not None:
        out["annotations"] = tool.annotations.json()
    if with_execution and tool.task_support != "forbidden":
        out["execution"] = {"taskSupport": tool.task_support}
    return out


def prompt_json(prompt: Prompt) -> JSON:
    out: JSON = {"name": prompt.name, "description": prompt.description}
    if prompt.title is not None:
        out["title"] = prompt.title
    if prompt.arguments:
        out["arguments"] = [
            drop_none({"name": a.name, "description": a.description, "required": a.required})
            for a in prompt.arguments
        ]
    return out


def tool_result_json(result: ToolResult) -> JSON:
    out: JSON = {"content": result.content}
    if result.structured_content is not None:
        out["structuredContent"] = result.structured_content
    if result.is_error:
        out["isError"] = True
    return out


def contents_json(contents: ResourceContents) -> JSON:
    out: JSON = {"uri": contents.uri}
    if contents.mime_type is not None:
        out["mimeType"] = contents.mime_type
    if isinstance(contents, BlobContents):
        out["blob"] = contents.blob
    else:
        out["text"] = contents.text
    return out


_TEMPLATE_CACHE: dict[str, re.Pattern[str]] = {}


def match_template(template: ResourceTemplate, uri: str) -> dict[str, str] | None:
    pattern = _TEMPLATE_CACHE.get(template.uri_template)
    if pattern is None:
        parts = re.split(r"\{([A-Za-z0-9_]+)\}", template.uri_template)
        regex = "".join(
            f"(?P<{part}>[^/?#]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
        )
        pattern = re.compile(regex + r"\Z")
        _TEMPLATE_CACHE[template.uri_template] = pattern
    match = pattern.match(uri)
    return match.groupdict() if match else None


def resource_json(resource: Resource) -> JSON:
    return drop_none(
        {
            "uri": resource.uri,
            "name": resource.name,
            "title": resource.title,
            "description": resource.description,
            "mimeType": resource.mime_type,
        }
    )


def template_json(template: ResourceTemplate) -> JSON:
    return drop_none(
        {
            "uriTemplate": template.uri_template,
            "name": template.name,
            "title": template.title,
            "description": template.description,
            "mimeType": template.mime_type,
        }
    )
