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
from datetime import date

__all__ = [
    "ANNOUNCE_TYPES",
    "ARXIV",
    "ARXIV_FORMATS",
    "FORMATS",
    "FORMAT_CHOICES",
    "HUGGING_FACE",
    "PageFormat",
    "arxiv_url",
]

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

ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
"""The kinds of arXiv announcement (https://info.arxiv.org/help/rss.html)."""


def arxiv_url(format: str, categories: tuple[str, ...], *, since: date) -> str:
    """Where arXiv serves ``format`` for ``categories`` (``("cs.CL", "cs.LG")``):

    * ``arxiv_rss``: ``https://rss.arxiv.org/rss/cs.CL+cs.LG``, the latest announcement;
    * ``arxiv_api``: the API query ``cat:cs.CL OR cat:cs.LG``, newest submissions first,
      200 a page (https://info.arxiv.org/help/api/user-manual.html);
    * ``arxiv_oai``: an OAI-PMH ``ListRecords`` harvest in the ``arXiv`` format of the
      first category's archive (set ``cs``; ``physics:hep-th`` for physics archives)
      from ``since`` (https://info.arxiv.org/help/oa/index.html).

    Raises ``ValueError`` for another format or no categories.
    """
    if not categories:
        raise ValueError("an arXiv source needs categories to build its URL")
    if format == "arxiv_rss":
        return "https://rss.arxiv.org/rss/" + "+".join(categories)
    if format == "arxiv_api":
        query = "+OR+".join(f"cat:{c}" for c in categories)
        return (
            f"https://export.arxiv.org/api/query?search_query={query}"
            "&sortBy=submittedDate&sortOrder=descending&start=0&max_results=200"
        )
    if format == "arxiv_oai":
        archive = categories[0].split(".")[0]
        physics = {"astro-ph", "cond-mat", "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th"}
        physics |= {"math-ph", "nlin", "nucl-ex", "nucl-th", "physics", "quant-ph"}
        oai_set = f"physics:{archive}" if archive in physics and archive != "physics" else archive
        return (
            "https://export.arxiv.org/oai2?verb=ListRecords&metadataPrefix=arXiv"
            f"&set={oai_set}&from={since.isoformat()}"
        )
    raise ValueError(f"{format!r} is not an arXiv format")


FORMAT_CHOICES = [("", "Auto-detect"), *((f.name, f.label) for f in FORMATS.values())]
"""Choices of a format field; blank means auto-detect."""
