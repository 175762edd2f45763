"""Every parser, fed random and damaged pages, returns a ParsedPage or raises ParseError.

The damage is what real ingestion meets: pages cut off mid-download, lines lost or
repeated by a bad save, bytes flipped on the way. Nothing here may crash with any other
exception, since the ingest job reports a ParseError per page and carries on.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.ingest.parsers import arxiv_atom, arxiv_oai, arxiv_rss, hf_json
from digest.ingest.parsers import html as html_parser
from digest.ingest.parsers.base import ParsedPage, ParsedPaper, ParseError
from digest.ingest.parsers.detect import decode_page, detect_format

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SEEDS = sorted(
    [
        *(ROOT / "examples" / "pages").glob("*.txt"),
        *(FIXTURES / "html").glob("*.html"),
        *(FIXTURES / "json").glob("*.json"),
        *(FIXTURES / "arxiv").glob("*.xml"),
    ]
)
SEED_BYTES = {path.name: path.read_bytes() for path in SEEDS}
TODAY = date(2025, 3, 12)
SOURCE = "fuzz-page"

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Parser = Callable[..., ParsedPage]


def text_parser() -> Parser:
    """The saved-text parser, imported when first needed so that the other parsers'
    tests run on a tree that does not have it yet."""
    try:
        module = importlib.import_module("digest.ingest.parsers.text")
    except ModuleNotFoundError as exc:
        if exc.name != "digest.ingest.parsers.text":
            raise
        pytest.skip("digest.ingest.parsers.text is not written yet")
    parse: Parser = module.parse
    return parse


def parser_for(fmt: str) -> Parser:
    return {
        "html": html_parser.parse,
        "json": hf_json.parse,
        "arxiv_api": arxiv_atom.parse,
        "arxiv_rss": arxiv_rss.parse,
        "arxiv_oai": arxiv_oai.parse,
    }.get(fmt) or text_parser()


def check_outcome(parse: Parser, text: str, fmt: str) -> ParsedPage | None:
    """Run ``parse`` and hold it to the parser contract; the page, or ``None`` when it
    raised ParseError."""
    try:
        page = parse(text, source=SOURCE, today=TODAY)
    except ParseError as exc:
        assert exc.source == SOURCE
        assert exc.line is None or (isinstance(exc.line, int) and exc.line >= 1)
        assert exc.message
        return None
    assert isinstance(page, ParsedPage)
    assert page.format == fmt
    assert page.page_date is None or isinstance(page.page_date, date)
    for paper in page.papers:
        assert isinstance(paper, ParsedPaper)
        assert isinstance(paper.title, str) and isinstance(paper.abstract, str)
        assert paper.upvotes is None or (isinstance(paper.upvotes, int) and paper.upvotes >= 0)
    return page


def check_own_parser(parse: Parser, text: str, fmt: str) -> None:
    """The HTML and JSON parsers promise more: a title on every paper and text a
    database column can store."""
    page = check_outcome(parse, text, fmt)
    for paper in page.papers if page else ():
        assert paper.title.strip()
        for value in (paper.title, paper.abstract, *paper.authors, *paper.ai_keywords):
            assert "\x00" not in value
            value.encode("utf-8")  # no lone surrogates


# --- damage -----------------------------------------------------------------------------


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed page (name, bytes) after one to six random edits."""
    name = draw(st.sampled_from(sorted(SEED_BYTES)))
    lines = SEED_BYTES[name].splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["delete", "duplicate", "swap", "truncate", "flip", "insert"]))
        if edit == "delete":
            del lines[i]
        elif edit == "duplicate":
            lines.insert(i, lines[i])
        elif edit == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif edit == "truncate":
            # Cut the page off inside line i, as an interrupted download does.
            cut = draw(st.integers(0, len(lines[i])))
            lines = [*lines[:i], lines[i][:cut]]
        elif edit == "flip" and lines[i]:
            line = bytearray(lines[i])
            k = draw(st.integers(0, len(line) - 1))
            line[k] ^= 1 << draw(st.integers(0, 7))
            lines[i] = bytes(line)
        elif edit == "insert":
            lines.insert(i, draw(st.binary(max_size=40)))
    return name, b"".join(lines)


def seed_format(name: str) -> str:
    if name.endswith(".xml"):  # arXiv fixtures are named after their service
        return {"api": "arxiv_api", "rss": "arxiv_rss", "oai": "arxiv_oai"}[name[:3]]
    return {".txt": "text", ".html": "html", ".json": "json"}[Path(name).suffix]


@FUZZ
@given(damaged())
def test_damaged_pages_parse_or_raise_parse_error(page: tuple[str, bytes]) -> None:
    name, data = page
    try:
        text = decode_page(data, source=SOURCE)
    except ParseError:
        return
    # Both the parser the page was written for and the one detection picks must cope.
    for fmt in {seed_format(name), detect_format(text)}:
        parse = parser_for(fmt)
        if fmt == "text":
            check_outcome(parse, text, fmt)
        else:
            check_own_parser(parse, text, fmt)


