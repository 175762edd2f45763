"""The daily-papers JSON API parser (digest.ingest.parsers.hf_json)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from digest.ingest.parsers.base import ParsedPaper, ParseError
from digest.ingest.parsers.hf_json import parse

FIXTURES = Path(__file__).parent / "fixtures" / "json"
DAILY = FIXTURES / "daily_papers_2025-03-11.json"
SEARCH = FIXTURES / "papers_search_diffusion.json"
DAILY_URL = "https://huggingface.co/api/daily_papers?date=2025-03-11"
TODAY = date(2025, 3, 12)


def parse_items(items: object, source: str = "items.json"):  # type: ignore[no-untyped-def]
    return parse(json.dumps(items), source=source, today=TODAY)


def test_it_reads_every_paper_of_a_daily_response_in_order() -> None:
    page = parse(DAILY.read_text(), source=DAILY_URL, today=TODAY)

    assert page.format == "json"
    assert [p.arxiv_id for p in page.papers] == ["2503.07365", "2503.06749", "2503.05511"]
    assert page.papers[0] == ParsedPaper(
        title="Scaling Sparse Mixture-of-Experts Without Auxiliary Load-Balancing Losses",
        abstract=(
            "Sparse mixture-of-experts (MoE) models route each token to a few experts, but "
            "training them usually needs an auxiliary loss that keeps experts evenly loaded. "
            "We show that a bias-only router update removes the need for this loss and "
            "matches dense baselines at a third of the compute."
        ),
        arxiv_id="2503.07365",
        authors=("Mira Okonkwo", "Tomás Villanueva", "Hana Sato", "Priya Raman"),
        authors_count=4,
        published_on=date(2025, 3, 10),
        upvotes=87,
        ai_keywords=("mixture-of-experts", "router", "load balancing", "sparse models"),
        ai_summary=(
            "A bias-only router update trains sparse MoE models without load-balancing losses."
        ),
        github_repo="https://github.com/example-lab/moe-bias-router",
        project_page="",
        num_comments=5,
    )


def test_it_takes_the_page_date_from_the_request_url() -> None:
    text = DAILY.read_text()

    assert parse(text, source=DAILY_URL, today=TODAY).page_date == date(2025, 3, 11)
    trending = "https://huggingface.co/api/daily_papers?sort=trending&limit=50"
    assert parse(text, source=trending, today=TODAY).page_date is None
    assert parse(text, source=str(DAILY), today=TODAY).page_date is None


def test_it_prefers_the_papers_fields_and_falls_back_to_the_items() -> None:
    items = [
        {
            "paper": {"id": "2501.00001", "title": "Paper title", "publishedAt": "2025-01-02"},
            "title": "Item title",
            "publishedAt": "2025-01-05T08:00:00Z",
            "numComments": 4,
        },
        {
            "paper": {"id": "2501.00002", "title": None, "summary": "Only here."},
            "title": "Title on the item",
            "publishedAt": "2025-01-05T08:00:00Z",
        },
    ]

    first, second = parse_items(items).papers

    assert (first.title, first.published_on, first.num_comments) == (
        "Paper title",
        date(2025, 1, 2),
        4,
    )
    assert (second.title, second.abstract, second.published_on) == (
        "Title on the item",
        "Only here.",
        date(2025, 1, 5),
    )


def test_it_accepts_a_bare_paper_list_like_the_search_api() -> None:
    page = parse(SEARCH.read_text(), source="search.json", today=TODAY)

    assert [(p.arxiv_id, p.upvotes, p.num_comments) for p in page.papers] == [
        ("2503.05511", 12, None),
        ("2412.01821", 31, None),
    ]
    assert page.papers[1].title == "Latent Diffusion for Sparse-View 3D Reconstruction"
    assert page.papers[1].ai_keywords == ("latent diffusion", "3D reconstruction")


def test_it_accepts_the_page_props_object_with_its_date() -> None:
    props = {
        "date": "2025-03-11T00:00:00.000Z",
        "dailyPapers": json.loads(DAILY.read_text()),
    }

    page = parse_items(props)

    assert page.page_date == date(2025, 3, 11)
    assert len(page.papers) == 3


def test_an_empty_list_is_a_page_without_papers() -> None:
    page = parse(" []\n", source=DAILY_URL, today=TODAY)

    assert page.papers == []
    assert page.page_date == date(2025, 3, 11)


def test_it_drops_the_arxiv_version_and_ignores_ids_that_are_not_arxiv() -> None:
    items = [{"id": "2401.01234v3", "title": "A"}, {"id": "not-an-id", "title": "B"}]

    assert [p.arxiv_id for p in parse_items(items).papers] == ["2401.01234", None]


def test_null_and_missing_fields_read_as_absent() -> None:
    items = [
        {
            "paper": {
                "title": "Just a title",
                "summary": None,
                "upvotes": None,
                "authors": None,
                "ai_keywords": None,
                "githubRepo": None,
                "projectPage": None,
            }
        }
    ]

    assert parse_items(items).papers == [ParsedPaper(title="Just a title", abstract="")]


def test_it_collapses_white_space_and_drops_characters_no_database_holds() -> None:
    items = [{"title": "  Two\n  lines\u0000 ", "summary": "A\n\nwrapped\tabstract\ud800."}]

    (paper,) = parse_items(items).papers

    assert paper.title == "Two lines"
    assert paper.abstract == "A wrapped abstract."


def test_authors_may_be_plain_names_and_empty_names_are_skipped() -> None:
    items = [{"title": "T", "authors": ["Ada Lovelace", {"name": " "}, {"name": "Alan Turing"}]}]

    (paper,) = parse_items(items).papers

    assert paper.authors == ("Ada Lovelace", "Alan Turing")
    assert paper.authors_count == 2


def test_a_leading_byte_order_mark_is_ignored() -> None:
    page = parse("\ufeff" + json.dumps([{"title": "T"}]), source="bom.json", today=TODAY)

    assert [p.title for p in page.papers] == ["T"]


def test_invalid_json_names_the_line_the_decoder_stopped_at() -> None:
    text = '[\n  {"paper": {"title": "ok"}},\n  {"paper": {"title": "cut off"\n]'

    with pytest.raises(ParseError) as raised:
        parse(text, source="broken.json", today=TODAY)

    assert raised.value.line == 4
    assert raised.value.source == "broken.json"
    assert "not valid JSON" in raised.value.message
    assert str(raised.value).startswith("broken.json, line 4: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"papers"', "expected a JSON list of papers at the top level, got a string"),
        ("42", "expected a JSON list of papers at the top level, got a number"),
        ('{"papers": []}', 'an object with a "dailyPapers" list'),
    ],
)
def test_a_top_level_of_the_wrong_shape_says_what_was_expected(text: str, expected: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse(text, source="odd.json", today=TODAY)

    assert expected in raised.value.message
    assert raised.value.line is None


@pytest.mark.parametrize(
    ("bad_item", "expected"),
    [
        ("a string", "item 1: expected an object, got a string"),
        ({"paper": []}, 'item 1: expected "paper" to be an object, got a list'),
        ({"paper": {"summary": "no title"}}, 'item 1: expected a non-empty "title"'),
        ({"title": "   "}, 'item 1: expected a non-empty "title"'),
        ({"title": 7}, 'item 1: expected "title" to be a string, got a number'),
        ({"title": "T", "upvotes": "12"}, 'item 1: expected "upvotes" to be a whole number'),
        ({"title": "T", "upvotes": -1}, 'item 1: expected "upvotes" to be a whole number'),
        ({"title": "T", "upvotes": True}, 'item 1: expected "upvotes" to be a whole number'),
        ({"title": "T", "upvotes": 1.5}, 'item 1: expected "upvotes" to be a whole number'),
        ({"title": "T", "numComments": "3"}, 'item 1: expected "numComments" to be a whole'),
        ({"title": "T", "authors": "Ada"}, 'item 1: expected "authors" to be a list, got a'),
        ({"title": "T", "authors": [{"id": 1}]}, "item 1: expected author 0 to be a name"),
        ({"title": "T", "publishedAt": "last week"}, 'item 1: expected "publishedAt" to be an'),
        ({"title": "T", "publishedAt": 20250311}, 'item 1: expected "publishedAt" to be an'),
        ({"title": "T", "ai_keywords": "llm"}, 'item 1: expected "ai_keywords" to be a list'),
        ({"title": "T", "githubRepo": {"url": "x"}}, 'item 1: expected "githubRepo" to be a'),
    ],
)
def test_an_item_of_the_wrong_shape_is_named_by_its_index(bad_item: object, expected: str) -> None:
    items = [{"paper": {"id": "2503.00001", "title": "Fine"}}, bad_item]

    with pytest.raises(ParseError) as raised:
        parse_items(items, source="api.json")

    assert raised.value.message.startswith(expected)
    assert raised.value.line is None
    assert raised.value.source == "api.json"


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, "[" + "9" * 5000 + "]"],
    ids=["nested-too-deep", "integer-too-long"],
)
def test_json_python_refuses_to_load_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="not usable JSON"):
        parse(text, source="hostile.json", today=TODAY)
