"""The ``*/list`` methods: one cursor-paged listing per registry kind, cached per revision.

Rendered pages are cached per registry revision, so ``tools/list`` costs a dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ._context import Envelope, Peer
from ._jsonrpc import Request
from ._paging import page_of, page_offset
from ._registry import JSON, ListKind, Registry
from ._render import prompt_json, resource_json, template_json, tool_json
from ._state import Signer

LIST_TTL_MS: Final = 60_000


class ListPages:
    """List pages of one registry, rendered once per registry revision."""

    def __init__(self, registry: Registry, signer: Signer, page_size: int) -> None:
        self.registry = registry
        self.signer = signer
        self.page_size = page_size
        self._pages: dict[tuple[str, str, Any], tuple[int, JSON]] = {}

    def page(
        self, kind: str, env: Envelope, request: Request, items: Callable[[], list[JSON]]
    ) -> JSON:
        """The page of ``kind`` the request's cursor names (the first without one)."""
        offset = page_offset(self.signer, request.params.get("cursor"), kind)
        list_kind: ListKind = "resources" if kind.startswith("resource") else kind  # type: ignore[assignment]
        revision = self.registry.revisions[list_kind]
        key = (kind, env.era + (env.version if kind == "tools" else ""), offset)
        cached = self._pages.get(key)
        if cached is not None and cached[0] == revision:
            return dict(cached[1])
        page = page_of(self.signer, kind, items(), offset=offset, size=self.page_size)
        if env.era == "modern":
            page["ttlMs"] = LIST_TTL_MS
            page["cacheScope"] = "public"
        self._pages[key] = (revision, page)
        return dict(page)


async def tools_list(pages: ListPages, request: Request, env: Envelope, peer: Peer) -> JSON:
    """``tools/list``; ``execution`` is shown from 2025-11-25 on."""
    with_execution = env.era == "modern" or env.version >= "2025-11-25"
    tools = pages.registry.tools
    return pages.page(
        "tools", env, request, lambda: [tool_json(t, with_execution) for t in tools.values()]
    )


async def resources_list(pages: ListPages, request: Request, env: Envelope, peer: Peer) -> JSON:
    """``resources/list``."""
    resources = pages.registry.resources
    return pages.page(
        "resources", env, request, lambda: [resource_json(r) for r in resources.values()]
    )


async def templates_list(pages: ListPages, request: Request, env: Envelope, peer: Peer) -> JSON:
    """``resources/templates/list``."""
    templates = pages.registry.templates
    return pages.page(
        "resourceTemplates", env, request, lambda: [template_json(t) for t in templates.values()]
    )


async def prompts_list(pages: ListPages, request: Request, env: Envelope, peer: Peer) -> JSON:
    """``prompts/list``."""
    prompts = pages.registry.prompts
    return pages.page("prompts", env, request, lambda: [prompt_json(p) for p in prompts.values()])
