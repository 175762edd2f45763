"""Decoding page bytes and telling the page formats apart (digest.ingest.parsers.detect)."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from digest.ingest.parsers.base import ParseError
from digest.ingest.parsers.detect import decode_page, detect_format

ROOT = Path(__file__).resolve().parent.parent
TEXT_PAGE = ROOT / "examples" / "pages" / "000_10bdf60bb6b29d6a.txt"
HTML_PAGE = ROOT / "tests" / "fixtures" / "html" / "daily_2025-03-11.html"
JSON_PAGE = ROOT / "tests" / "fixtures" / "json" / "daily_papers_2025-03-11.json"


def test_utf8_pages_decode_as_they_are() -> None:
    data = HTML_PAGE.read_bytes()

    assert decode_page(data, source="daily.html") == data.decode("utf-8")


@pytest.mark.parametrize(
    ("bom", "codec"),
    [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
    ],
)
def test_a_byte_order_mark_picks_the_encoding_and_is_dropped(bom: bytes, codec: str) -> None:
    text = "Mar 11\n\nDINO-X: Détection à monde ouvert — 物体\n"

    assert decode_page(bom + text.encode(codec), source="bom.txt") == text


def test_a_declared_charset_is_used_when_the_bytes_are_not_utf8() -> None:
    text = '<html><head><meta charset="koi8-r"></head><body><p>Привет, мир</p></body></html>'

    assert decode_page(text.encode("koi8-r"), source="ru.html") == text


def test_the_http_equiv_and_xml_declarations_count_too() -> None:
    http_equiv = (
        '<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"><p>論文のまとめ</p>'
    )
    xml = '<?xml version="1.0" encoding="ISO-8859-7"?><feed><title>Δελτίο</title></feed>'

    assert decode_page(http_equiv.encode("shift_jis"), source="ja.html") == http_equiv
    assert decode_page(xml.encode("iso-8859-7"), source="el.xml") == xml


def test_latin1_labels_and_undeclared_pages_fall_back_to_windows_1252() -> None:
    declared = '<meta charset="iso-8859-1"><p>“Quoted” café</p>'
    undeclared = "Mar 11\n\nA naïve “quoted” title\n"

    assert decode_page(declared.encode("cp1252"), source="l1.html") == declared
    assert decode_page(undeclared.encode("cp1252"), source="old.txt") == undeclared


def test_a_declared_python_only_codec_is_ignored() -> None:
    text = '<meta charset="hex"><p>café</p>'

    assert decode_page(text.encode("cp1252"), source="odd.html") == text


def test_bytes_no_encoding_fits_give_a_clear_error() -> None:
    # 0x81 and 0x8D are not UTF-8 lead bytes and are unassigned in Windows-1252.
    data = b"<p>caf\xe9 \x81\x8d</p>"

    with pytest.raises(ParseError) as raised:
        decode_page(data, source="mystery.html")

    assert raised.value.message == (
        "cannot decode: not UTF-8 (bad byte at offset 6), nor Windows-1252"
    )
    assert raised.value.line is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            '<meta charset="utf-8"><p>caf\xe9</p>'.encode("latin-1"),
            "invalid UTF-8 (bad byte at offset 28) in a page that declares UTF-8",
        ),
        (
            "Mar 11\n\nDétection — ".encode() + b"\xff\n",
            "invalid UTF-8 (bad byte at offset 23) in a page that is otherwise UTF-8",
        ),
    ],
    ids=["declared", "undeclared"],
)
def test_a_damaged_utf8_page_is_not_reread_as_windows_1252(data: bytes, expected: str) -> None:
    with pytest.raises(ParseError) as raised:
        decode_page(data, source="damaged.html")

    assert raised.value.message == expected


def test_a_bom_that_lies_is_an_error() -> None:
    with pytest.raises(ParseError, match="utf-8 byte-order mark but is not utf-8"):
        decode_page(codecs.BOM_UTF8 + b"caf\xe9", source="liar.txt")


@pytest.mark.parametrize("data", [b"", b" \r\n\t \n"], ids=["empty", "blank"])
def test_an_empty_page_is_an_error(data: bytes) -> None:
    with pytest.raises(ParseError) as raised:
        decode_page(data, source="empty.txt")

    assert raised.value.message.startswith("empty page")
    assert raised.value.source == "empty.txt"


def test_an_oversized_page_is_refused_before_decoding() -> None:
    with pytest.raises(ParseError) as raised:
        decode_page(b"a" * 1025, source="big.txt", max_bytes=1024)

    assert raised.value.message == "page is 1,025 bytes, more than the 1,024-byte limit"
    assert decode_page(b"a" * 1024, source="fits.txt", max_bytes=1024) == "a" * 1024


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
        bytes(range(1, 32)) * 20 + b"some text",
    ],
    ids=["png", "zip", "control-characters"],
)
def test_binary_data_is_refused(data: bytes) -> None:
    with pytest.raises(ParseError, match="binary data, not a page"):
        decode_page(data, source="upload.bin")


def test_a_stray_control_character_does_not_make_a_page_binary() -> None:
    text = TEXT_PAGE.read_text(encoding="utf-8").replace("Mar 11", "Mar\x0b11", 1)

    assert decode_page(text.encode("utf-8"), source="page.txt") == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"paper": {}}]', "json"),
        ('\n\n  {"dailyPapers": []}', "json"),
        ("<!DOCTYPE html><html></html>", "html"),
        ("<!doctype html>", "html"),
        ("\ufeff  <html lang=en>", "html"),
        ("<!-- saved page -->\n<div>", "html"),
        ('<?xml version="1.0"?><html/>', "html"),
        ("<div class='SVELTE_HYDRATER'>", "html"),
        ("<article>", "html"),
        ("new\n\nGet trending papers in your email inbox!\n", "text"),
        ("<3 papers today\n", "text"),
        ("Mar 11\n\n<html> in a title\n", "text"),
        ("", "text"),
    ],
)
def test_detect_format_looks_at_how_the_page_starts(text: str, expected: str) -> None:
    assert detect_format(text) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [(TEXT_PAGE, "text"), (HTML_PAGE, "html"), (JSON_PAGE, "json")],
    ids=["text", "html", "json"],
)
def test_detect_format_recognises_each_kind_of_saved_page(path: Path, expected: str) -> None:
    text = decode_page(path.read_bytes(), source=path.name)

    assert detect_format(text) == expected
