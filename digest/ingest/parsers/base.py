"""Shapes shared by every papers-page parser.

A parser is a pure function ``parse(text: str, *, source: str, today: date) -> ParsedPage``.
It never touches the database; :mod:`digest.ingest.store` stores what it returns.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

__all__ = [
    "Paging",
    "ParseError",
    "ParsedPage",
    "ParsedPaper",
    "normalise_arxiv_id",
    "normalise_title",
]


class ParseError(ValueError):
    """A page could not be parsed.

    ``source`` names the file or URL, ``line`` is the 1-based line of the problem
    (``None`` when the problem is not tied to a line, e.g. an empty or binary page).
    ``str(error)`` reads ``"<source>, line <n>: <message>"``.
    """

    def __init__(self, message: str, *, source: str = "<page>", line: int | None = None):
        self.message = message
        self.source = source
        self.line = line
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class ParsedPaper:
    """One paper as a page shows it.

    ``upvotes`` is ``None`` when the page shows no count (the saved text pages only
    show one when it is non-zero). ``authors`` holds names when the source gives
    them; ``authors_count`` the count shown or ``len(authors)``.

    The arXiv formats add ``categories`` (arXiv categories such as ``cs.CL``, the
    primary first), the authors' ``comment``, ``journal_ref`` and ``doi``, the
    ``version`` seen (``2`` for ``v2``; ``None`` when the source does not say), the
    ``announce_type`` of an announcement (``new``, ``cross``, ``replace``,
    ``replace-cross``; ``""`` elsewhere) and the ``pdf_url`` the feed links. Hugging
    Face adds its ``ai_summary``.
    """

    title: str
    abstract: str
    arxiv_id: str | None = None
    authors: tuple[str, ...] = ()
    authors_count: int | None = None
    published_on: date | None = None
    upvotes: int | None = None
    ai_keywords: tuple[str, ...] = ()
    ai_summary: str = ""
    github_repo: str = ""
    project_page: str = ""
    num_comments: int | None = None
    categories: tuple[str, ...] = ()
    comment: str = ""
    journal_ref: str = ""
    doi: str = ""
    version: int | None = None
    announce_type: str = ""
    pdf_url: str = ""


@dataclass(frozen=True, slots=True)
class Paging:
    """Where a page sits in a longer answer, for fetching the next one.

    The arXiv API (OpenSearch elements): ``total`` results, the ``start`` offset of this
    page (0-based) and ``per_page`` asked. OAI-PMH: the ``token`` to resume with
    (``None`` on the last page) and ``total`` when the repository gives
    ``completeListSize``.
    """

    total: int | None = None
    start: int | None = None
    per_page: int | None = None
    token: str | None = None


@dataclass(slots=True)
class ParsedPage:
    """What one page holds: its format (a name in :data:`digest.formats.FORMATS`), the
    date the page is for when it shows one, its papers in page order, and its ``paging``
    when the answer continues on other pages (the arXiv API and OAI-PMH)."""

    format: str
    papers: list[ParsedPaper] = field(default_factory=list)
    page_date: date | None = None
    paging: Paging | None = None


_ARXIV_RE = re.compile(
    r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$", re.I
)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_arxiv_id(raw: str | None) -> str | None:
    """Return the arXiv identifier without version suffix (``"2401.01234v2"`` →
    ``"2401.01234"``), or ``None`` when ``raw`` is empty or not an arXiv id.

    Formats: new-style ``YYMM.NNNN(N)`` and old-style ``archive/YYMMNNN``
    (https://info.arxiv.org/help/arxiv_identifier.html).
    """
    if not raw:
        return None
    m = _ARXIV_RE.match(raw.strip())
    return m.group(1) if m else None


def normalise_title(title: str) -> str:
    """The identity key of a title: accents folded, case folded, every run of
    punctuation and white space collapsed to one space.

    ``"DINO-X: A Unified  Vision Model"`` → ``"dino x a unified vision model"``.
    """
    folded = unicodedata.normalize("NFKD", title)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    return _NON_WORD.sub(" ", folded).strip()
