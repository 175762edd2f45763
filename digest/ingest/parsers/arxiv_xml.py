"""What the three arXiv parsers share: reading XML safely, and arXiv's identifiers.

XML is read with the standard library's ElementTree (expat, in C) through
``defusedxml`` (https://github.com/tiran/defusedxml), which refuses what a hostile or
broken server could use against us: a document type declaration (so no entity
expansion "billion laughs" bomb and no external entity that reads a local file or URL)
and external references. arXiv's feeds never carry a DTD, so refusing every one costs
nothing. lxml would be as fast but is a large native dependency with its own safety
switches to get right; feedparser is lenient by design and would turn a truncated
announcement into a partial one, where a clear error is wanted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from email.utils import parsedate_to_datetime
from xml.etree.ElementTree import Element
from xml.etree.ElementTree import ParseError as XMLSyntaxError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from .base import ParseError, normalise_arxiv_id
from .hf_json import clean_text

__all__ = [
    "ARXIV_NS",
    "ATOM_NS",
    "announcement_abstract",
    "arxiv_id_and_version",
    "category_list",
    "child_text",
    "read_xml",
    "rfc822_date",
    "split_authors",
    "too_deep_is_an_error",
]

ATOM_NS = "{http://www.w3.org/2005/Atom}"
ARXIV_NS = "{http://arxiv.org/schemas/atom}"

# An arXiv identifier with an optional version, anywhere in a URL or OAI identifier:
# new style YYMM.NNNN(N), old style archive(.XX)/YYMMNNN
# (https://info.arxiv.org/help/arxiv_identifier.html).
_ID_IN_TEXT = re.compile(r"(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?$", re.I)
# The announcement feeds open each description with the id and announcement type:
# "arXiv:2405.07001v1 Announce Type: new \nAbstract: ..." (https://info.arxiv.org/help/rss.html).
_ANNOUNCED = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?(?P<rest>.*)$",
    re.S,
)
_AUTHOR_SPLIT = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+")
_CATEGORY = re.compile(r"^[A-Za-z][A-Za-z\-]*(?:\.[A-Za-z][A-Za-z\-]*)?$")


def read_xml(text: str, *, source: str) -> Element:
    """The root element of ``text``. Raises :class:`ParseError` for XML that is not
    well-formed (``line`` is where expat stopped, e.g. the end of a truncated page) and
    for a document type declaration, entity declaration or external reference."""
    try:
        return fromstring(text, forbid_dtd=True)
    except XMLSyntaxError as exc:
        line, _column = exc.position
        raise ParseError(f"not well-formed XML: {exc.msg}", source=source, line=line) from None
    except DefusedXmlException as exc:
        raise ParseError(
            f"refused XML: {type(exc).__name__} (feeds carry no DTD or entities)", source=source
        ) from None


@contextmanager
def too_deep_is_an_error(source: str) -> Iterator[None]:
    """Turn a ``RecursionError`` (ElementTree walks nested elements recursively) into a
    :class:`ParseError`: a feed nested thousands of levels deep is broken or hostile."""
    try:
        yield
    except RecursionError:
        raise ParseError("XML nested too deeply to read", source=source) from None


def child_text(element: Element, tag: str) -> str:
    """The text of ``element``'s first child ``tag``, every run of white space collapsed
    to one space and trimmed; ``""`` when there is none. (XML text holds no NUL or lone
    surrogate, so :func:`~.hf_json.clean_text`'s regular expressions are not needed.)"""
    child = element.find(tag)
    if child is None:
        return ""
    text = child.text or "" if len(child) == 0 else "".join(child.itertext())
    return " ".join(text.split())


def arxiv_id_and_version(raw: str) -> tuple[str | None, int | None]:
    """``("2405.01234", 2)`` from ``http://arxiv.org/abs/2405.01234v2``,
    ``oai:arXiv.org:2405.01234v2`` or ``2405.01234v2``; the version is ``None`` when not
    written, the id ``None`` when ``raw`` holds none."""
    m = _ID_IN_TEXT.search(raw.strip())
    if not m:
        return None, None
    return normalise_arxiv_id(m.group(1)), int(m.group(2)) if m.group(2) else None


def announcement_abstract(description: str) -> tuple[str, str, str]:
    """``(arXiv id with version, announce type, abstract)`` from an announcement
    description; ``("", "", description)`` when it does not open that way."""
    m = _ANNOUNCED.match(description)
    if not m:
        return "", "", clean_text(description)
    return m["id"], m["type"].lower(), clean_text(m["rest"])


def split_authors(names: str) -> tuple[str, ...]:
    """``"Ada Lovelace, Alan Turing and Grace Hopper"`` → the three names."""
    return tuple(n for n in (clean_text(x) for x in _AUTHOR_SPLIT.split(clean_text(names))) if n)


def category_list(raw: list[str]) -> tuple[str, ...]:
    """Distinct arXiv categories in the order given (the primary first); values that
    are not category names (free text some feeds put in ``<category>``) are dropped."""
    seen: dict[str, None] = {}
    for value in raw:
        for name in value.split():
            if _CATEGORY.match(name) and len(name) <= 40:
                seen.setdefault(name, None)
    return tuple(seen)


def rfc822_date(value: str) -> date | None:
    """The date of an RFC 822 date-time (``"Tue, 14 May 2024 00:00:00 -0400"``) as
    written, or ``None``."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).date()
    except (TypeError, ValueError, IndexError):
        return None
