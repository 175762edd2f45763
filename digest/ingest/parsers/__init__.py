"""Parsers for every form of papers page: Hugging Face's saved text, HTML and JSON API;
arXiv's API (Atom), announcement feed (RSS) and OAI-PMH harvest.

:func:`parse_page` takes raw bytes, decodes them, picks the format (or takes the one
forced) and returns a :class:`ParsedPage`. Every failure is a :class:`ParseError`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import date

from digest.formats import FORMATS

from .base import (
    Paging,
    ParsedPage,
    ParsedPaper,
    ParseError,
    normalise_arxiv_id,
    normalise_title,
)

__all__ = [
    "FORMATS",
    "Paging",
    "ParseError",
    "ParsedPage",
    "ParsedPaper",
    "normalise_arxiv_id",
    "normalise_title",
    "parse_page",
]


def _parser(fmt: str) -> Callable[..., ParsedPage]:
    try:
        module = FORMATS[fmt].parser
    except KeyError:
        raise ParseError(f"unknown format {fmt!r} (choose one of {', '.join(FORMATS)})") from None
    return importlib.import_module(module).parse  # type: ignore[no-any-return]


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