@FUZZ
@given(damaged())
def test_damaged_pages_decoded_leniently_still_parse_or_raise(page: tuple[str, bytes]) -> None:
    # Past decode_page's checks: control characters and U+FFFD reach the parsers too.
    name, data = page
    text = data.decode("utf-8", errors="replace")
    fmt = seed_format(name)
    if fmt == "text":
        check_outcome(parser_for(fmt), text, fmt)
    else:
        check_own_parser(parser_for(fmt), text, fmt)


# --- random input -----------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=2000))
def test_the_text_parser_takes_random_text(text: str) -> None:
    check_outcome(text_parser(), text, "text")


@FUZZ
@given(st.text(max_size=2000))
def test_the_html_parser_takes_random_text(text: str) -> None:
    check_own_parser(html_parser.parse, text, "html")


@FUZZ
@given(st.text(max_size=2000))
def test_the_json_parser_takes_random_text(text: str) -> None:
    check_own_parser(hf_json.parse, text, "json")


@FUZZ
@given(st.sampled_from(["arxiv_api", "arxiv_rss", "arxiv_oai"]), st.text(max_size=2000))
def test_the_arxiv_parsers_take_random_text(fmt: str, text: str) -> None:
    check_own_parser(parser_for(fmt), text, fmt)


@pytest.mark.parametrize(
    ("fmt", "start", "end"),
    [
        (
            "arxiv_api",
            '<feed xmlns="http://www.w3.org/2005/Atom"><entry>'
            "<id>http://arxiv.org/abs/2503.00001v1</id><title>",
            "</title></entry></feed>",
        ),
        (
            "arxiv_rss",
            "<rss><channel><item><link>https://arxiv.org/abs/2503.00001</link><title>",
            "</title></item></channel></rss>",
        ),
    ],
)
def test_the_arxiv_parsers_cope_with_xml_nested_deeply(fmt: str, start: str, end: str) -> None:
    # 50,000 levels of markup inside a title: read (or refused as nested too deeply),
    # never a crash.
    text = start + "<b>" * 50_000 + "x" + "</b>" * 50_000 + end
    page = check_outcome(parser_for(fmt), text, fmt)
    assert page is None or [p.title for p in page.papers] == ["x"]


# The API's own keys, so random objects often look like items and reach the field checks.
API_KEYS = (
    "paper id title summary upvotes publishedAt authors name ai_keywords githubRepo "
    "projectPage numComments dailyPapers date"
).split()
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(API_KEYS) | st.text(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@FUZZ
@given(JSON_VALUES)
def test_the_json_parser_takes_random_json(value: object) -> None:
    check_own_parser(hf_json.parse, json.dumps(value), "json")


@FUZZ
@given(JSON_VALUES, st.sampled_from(["DailyPapers", "PapersSearch"]))
def test_the_html_parser_takes_random_props(value: object, target: str) -> None:
    escaped = json.dumps(value).replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    text = f'<html><body><div data-target="{target}" data-props="{escaped}"></div></body></html>'
    check_own_parser(html_parser.parse, text, "html")


HTML_PIECES = st.sampled_from(
    [
        "<article>", "</article>", "<h3>", "</h3>", "<p>", "</p>", "<div>", "</div>",
        '<a href="/papers/2503.07365">', '<a href="/papers/2503.07365#community">', "</a>",
        '<a href="https://huggingface.co/papers/hep-th/9901001v2">', '<a href="/papers/">',
        '<div class="upvote">', '<label title="Upvote">', "<time datetime='2025-03-10'>",
        "<time datetime='2025-02-30'>", "12 authors", "1,204", "99999999999999999999",
        '<a href="https://github.com/org/repo">', '<link rel="canonical" href="/papers/date/',
        "2025-13-45", '">', "<!--", "-->", "<![CDATA[", "]]>", "<script>", "</script>",
        "&amp;", "&#0;", "&#x110000;", "\x00", "Title words", " ", "\n",
    ]
)  # fmt: skip


@FUZZ
@given(st.lists(HTML_PIECES | st.text(max_size=10), max_size=60))
def test_the_html_parser_takes_random_card_markup(pieces: list[str]) -> None:
    check_own_parser(html_parser.parse, "".join(pieces), "html")


# --- decoding ---------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4000))
def test_decode_page_takes_random_bytes(data: bytes) -> None:
    try:
        text = decode_page(data, source=SOURCE)
    except ParseError as exc:
        assert exc.source == SOURCE and exc.line is None
        return
    assert isinstance(text, str) and text.strip()
    assert detect_format(text) in ("text", "html", "json")


PAGE_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufeff")
    | st.sampled_from("\n\t "),
    max_size=2000,
).filter(str.strip)


@FUZZ
@given(PAGE_TEXT)
def test_decode_page_gives_back_any_utf8_page_unchanged(text: str) -> None:
    assert decode_page(text.encode("utf-8"), source=SOURCE) == text


@FUZZ
@given(st.integers(0, 63).flatmap(lambda n: st.tuples(st.just(n), st.binary(min_size=n + 1))))
def test_decode_page_refuses_anything_over_the_limit(case: tuple[int, bytes]) -> None:
    limit, data = case
    with pytest.raises(ParseError, match="more than the"):
        decode_page(data, source=SOURCE, max_bytes=limit)
