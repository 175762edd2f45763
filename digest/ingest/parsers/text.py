"""Parser for Hugging Face papers pages saved as text (``examples/pages/*.txt``).

The layout, read off real saved pages:

* a header of fixed lines (``new``, ``Get trending papers in your email inbox!``,
  ``Subscribe``, sometimes ``Daily Papers``, ``byAK and the research community``), then the
  page date without a year (``Mar 11``);
* then, per paper, separated by blank lines: a title line, an abstract paragraph, and on
  some pages a metadata block of consecutive lines: ``• 10 authors``, ``·`` and the
  publication date with an optional upvote count after it (``Jun 12, 2024 2``). A date
  without a year (``Jan 29``) is in the current year unless that puts it in the future,
  then in the year before.
"""

from __future__ import annotations

import re
from datetime import date

from .base import ParsedPage, ParsedPaper, ParseError

__all__ = ["parse", "resolve_date"]

HEADER_LINES = frozenset(
    {
        "new",
        "Get trending papers in your email inbox!",
        "Subscribe",
        "Daily Papers",
        "byAK and the research community",
    }
)
MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_DATE = (
    r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(?P<day>\d{1,2})"
    r"(?:,\s*(?P<year>\d{4}))?"
)
PAGE_DATE_RE = re.compile(rf"^{_DATE}$")
PUBLISHED_RE = re.compile(rf"^{_DATE}(?:\s+(?P<upvotes>\d+))?$")
AUTHORS_RE = re.compile(r"^•\s*(?P<n>\d+)\s+authors?$")
SEPARATOR = "·"


def resolve_date(mon: str, day: int, year: int | None, today: date) -> date:
    """The date ``mon day[, year]``; without a year, the latest such date not after ``today``.

    Raises ValueError for impossible dates (``Feb 30``).
    """
    month = MONTHS[mon]
    if year is not None:
        return date(year, month, day)
    # Feb 29 exists only in leap years: walk back to the latest year that has it.
    for candidate_year in range(today.year, today.year - 8, -1):
        try:
            candidate = date(candidate_year, month, day)
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    raise ValueError(f"{mon} {day} is not a date")


def _is_metadata(line: str) -> bool:
    return line == SEPARATOR or bool(AUTHORS_RE.match(line) or PUBLISHED_RE.match(line))


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Runs of non-blank lines as ``(first line number, stripped lines)``."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            if current:
                blocks.append((start, current))
                current = []
            continue
        if not current:
            start = number
        current.append(line)
    if current:
        blocks.append((start, current))
    return blocks


def parse(text: str, *, source: str = "<page>", today: date | None = None) -> ParsedPage:
    """Parse a saved text page into its papers, in page order.

    ``today`` anchors dates shown without a year (default: today's date).
    Raises :class:`ParseError` naming ``source`` and the line for a title without an
    abstract, metadata where a title or abstract should be, an unreadable metadata line,
    an impossible date, or a page without papers.
    """
    today = today or date.today()
    blocks = _blocks(text)
    page = ParsedPage(format="text")

    i = 0
    # Header lines are single-line blocks; the page date follows them.
    while i < len(blocks) and len(blocks[i][1]) == 1 and blocks[i][1][0] in HEADER_LINES:
        i += 1
    if i < len(blocks) and len(blocks[i][1]) == 1:
        m = PAGE_DATE_RE.match(blocks[i][1][0])
        if m:
            page.page_date = _date_from(m, today, source, blocks[i][0])
            i += 1

    while i < len(blocks):
        title_line, title_lines = blocks[i]
        if _is_metadata(title_lines[0]):
            raise ParseError(
                f"expected a paper title, found {title_lines[0]!r}", source=source, line=title_line
            )
        title = " ".join(title_lines)
        i += 1
        if i >= len(blocks) or _is_metadata(blocks[i][1][0]):
            raise ParseError(
                f"paper {title[:80]!r} has no abstract", source=source, line=title_line
            )
        abstract = " ".join(blocks[i][1])
        i += 1
        authors_count = published_on = upvotes = None
        if i < len(blocks) and _is_metadata(blocks[i][1][0]):
            meta_line, meta_lines = blocks[i]
            authors_count, published_on, upvotes = _metadata(meta_lines, meta_line, source, today)
            i += 1
        page.papers.append(
            ParsedPaper(
                title=title,
                abstract=abstract,
                authors_count=authors_count,
                published_on=published_on,
                upvotes=upvotes,
            )
        )

    if not page.papers:
        raise ParseError("no papers found on the page", source=source, line=None)
    return page


def _date_from(m: re.Match[str], today: date, source: str, line: int) -> date:
    year = int(m["year"]) if m["year"] else None
    try:
        return resolve_date(m["mon"], int(m["day"]), year, today)
    except ValueError:
        raise ParseError(f"{m.group(0)!r} is not a valid date", source=source, line=line) from None


def _metadata(
    lines: list[str], first_line: int, source: str, today: date
) -> tuple[int | None, date | None, int | None]:
    authors_count: int | None = None
    published_on: date | None = None
    upvotes: int | None = None
    for offset, line in enumerate(lines):
        number = first_line + offset
        if line == SEPARATOR:
            continue
        if m := AUTHORS_RE.match(line):
            authors_count = int(m["n"])
        elif m := PUBLISHED_RE.match(line):
            published_on = _date_from(m, today, source, number)
            upvotes = int(m["upvotes"]) if m["upvotes"] else None
        else:
            raise ParseError(f"unreadable paper details {line!r}", source=source, line=number)
    return authors_count, published_on, upvotes
