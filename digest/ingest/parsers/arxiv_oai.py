"""Parse an arXiv OAI-PMH ``ListRecords`` answer in the ``arXiv`` or ``arXivRaw`` format.

Source format: OAI-PMH 2.0 (https://www.openarchives.org/OAI/openarchivesprotocol.html,
sections 3.5 and 4.5) as arXiv serves it (https://info.arxiv.org/help/oa/index.html):
``GET https://export.arxiv.org/oai2?verb=ListRecords&metadataPrefix=arXiv&set=cs
&from=2024-05-13`` answers with ``<OAI-PMH><ListRecords>`` of ``<record>`` elements and
a ``<resumptionToken>`` while the list continues (empty on the last page); a harvest
goes on with ``?verb=ListRecords&resumptionToken=…``. Records with
``<header status="deleted">`` carry no metadata and are skipped.

``metadataPrefix=arXiv`` (http://arxiv.org/OAI/arXiv/): ``id``, ``created`` (v1 date),
``authors/author/(keyname, forenames, suffix)``, ``title``, ``categories`` (space
separated, primary first), ``comments``, ``journal-ref``, ``doi``, ``abstract``.
``metadataPrefix=arXivRaw`` (http://arxiv.org/OAI/arXivRaw/): the same with
``authors`` as one string and a ``<version version="vN"><date>…</date></version>`` per
version.

Errors are ``<error code="…">message</error>``: ``badResumptionToken`` (expired or
wrong token), ``noRecordsMatch`` (nothing in that range and set), ``badArgument``…
"""

from __future__ import annotations

import re
from datetime import date
from xml.etree.ElementTree import Element

from .arxiv_xml import (
    arxiv_id_and_version,
    category_list,
    child_text,
    read_xml,
    rfc822_date,
    split_authors,
    too_deep_is_an_error,
)
from .base import Paging, ParsedPage, ParsedPaper, ParseError
from .hf_json import clean_text, parse_iso_date

__all__ = ["parse"]

_OAI = "{http://www.openarchives.org/OAI/2.0/}"
_ARXIV = "{http://arxiv.org/OAI/arXiv/}"
_RAW = "{http://arxiv.org/OAI/arXivRaw/}"
_VERSION = re.compile(r"^v(\d+)$")


def parse(text: str, *, source: str, today: date) -> ParsedPage:
    """Parse one ``ListRecords`` page into a :class:`ParsedPage` of format
    ``"arxiv_oai"`` with :class:`Paging` holding the resumption token (``None`` on the
    last page) and ``completeListSize``. ``today`` is accepted for the common signature.

    Raises :class:`ParseError` for XML that is not well-formed or is refused, a root
    that is not ``<OAI-PMH>``, an OAI-PMH error (``"OAI-PMH error badResumptionToken:
    …"``), a record in another metadata format or without an id or title, and a page
    with no records but deleted ones.
    """
    del today
    root = read_xml(text, source=source)
    if root.tag != _OAI + "OAI-PMH":
        raise ParseError(f"expected an <OAI-PMH> response, found <{root.tag}>", source=source)
    errors = root.findall(_OAI + "error")
    if errors:
        raise ParseError(
            "; ".join(
                f"OAI-PMH error {e.get('code', '?')}: {clean_text(e.text or '')}" for e in errors
            ),
            source=source,
        )
    listing = root.find(_OAI + "ListRecords")
    if listing is None:
        raise ParseError("expected a <ListRecords> answer", source=source)
    papers = []
    with too_deep_is_an_error(source):
        for index, record in enumerate(listing.findall(_OAI + "record")):
            header = record.find(_OAI + "header")
            if header is not None and header.get("status") == "deleted":
                continue
            metadata = record.find(_OAI + "metadata")
            content = metadata.find("*") if metadata is not None else None
            if content is None:
                raise ParseError(f"record {index}: no <metadata>", source=source)
            papers.append(_paper(content, index, source))
    token_element = listing.find(_OAI + "resumptionToken")
    paging = None
    if token_element is not None:
        size = token_element.get("completeListSize", "")
        cursor = token_element.get("cursor", "")
        paging = Paging(
            total=int(size) if size.isascii() and size.isdigit() else None,
            start=int(cursor) if cursor.isascii() and cursor.isdigit() else None,
            token=(token_element.text or "").strip() or None,
        )
    if not papers:
        raise ParseError("no records (only deleted ones)", source=source)
    return ParsedPage(format="arxiv_oai", papers=papers, paging=paging)


def _paper(meta: Element, index: int, source: str) -> ParsedPaper:
    if meta.tag == _ARXIV + "arXiv":
        ns = _ARXIV
        authors = tuple(
            name
            for a in meta.findall(f"{ns}authors/{ns}author")
            if (
                name := " ".join(
                    part
                    for part in (
                        child_text(a, ns + "forenames"),
                        child_text(a, ns + "keyname"),
                        child_text(a, ns + "suffix"),
                    )
                    if part
                )
            )
        )
        version = None
        published = parse_iso_date(child_text(meta, ns + "created"))
    elif meta.tag == _RAW + "arXivRaw":
        ns = _RAW
        authors = split_authors(child_text(meta, ns + "authors"))
        versions = [
            (int(m.group(1)), el)
            for el in meta.findall(ns + "version")
            if (m := _VERSION.match(el.get("version", "")))
        ]
        version = max((n for n, _ in versions), default=None)
        first = min(versions, key=lambda v: v[0], default=None)
        published = rfc822_date(child_text(first[1], ns + "date")) if first else None
    else:
        raise ParseError(
            f"record {index}: metadata <{meta.tag}> is neither arXiv nor arXivRaw", source=source
        )
    raw_id = child_text(meta, ns + "id")
    arxiv_id = arxiv_id_and_version(raw_id)[0]
    if arxiv_id is None:
        raise ParseError(f"record {index}: no arXiv id in <id>{raw_id[:80]!r}", source=source)
    title = child_text(meta, ns + "title")
    if not title:
        raise ParseError(f"record {index} ({arxiv_id}): empty <title>", source=source)
    return ParsedPaper(
        title=title,
        abstract=child_text(meta, ns + "abstract"),
        arxiv_id=arxiv_id,
        authors=authors,
        authors_count=len(authors) or None,
        published_on=published,
        categories=category_list([child_text(meta, ns + "categories")]),
        comment=child_text(meta, ns + "comments"),
        journal_ref=child_text(meta, ns + "journal-ref"),
        doi=child_text(meta, ns + "doi"),
        version=version,
    )
