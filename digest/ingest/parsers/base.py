"""Shapes shared by every papers-page parser.

A parser is a pure function ``parse(text: str, *, source: str, today: date) -> ParsedPage``.
It never touches the database; :mod:`digest.ingest.store` stores what it returns.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

__all__ = ["ParseError", "ParsedPaper", "ParsedPage", "normalise_title", "normalise_arxiv_id"]


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
    them; ``authors_count`` the count shown or ``len(authors)``. ``ai_summary`` is the
    source's one-paragraph summary (the JSON API's ``ai_summary``), when it gives one.
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


@dataclass(slots=True)
class ParsedPage:
    """What one page holds: its format (``text``, ``html`` or ``json``), the date the
    page is for when it shows one, and its papers in page order."""

    format: str
    papers: list[ParsedPaper] = field(default_factory=list)
    page_date: date | None = None


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
