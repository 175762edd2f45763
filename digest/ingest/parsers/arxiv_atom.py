"""Parse the arXiv API's Atom feed, and the Atom form of the announcement feed.

Source format (https://info.arxiv.org/help/api/user-manual.html, section 5.2):
``GET https://export.arxiv.org/api/query?search_query=cat:cs.CL&start=0&max_results=100``
answers with an Atom 1.0 ``<feed>`` holding OpenSearch ``totalResults``, ``startIndex``
and ``itemsPerPage``, and one ``<entry>`` per paper::

    <entry>
      <id>http://arxiv.org/abs/2405.01234v2</id>
      <published>2024-05-02T12:00:00Z</published>  (v1)   <updated>…</updated> (this version)
      <title>…</title>  <summary>…</summary>  <author><name>…</name></author>…
      <arxiv:comment>…</arxiv:comment>  <arxiv:journal_ref>…</arxiv:journal_ref>
      <arxiv:doi>…</arxiv:doi>  <link title="pdf" rel="related" href="…/pdf/2405.01234v2"/>
      <arxiv:primary_category term="cs.CL"/>  <category term="cs.CL"/> <category term="cs.LG"/>
    </entry>

An error is an entry whose id is ``http://arxiv.org/api/errors#…`` with the message in
its summary. The announcement feed's Atom form (``https://rss.arxiv.org/atom/cs.CL``)
has the same entries with ``<arxiv:announce_type>`` and the RSS-style summary
(:func:`~.arxiv_xml.announcement_abstract`), so this parser reads it too.
"""

from __future__ import annotations

from datetime import date
from xml.etree.ElementTree import Element

from .arxiv_xml import (
    ARXIV_NS,
    ATOM_NS,
    announcement_abstract,
    arxiv_id_and_version,
    category_list,
    child_text,
    read_xml,
    too_deep_is_an_error,
)
from .base import Paging, ParsedPage, ParsedPaper, ParseError
from .hf_json import parse_iso_date

__all__ = ["parse"]

_OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
_ERROR_ID = "arxiv.org/api/errors"


def parse(text: str, *, source: str, today: date) -> ParsedPage:
    """Parse an arXiv Atom feed into a :class:`ParsedPage` of format ``"arxiv_api"``,
    with its :class:`Paging` (OpenSearch elements) when present. ``page_date`` is the
    feed's ``<updated>`` date. ``today`` is accepted for the common signature.

    Raises :class:`ParseError` for XML that is not well-formed or is refused (see
    :func:`~.arxiv_xml.read_xml`), a root that is not an Atom ``<feed>``, an arXiv API
    error entry (its message), an entry without an arXiv id or a title (named by its
    index), and a feed without entries (a query that matched nothing, or a page past
    the end).
    """
    del today
    root = read_xml(text, source=source)
    if root.tag != ATOM_NS + "feed":
        raise ParseError(f"expected an Atom <feed>, found <{_local(root.tag)}>", source=source)
    paging = Paging(
        total=_int(child_text(root, _OPENSEARCH + "totalResults")),
        start=_int(child_text(root, _OPENSEARCH + "startIndex")),
        per_page=_int(child_text(root, _OPENSEARCH + "itemsPerPage")),
    )
    with too_deep_is_an_error(source):
        papers = [
            _paper(entry, index, source)
            for index, entry in enumerate(root.findall(ATOM_NS + "entry"))
        ]
    if not papers:
        raise ParseError(
            "no entries: the query matched no papers"
            + (f" (totalResults {paging.total}, start {paging.start})" if paging.total else "")
            + ", or an empty announcement day",
            source=source,
        )
    return ParsedPage(
        format="arxiv_api",
        papers=papers,
        page_date=parse_iso_date(child_text(root, ATOM_NS + "updated")),
        paging=paging if paging.total is not None else None,
    )


def _paper(entry: Element, index: int, source: str) -> ParsedPaper:
    raw_id = child_text(entry, ATOM_NS + "id")
    if _ERROR_ID in raw_id:
        raise ParseError(
            f"arXiv API error: {child_text(entry, ATOM_NS + 'summary') or raw_id}", source=source
        )
    arxiv_id, version = arxiv_id_and_version(raw_id)
    if arxiv_id is None:
        raise ParseError(f"entry {index}: no arXiv id in <id>{raw_id[:80]!r}", source=source)
    title = child_text(entry, ATOM_NS + "title")
    if not title:
        raise ParseError(f"entry {index} ({arxiv_id}): empty <title>", source=source)
    announced_id, announce_type, abstract = announcement_abstract(
        child_text(entry, ATOM_NS + "summary")
    )
    if version is None and announced_id:
        version = arxiv_id_and_version(announced_id)[1]
    announce_type = child_text(entry, ARXIV_NS + "announce_type").lower() or announce_type
    primary = entry.find(ARXIV_NS + "primary_category")
    categories = [primary.get("term", "")] if primary is not None else []
    categories += [c.get("term", "") for c in entry.findall(ATOM_NS + "category")]
    authors = tuple(
        name for a in entry.findall(ATOM_NS + "author") if (name := child_text(a, ATOM_NS + "name"))
    )
    pdf_url = ""
    for link in entry.findall(ATOM_NS + "link"):
        if link.get("title") == "pdf" or link.get("type") == "application/pdf":
            pdf_url = link.get("href", "")
            break
    return ParsedPaper(
        title=title,
        abstract=abstract,
        arxiv_id=arxiv_id,
        authors=authors,
        authors_count=len(authors) or None,
        published_on=parse_iso_date(child_text(entry, ATOM_NS + "published")),
        categories=category_list(categories),
        comment=child_text(entry, ARXIV_NS + "comment"),
        journal_ref=child_text(entry, ARXIV_NS + "journal_ref"),
        doi=child_text(entry, ARXIV_NS + "doi"),
        version=version,
        announce_type=announce_type,
        pdf_url=pdf_url,
    )


def _int(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
