"""Parse arXiv's announcement RSS feed of one category or several.

Source format (https://info.arxiv.org/help/rss.html): ``GET
https://rss.arxiv.org/rss/cs.CL+cs.LG`` answers each day after the announcement with an
RSS 2.0 ``<channel>`` of that day's announcements, one ``<item>`` per paper::

    <item>
      <title>…</title>  <link>https://arxiv.org/abs/2405.07001</link>
      <description>arXiv:2405.07001v1 Announce Type: new
    Abstract: …</description>
      <guid isPermaLink="false">oai:arXiv.org:2405.07001v1</guid>
      <category>cs.CL</category> <category>cs.AI</category>
      <pubDate>Tue, 14 May 2024 00:00:00 -0400</pubDate>
      <arxiv:announce_type>new</arxiv:announce_type>
      <dc:creator>Ada Lovelace, Alan Turing</dc:creator>
    </item>

``announce_type`` is ``new``, ``cross`` (a cross-list from another category),
``replace`` or ``replace-cross`` (a new version). On days without an announcement
(weekends, holidays) the channel has no items.
"""

from __future__ import annotations

from datetime import date
from xml.etree.ElementTree import Element

from .arxiv_xml import (
    ARXIV_NS,
    announcement_abstract,
    arxiv_id_and_version,
    category_list,
    child_text,
    read_xml,
    rfc822_date,
    split_authors,
    too_deep_is_an_error,
)
from .base import ParsedPage, ParsedPaper, ParseError

__all__ = ["parse"]

_DC = "{http://purl.org/dc/elements/1.1/}"


def parse(text: str, *, source: str, today: date) -> ParsedPage:
    """Parse an announcement feed into a :class:`ParsedPage` of format ``"arxiv_rss"``.
    ``page_date`` is the channel's ``pubDate`` (the announcement day); each paper's
    ``published_on`` is its item's ``pubDate``, the day it was announced. ``today`` is
    accepted for the common signature.

    Raises :class:`ParseError` for XML that is not well-formed or is refused, a root
    that is not ``<rss>`` with a ``<channel>``, an item without an arXiv id or title
    (named by its index), and a channel without items (an empty announcement day).
    """
    del today
    root = read_xml(text, source=source)
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ParseError(
            f"expected an RSS <rss> feed with a <channel>, found <{root.tag}>", source=source
        )
    page_date = rfc822_date(child_text(channel, "pubDate") or child_text(channel, "lastBuildDate"))
    items = channel.findall("item")
    if not items:
        raise ParseError(
            "no items: an empty announcement day"
            + (f" ({page_date:%a %d %b %Y})" if page_date else "")
            + ": arXiv announces nothing at weekends and on holidays",
            source=source,
        )
    with too_deep_is_an_error(source):
        papers = [_paper(item, index, source) for index, item in enumerate(items)]
    return ParsedPage(format="arxiv_rss", papers=papers, page_date=page_date)


def _paper(item: Element, index: int, source: str) -> ParsedPaper:
    announced_id, announce_type, abstract = announcement_abstract(child_text(item, "description"))
    arxiv_id, version = None, None
    for raw in (announced_id, child_text(item, "guid"), child_text(item, "link")):
        if raw:
            arxiv_id, version = arxiv_id_and_version(raw)
            if arxiv_id:
                break
    if arxiv_id is None:
        raise ParseError(
            f"item {index}: no arXiv id in its link, guid or description", source=source
        )
    title = child_text(item, "title")
    if not title:
        raise ParseError(f"item {index} ({arxiv_id}): empty <title>", source=source)
    authors = split_authors(child_text(item, _DC + "creator"))
    return ParsedPaper(
        title=title,
        abstract=abstract,
        arxiv_id=arxiv_id,
        authors=authors,
        authors_count=len(authors) or None,
        published_on=rfc822_date(child_text(item, "pubDate")),
        categories=category_list([c.text or "" for c in item.findall("category")]),
        version=version,
        announce_type=child_text(item, ARXIV_NS + "announce_type").lower() or announce_type,
    )
