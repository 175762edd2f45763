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

__all__ = ["ARXIV", "ARXIV_FORMATS", "FORMATS", "FORMAT_CHOICES", "HUGGING_FACE", "PageFormat"]

HUGGING_FACE = "Hugging Face"
ARXIV = "arXiv"


@dataclass(frozen=True)
class PageFormat:
    """A page format: its ``name`` (stored on sources and runs, given to ``--format``),
    a ``label`` for the admin, the dotted path of its ``parser`` module (imported on
    first use, so reading text or JSON pages never loads BeautifulSoup), and the
    ``origin`` its papers come from, as digests name it (``Hugging Face``, ``arXiv``)."""

    name: str
    label: str
    parser: str
    origin: str = HUGGING_FACE


FORMATS: dict[str, PageFormat] = {
    f.name: f
    for f in (
        PageFormat("text", "Text", "digest.ingest.parsers.text"),
        PageFormat("html", "HTML", "digest.ingest.parsers.html"),
        PageFormat("json", "JSON", "digest.ingest.parsers.hf_json"),
        PageFormat("arxiv_api", "arXiv API (Atom)", "digest.ingest.parsers.arxiv_atom", ARXIV),
        PageFormat(
            "arxiv_rss", "arXiv announcements (RSS)", "digest.ingest.parsers.arxiv_rss", ARXIV
        ),
        PageFormat("arxiv_oai", "arXiv OAI-PMH harvest", "digest.ingest.parsers.arxiv_oai", ARXIV),
    )
}

ARXIV_FORMATS = frozenset(f.name for f in FORMATS.values() if f.origin == ARXIV)
"""The formats of arXiv's services: fetched politely (:mod:`digest.ingest.sources`)."""

FORMAT_CHOICES = [("", "Auto-detect"), *((f.name, f.label) for f in FORMATS.values())]
"""Choices of a format field; blank means auto-detect."""
