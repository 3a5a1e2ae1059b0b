"""Owner-written Markdown (an offer's landing page) as safe HTML, for the offer pages and the
console's preview of them alike."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})


@lru_cache(maxsize=512)  # pages are read far more often than owners edit them (~1 ms a render)
def render_markdown(source: str) -> str:
    """Owner markdown to safe HTML: raw HTML is not passed through, and the result is cleaned
    again (links get rel=noopener, no script, no event handlers, no javascript: URLs)."""
    return nh3.clean(_markdown.render(source), link_rel="noopener noreferrer nofollow")
