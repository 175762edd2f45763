"""The page formats ingest reads: one registry, from which the model's choices, the
commands' ``--format`` option and the parser dispatch
(:func:`digest.ingest.parsers.parse_page`) are derived.

Adding a format is a parser module with a ``parse(text, *, source, today)`` function
returning a :class:`~digest.ingest.parsers.ParsedPage`, an entry here, and a rule in
:func:`digest.ingest.parsers.detect.detect_format` when it can be told apart by content.
This module imports nothing, so the models can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FORMATS", "FORMAT_CHOICES", "PageFormat"]


@dataclass(frozen=True)
class PageFormat:
    """A page format: its ``name`` (stored on sources and runs, given to ``--format``),
    a ``label`` for the admin, and the dotted path of its ``parser`` module (imported on
    first use, so reading text or JSON pages never loads BeautifulSoup)."""

    name: str
    label: str
    parser: str


FORMATS: dict[str, PageFormat] = {
    f.name: f
    for f in (
        PageFormat("text", "Text", "digest.ingest.parsers.text"),
        PageFormat("html", "HTML", "digest.ingest.parsers.html"),
        PageFormat("json", "JSON", "digest.ingest.parsers.hf_json"),
    )
}

FORMAT_CHOICES = [("", "Auto-detect"), *((f.name, f.label) for f in FORMATS.values())]
"""Choices of a format field; blank means auto-detect."""
