"""Parse the Hugging Face daily-papers JSON API.

Source format: ``GET https://huggingface.co/api/daily_papers?date=YYYY-MM-DD`` (optional
``limit``, ``p``, ``sort=trending``) answers with a JSON list of items::

    [{"paper": {"id": "2503.01234", "title": "...", "summary": "...", "upvotes": 42,
                "publishedAt": "2025-03-10T17:59:59.000Z",
                "authors": [{"name": "Ada Lovelace", ...}, ...],
                "ai_keywords": ["..."], "ai_summary": "...",
                "githubRepo": "https://github.com/...",
                "projectPage": "https://...", ...},
      "title": "...", "publishedAt": "...", "numComments": 3, "submittedBy": {...}, ...},
     ...]

``/api/papers/search`` answers with bare paper objects (no ``paper`` wrapper), and the
papers HTML page embeds the same items in its ``data-props`` (see :mod:`.html`), so
:func:`papers_from_items` serves all three.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from .base import ParsedPage, ParsedPaper, ParseError, normalise_arxiv_id

__all__ = ["parse", "papers_from_items", "date_from_url", "parse_iso_date", "clean_text"]

_SPACE = re.compile(r"\s+")
# Lone surrogates survive json.loads ("\ud800") but cannot be encoded for the database,
# and PostgreSQL rejects NUL in text columns; neither is ever meaningful in a title.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_URL_DATE = re.compile(r"(?:/papers/date/|[?&]date=)(\d{4}-\d{2}-\d{2})(?![\d])")


def parse(text: str, *, source: str, today: date) -> ParsedPage:
    """Parse a daily-papers API response into a :class:`ParsedPage` with format ``"json"``.

    ``text`` is the decoded response body: a JSON list of daily-papers items or of bare
    papers, or an object holding such a list under ``"dailyPapers"`` (the page's own
    props). ``page_date`` comes from the ``"date"`` of such an object, else from a
    ``date=YYYY-MM-DD`` in ``source`` when ``source`` is the request URL; ``today`` is
    accepted for the common parser signature and not needed here.

    Raises :class:`ParseError` for invalid JSON (``line`` is the decoder's line) and for
    JSON of another shape (the message names the item index; ``line`` is ``None``).
    """
    del today  # every date in the API carries its year
    body = text.lstrip("\ufeff")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON: {exc.msg}", source=source, line=exc.lineno) from exc
    except (ValueError, RecursionError) as exc:
        # json.loads raises plain ValueError for integers past the int-digits limit and
        # RecursionError for absurdly deep nesting; both mean a page we cannot use.
        raise ParseError(f"not usable JSON: {exc}", source=source) from exc

    page_date = date_from_url(source)
    if isinstance(data, dict):
        items = data.get("dailyPapers")
        if not isinstance(items, list):
            raise ParseError(
                'expected a JSON list of papers (or an object with a "dailyPapers" list) '
                f"at the top level, got an object with keys {sorted(data)[:5]}",
                source=source,
            )
        page_date = parse_iso_date(data.get("date")) or page_date
    elif isinstance(data, list):
        items = data
    else:
        raise ParseError(
            f"expected a JSON list of papers at the top level, got {_kind(data)}",
            source=source,
        )
    return ParsedPage(
        format="json", papers=papers_from_items(items, source=source), page_date=page_date
    )


def papers_from_items(
    items: Sequence[Any], *, source: str, line: int | None = None, where: str = "item"
) -> list[ParsedPaper]:
    """Turn daily-papers items (or bare papers) into :class:`ParsedPaper` values, in order.

    Each item is an object; fields are read from ``item["paper"]`` first and from the
    item itself when the paper lacks them (the API puts ``title`` and ``publishedAt`` on
    both, ``numComments`` only on the item). ``title`` is required; every other field is
    optional but must have the API's type when present.

    Raises :class:`ParseError` naming ``f"{where} {index}"`` and the field, with the
    given ``line`` (the HTML parser passes the line of the element holding the props).
    """
    return [
        _paper_from_item(item, label=f"{where} {index}", source=source, line=line)
        for index, item in enumerate(items)
    ]


def date_from_url(url: str | None) -> date | None:
    """The day a papers URL is for: ``/papers/date/YYYY-MM-DD`` or ``?date=YYYY-MM-DD``.

    Returns ``None`` for other URLs (week and month pages, search, the front page) and for
    impossible dates.
    """
    if not url:
        return None
    m = _URL_DATE.search(url)
    return parse_iso_date(m.group(1)) if m else None


def parse_iso_date(value: object) -> date | None:
    """The calendar date of an ISO 8601 date or date-time string (``"2025-03-10"``,
    ``"2025-03-10T17:59:59.000Z"``), as written (no time-zone shift); ``None`` when
    ``value`` is not such a string."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _paper_from_item(item: object, *, label: str, source: str, line: int | None) -> ParsedPaper:
    def fail(message: str) -> ParseError:
        return ParseError(f"{label}: {message}", source=source, line=line)

    if not isinstance(item, dict):
        raise fail(f"expected an object, got {_kind(item)}")
    paper = item.get("paper", {})
    if paper is None:
        paper = {}
    if not isinstance(paper, dict):
        raise fail(f'expected "paper" to be an object, got {_kind(paper)}')

    def field(key: str) -> object:
        value = paper.get(key)
        return item.get(key) if value is None else value

    def text(key: str) -> str:
        value = field(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise fail(f'expected "{key}" to be a string, got {_kind(value)}')
        return clean_text(value)

    def count(key: str) -> int | None:
        value = field(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise fail(f'expected "{key}" to be a whole number >= 0, got {value!r:.40}')
        return value

    title = text("title")
    if not title:
        raise fail('expected a non-empty "title" in the item or its "paper"')

    published_raw = field("publishedAt")
    published_on = None
    if published_raw is not None:
        published_on = _iso_date_strict(published_raw)
        if published_on is None:
            raise fail(f'expected "publishedAt" to be an ISO 8601 date, got {published_raw!r:.40}')

    authors = _authors(field("authors"), fail)
    return ParsedPaper(
        title=title,
        abstract=text("summary"),
        arxiv_id=normalise_arxiv_id(text("id")),
        authors=authors if authors is not None else (),
        authors_count=len(authors) if authors is not None else None,
        published_on=published_on,
        upvotes=count("upvotes"),
        ai_keywords=_keywords(field("ai_keywords"), fail),
        ai_summary=text("ai_summary"),
        github_repo=text("githubRepo"),
        project_page=text("projectPage"),
        num_comments=count("numComments"),
    )


def _authors(value: object, fail: Callable[[str], ParseError]) -> tuple[str, ...] | None:
    """Names from ``[{"name": ...}, ...]`` (plain strings accepted); ``None`` when absent."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise fail(f'expected "authors" to be a list, got {_kind(value)}')
    names = []
    for i, author in enumerate(value):
        if isinstance(author, Mapping):
            name = author.get("name")
        else:
            name = author
        if not isinstance(name, str):
            raise fail(f'expected author {i} to be a name or an object with a "name" string')
        name = clean_text(name)
        if name:
            names.append(name)
    return tuple(names)


def _keywords(value: object, fail: Callable[[str], ParseError]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise fail(f'expected "ai_keywords" to be a list of strings, got {_kind(value)}')
    return tuple(k for k in (clean_text(k) for k in value) if k)


def _iso_date_strict(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        # Python 3.11 reads the API's "2025-03-10T17:59:59.000Z" directly.
        return datetime.fromisoformat(value.strip()).date()
    except ValueError:
        return None


def clean_text(value: str) -> str:
    """``value`` with every run of white space collapsed to one space, trimmed, and
    without NUL or lone surrogates (which no database column can hold). The API wraps
    abstracts with newlines; the HTML cards indent their text."""
    return _SPACE.sub(" ", _UNSTORABLE.sub("", value)).strip()


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
