"""Turn fetched or uploaded bytes into page text, and tell which parser reads it."""

from __future__ import annotations

import codecs
import re

from .base import ParseError

__all__ = ["decode_page", "detect_format", "MAX_PAGE_BYTES"]

MAX_PAGE_BYTES = 20 * 1024 * 1024
"""Largest page accepted, in bytes. A daily papers page is well under 2 MiB."""

# Longest BOMs first: the UTF-32-LE BOM begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Where a page may declare its encoding: <meta charset=...>, the http-equiv form
# (HTML Living Standard, "Specifying the document's character encoding") and the XML
# declaration (XML 1.0, section 4.3.3). Browsers only look at the first 1024 bytes; we
# allow a little more for pages with long comments before <head>.
_DECLARED = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._-]+)"""
    rb"""|<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)""",
    re.I,
)
_DECLARATION_WINDOW = 4096
# C0 controls other than tab, line feed, form feed and carriage return, DEL, and the C1
# controls: none appear in real text, so their share tells text from binary.
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_MAX_CONTROL_SHARE = 0.01
# The encodings of the WHATWG Encoding Standard (https://encoding.spec.whatwg.org/) that
# Python has, by Python codec name; any label codecs.lookup resolves to one of them works.
_WEB_ENCODINGS = frozenset(
    codecs.lookup(label).name
    for label in (
        "utf-8", "ibm866", "iso-8859-2", "iso-8859-3", "iso-8859-4", "iso-8859-5",
        "iso-8859-6", "iso-8859-7", "iso-8859-8", "iso-8859-10", "iso-8859-13",
        "iso-8859-14", "iso-8859-15", "iso-8859-16", "koi8-r", "koi8-u", "mac-roman",
        "mac-cyrillic", "cp874", "windows-1250", "windows-1251", "windows-1252",
        "windows-1253", "windows-1254", "windows-1255", "windows-1256", "windows-1257",
        "windows-1258", "gbk", "gb2312", "gb18030", "big5", "euc-jp", "iso-2022-jp",
        "shift_jis", "cp932", "euc-kr", "latin-1", "ascii",
    )
)  # fmt: skip
# A well-formed multi-byte UTF-8 sequence (RFC 3629 section 4, without the overlong and
# surrogate exclusions). Windows-1252 text almost never contains one by chance.
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
# The first element of an XML feed, after the declaration, comments and processing
# instructions: the root names the arXiv format (a Hugging Face page starts with <html>
# or <!doctype html>, never with one of these).
# (A feed with a DTD is still sent to its parser, which refuses it by name.)
_XML_ROOT = re.compile(
    r"\s*(?:(?:<\?[^>]*\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(?:\[.*?\])?\s*>)\s*)*<(OAI-PMH|rss|feed)[\s>]",
    re.S,
)
_XML_FORMATS = {"OAI-PMH": "arxiv_oai", "rss": "arxiv_rss", "feed": "arxiv_api"}
_TAG_START = re.compile(r"<(?:!doctype|html|head|body|!--|\?xml|[a-z][a-z0-9-]*[\s/>])", re.I)


def decode_page(data: bytes, *, source: str, max_bytes: int = MAX_PAGE_BYTES) -> str:
    """Decode a page's bytes to text.

    Tries, in order: the byte-order mark (UTF-8, UTF-16, UTF-32), UTF-8, the charset the
    page declares in a ``<meta>`` tag or XML declaration, then Windows-1252 — each only
    when it decodes every byte. A page that declares UTF-8, or declares nothing and
    holds UTF-8 sequences, is not re-read in another charset when a byte is wrong. A
    leading BOM is removed.

    Raises :class:`ParseError` (``line`` is ``None``) when ``data`` is empty or only
    white space, longer than ``max_bytes``, binary (NUL bytes outside a UTF-16/32 page,
    or more than 1% control characters), damaged UTF-8, or in no encoding we can
    decode cleanly.
    """
    if not data:
        raise ParseError("empty page", source=source)
    if len(data) > max_bytes:
        raise ParseError(
            f"page is {len(data):,} bytes, more than the {max_bytes:,}-byte limit",
            source=source,
        )
    text = _decode(data, source=source)
    if not text.strip():
        raise ParseError("empty page (only white space)", source=source)
    controls = sum(1 for _ in _CONTROL.finditer(text))
    if controls > len(text) * _MAX_CONTROL_SHARE:
        raise ParseError(
            f"binary data, not a page ({controls:,} control characters in {len(text):,})",
            source=source,
        )
    return text


def detect_format(text: str) -> str:
    """Which parser reads ``text``: ``"json"`` when it starts with ``[`` or ``{``; for
    markup, by its first element (within the first 4 KiB): ``<OAI-PMH`` is
    ``"arxiv_oai"``, ``<rss`` is ``"arxiv_rss"``, an Atom ``<feed`` is ``"arxiv_api"``,
    anything else ``"html"``; else ``"text"`` (the saved text pages). Leading white
    space and a BOM are ignored."""
    head = text.lstrip("\ufeff \t\r\n\f\v")[:256]
    if head[:1] in ("[", "{"):
        return "json"
    if _TAG_START.match(head):
        root = _XML_ROOT.match(text.lstrip("\ufeff")[:_DECLARATION_WINDOW])
        if root is not None:
            return _XML_FORMATS[root.group(1)]
        return "html"
    return "text"


def _decode(data: bytes, *, source: str) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise ParseError(
                    f"starts with a {encoding} byte-order mark but is not {encoding} "
                    f"(bad byte at offset {exc.start + len(bom)})",
                    source=source,
                ) from exc

    if b"\x00" in data:
        # Without a BOM, NUL bytes mean a binary file (or BOM-less UTF-16, which no
        # papers page is served as).
        raise ParseError("binary data, not a page (contains NUL bytes)", source=source)

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf8_error = exc

    declared = _declared_encoding(data)
    if declared == "utf-8" or (declared is None and _UTF8_SEQUENCE.search(data)):
        # A UTF-8 page with a damaged byte: decoding it all as Windows-1252 would
        # "succeed" and turn every accent and dash on the page into mojibake. (Bytes in
        # a declared multi-byte charset such as Shift_JIS often look like UTF-8.)
        raise ParseError(
            f"invalid UTF-8 (bad byte at offset {utf8_error.start}) in a page that "
            + ("declares UTF-8" if declared == "utf-8" else "is otherwise UTF-8"),
            source=source,
        )
    tried = ["utf-8"]
    for charset in (declared, "cp1252"):
        if not charset or charset in tried:
            continue
        tried.append(charset)
        try:
            return data.decode(charset)
        except UnicodeDecodeError:
            continue
    raise ParseError(
        f"cannot decode: not UTF-8 (bad byte at offset {utf8_error.start})"
        + (f", nor its declared charset {declared}" if declared else "")
        + ", nor Windows-1252",
        source=source,
    )


def _declared_encoding(data: bytes) -> str | None:
    """The codec name of the charset the page declares, or ``None`` when it declares
    none, names an unknown one, or names UTF-16/32 (a page we could read as ASCII cannot
    be UTF-16; the HTML standard treats that declaration as UTF-8)."""
    m = _DECLARED.search(data[:_DECLARATION_WINDOW])
    if not m:
        return None
    label = (m.group(1) or m.group(2)).decode("ascii").lower()
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    if name not in _WEB_ENCODINGS:
        return None
    # The HTML standard decodes pages labelled Latin-1 or ASCII as Windows-1252.
    if name in ("latin-1", "iso8859-1", "ascii"):
        return "cp1252"
    return name
