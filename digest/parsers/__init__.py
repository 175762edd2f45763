"""Parsers for every form of Hugging Face papers page: saved text, HTML and the JSON API.

:func:`parse_page` takes raw bytes, decodes them, picks the format (or takes the one
forced) and returns a :class:`ParsedPage`. Every failure is a :class:`ParseError`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from .base import ParsedPage, ParsedPaper, ParseError, normalise_arxiv_id, normalise_title

__all__ = [
    "FORMATS",
    "ParseError",
    "ParsedPage",
    "ParsedPaper",
    "normalise_arxiv_id",
    "normalise_title",
    "parse_page",
]

FORMATS = ("text", "html", "json")


def _parser(fmt: str) -> Callable[..., ParsedPage]:
    # Imported on use, so reading text or JSON pages never loads BeautifulSoup.
    if fmt == "text":
        from .text import parse as parse_text

        return parse_text
    if fmt == "html":
        from .html import parse as parse_html

        return parse_html
    if fmt == "json":
        from .hf_json import parse as parse_json

        return parse_json
    raise ParseError(f"unknown format {fmt!r} (choose one of {', '.join(FORMATS)})")


def parse_page(
    data: bytes | str, *, source: str, format: str | None = None, today: date | None = None
) -> ParsedPage:
    """Decode ``data`` and parse it as ``format`` (auto-detected when ``None``).

    Raises :class:`ParseError` for an empty, binary, oversized or undecodable page, an
    unknown format, or a page its parser cannot read.
    """
    from .detect import decode_page, detect_format

    text = decode_page(data, source=source) if isinstance(data, bytes) else data
    fmt = format or detect_format(text)
    return _parser(fmt)(text, source=source, today=today or date.today())
