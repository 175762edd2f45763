"""Parse the Hugging Face papers HTML pages.

Source format: the pages at ``https://huggingface.co/papers`` and its variants
(``/papers/date/YYYY-MM-DD``, ``/papers/week/YYYY-Www``, ``/papers/month/YYYY-MM``,
``/papers?q=...``). The page is rendered from JSON that it also carries, HTML-escaped, in
the ``data-props`` attribute of the element with ``data-target="DailyPapers"``::

    <div data-target="DailyPapers" data-props="{&quot;date&quot;:&quot;2025-03-11...&quot;,
         &quot;dailyPapers&quot;:[{&quot;paper&quot;:{...}, ...}, ...], ...}">

The items have the JSON API's shape (see :mod:`.hf_json`). Search pages keep their
results under another key and component, so any ``data-props`` holding a list of
paper-like items is accepted. When no props are present the visible markup is read
instead: one ``<article>`` card per paper, its title link ``<a href="/papers/<arXiv
id>">``, the abstract in a ``<p>``, the upvote count in the card's vote element.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from bs4 import BeautifulSoup, Tag
from bs4.exceptions import ParserRejectedMarkup

from .base import ParsedPage, ParsedPaper, ParseError, normalise_arxiv_id
from .hf_json import clean_text, date_from_url, papers_from_items, parse_iso_date

__all__ = ["parse"]

_PROPS_TARGET = "DailyPapers"
_PAPER_HREF = re.compile(r"^(?:https?://(?:www\.)?huggingface\.co)?/papers/([^/?#\s]+)/?$")
_COMMENTS_HREF = re.compile(r"^(?:https?://(?:www\.)?huggingface\.co)?/papers/[^/?#\s]+#")
# Counts as the cards print them ("1,234"); longer digit runs are not counts.
_NUMBER = re.compile(r"(?<![\d,])\d[\d,]{0,14}(?![\d,])")
_AUTHORS_COUNT = re.compile(r"(?<![\d,])(\d[\d,]{0,14})\s+authors?\b", re.I)
# How deep under the props object a list of papers may sit ({"searchResults": {"papers":
# [...]}} is two levels); bounded so a hostile page cannot make the walk expensive.
_MAX_PROPS_DEPTH = 4


def parse(text: str, *, source: str, today: date) -> ParsedPage:
    """Parse a papers HTML page into a :class:`ParsedPage` with format ``"html"``.

    Papers come from the ``data-props`` JSON when the page has it, else from its
    ``<article>`` cards, in page order. ``page_date`` is the day of a
    ``/papers/date/YYYY-MM-DD`` page, taken from the canonical link (or ``og:url``), else
    the props' ``"date"``, else ``source`` when it is that URL; week, month and search
    pages span no single day and get ``None``. ``today`` is accepted for the common
    parser signature and not needed here.

    Raises :class:`ParseError` when the markup cannot be read, when the DailyPapers
    props are not valid JSON or hold items of the wrong shape (``line`` is the line of
    the element carrying them), or when the page has neither props nor paper cards.
    """
    del today  # every date the page carries has its year
    try:
        soup = BeautifulSoup(text, "html.parser")
    except (ParserRejectedMarkup, AssertionError) as exc:
        # html.parser gives up on some malformed declarations; bs4 reports that as
        # ParserRejectedMarkup (older Pythons let an AssertionError through).
        raise ParseError("unreadable HTML: the parser rejected the markup", source=source) from exc

    found = _props_papers(soup, source=source)
    if found is not None:
        props, papers = found
        page_date = _canonical_date(soup) or parse_iso_date(props.get("date"))
    else:
        papers = _card_papers(soup)
        if not papers:
            raise ParseError(
                f'no papers found: expected a data-target="{_PROPS_TARGET}" element with '
                'data-props, or <article> cards linking to "/papers/<arXiv id>"',
                source=source,
            )
        page_date = _canonical_date(soup)
    return ParsedPage(format="html", papers=papers, page_date=page_date or date_from_url(source))


def _props_papers(
    soup: BeautifulSoup, *, source: str
) -> tuple[dict[str, Any], list[ParsedPaper]] | None:
    """The papers in the first ``data-props`` that holds a paper list, with the props
    object that holds it; ``None`` when no element has such props."""
    elements = soup.find_all(True, attrs={"data-props": True})
    # The DailyPapers component first: other components (header, search box) carry
    # props too and must not win when both are present.
    elements.sort(key=lambda el: el.get("data-target") != _PROPS_TARGET)
    for el in elements:
        is_target = el.get("data-target") == _PROPS_TARGET
        raw = el.get("data-props")
        line = el.sourceline
        try:
            props = json.loads(raw if isinstance(raw, str) else "")
        except (ValueError, RecursionError) as exc:
            if is_target:
                raise ParseError(
                    f"data-props of the {_PROPS_TARGET} element is not valid JSON: {exc}",
                    source=source,
                    line=line,
                ) from exc
            continue
        if not isinstance(props, dict):
            if is_target:
                raise ParseError(
                    f"data-props of the {_PROPS_TARGET} element is not a JSON object",
                    source=source,
                    line=line,
                )
            continue
        holder = _find_paper_list(props, depth=0)
        if holder is None:
            if is_target:
                raise ParseError(
                    f'data-props of the {_PROPS_TARGET} element has no "dailyPapers" list',
                    source=source,
                    line=line,
                )
            continue
        owner, key = holder
        papers = papers_from_items(owner[key], source=source, line=line, where=key)
        return props, papers
    return None


def _find_paper_list(obj: dict[str, Any], *, depth: int) -> tuple[dict[str, Any], str] | None:
    """``(object, key)`` of the first list of paper-like items in ``obj`` or the objects
    nested in it, this level before deeper ones. A ``"dailyPapers"`` list wins even when
    empty (a day with no papers)."""
    if isinstance(obj.get("dailyPapers"), list):
        return obj, "dailyPapers"
    for key, value in obj.items():
        if isinstance(value, list) and value and all(_is_paper_like(v) for v in value):
            return obj, key
    if depth + 1 >= _MAX_PROPS_DEPTH:
        return None
    for value in obj.values():
        if isinstance(value, dict):
            found = _find_paper_list(value, depth=depth + 1)
            if found is not None:
                return found
    return None


def _is_paper_like(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    if isinstance(value.get("paper"), dict):
        return True
    return isinstance(value.get("title"), str) and ("summary" in value or "id" in value)


def _canonical_date(soup: BeautifulSoup) -> date | None:
    for el, attr in (
        (soup.find("link", rel="canonical"), "href"),
        (soup.find("meta", attrs={"property": "og:url"}), "content"),
    ):
        if isinstance(el, Tag):
            value = el.get(attr)
            if isinstance(value, str) and (day := date_from_url(value)):
                return day
    return None


def _card_papers(soup: BeautifulSoup) -> list[ParsedPaper]:
    """Papers read from the visible ``<article>`` cards; cards without a paper title
    link (promotions, empty states) are skipped."""
    papers = []
    for card in soup.find_all("article"):
        link = _title_link(card)
        if link is None:
            continue
        href = link.get("href")
        m = _PAPER_HREF.match(href) if isinstance(href, str) else None
        vote = _vote_element(card)
        papers.append(
            ParsedPaper(
                title=_text(link),
                abstract=_abstract(card, vote),
                arxiv_id=normalise_arxiv_id(m.group(1)) if m else None,
                authors_count=_authors_count(card),
                published_on=_card_date(card),
                upvotes=_first_number(_text(vote)) if vote is not None else None,
                github_repo=_github_repo(card),
                num_comments=_comments(card),
            )
        )
    return papers


def _title_link(card: Tag) -> Tag | None:
    """The card's link to its paper page whose text is a title: headings first, and never
    the thumbnail (no text) or the comment count (digits only)."""
    candidates = [
        a
        for a in card.find_all("a", href=True)
        if isinstance(a.get("href"), str) and _PAPER_HREF.match(str(a.get("href")))
    ]
    titled = [a for a in candidates if _text(a) and not _text(a).replace(",", "").isdigit()]
    in_heading = [a for a in titled if a.find_parent(re.compile(r"^h[1-6]$")) is not None]
    preferred = in_heading or titled
    return preferred[0] if preferred else None


def _vote_element(card: Tag) -> Tag | None:
    """The first element in the card that names itself a vote control (class, label,
    title or test id mentioning "vote") and shows a number."""
    for el in card.find_all(True):
        marks = [
            " ".join(v) if isinstance(v, list) else str(v)
            for k, v in el.attrs.items()
            if k in ("class", "aria-label", "title", "data-testid", "id", "name")
        ]
        if any("vote" in m.lower() for m in marks) and _NUMBER.search(_text(el)):
            return el
    return None


def _abstract(card: Tag, vote: Tag | None) -> str:
    """The longest ``<p>`` in the card outside the vote element: short paragraphs hold
    counts and dates, the abstract is the paragraph of prose."""
    texts = [_text(p) for p in card.find_all("p") if vote is None or not _related(p, vote)]
    return max(texts, key=len, default="")


def _related(a: Tag, b: Tag) -> bool:
    """Whether one tag is, or contains, the other. By identity: bs4's ``==`` compares
    markup, and two cards may well print the same vote box."""
    return any(el is b for el in (a, *a.parents)) or any(el is a for el in b.parents)


def _authors_count(card: Tag) -> int | None:
    m = _AUTHORS_COUNT.search(_text(card))
    return int(m.group(1).replace(",", "")) if m else None


def _card_date(card: Tag) -> date | None:
    time = card.find("time", datetime=True)
    return parse_iso_date(time.get("datetime")) if isinstance(time, Tag) else None


def _github_repo(card: Tag) -> str:
    link = card.find("a", href=re.compile(r"^https://github\.com/[^/\s]+/[^/\s]+"))
    href = link.get("href") if isinstance(link, Tag) else None
    return href.strip() if isinstance(href, str) else ""


def _comments(card: Tag) -> int | None:
    for a in card.find_all("a", href=_COMMENTS_HREF):
        if (n := _first_number(_text(a))) is not None:
            return n
    return None


def _first_number(text: str) -> int | None:
    m = _NUMBER.search(text)
    return int(m.group(0).replace(",", "")) if m else None


def _text(el: Tag | None) -> str:
    if el is None:
        return ""
    return clean_text(el.get_text(" "))
