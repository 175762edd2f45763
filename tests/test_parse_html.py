"""The papers HTML page parser (digest.ingest.parsers.html)."""

from __future__ import annotations

import html as html_escaping
import json
from datetime import date
from pathlib import Path

import pytest

from digest.ingest.parsers import hf_json
from digest.ingest.parsers.base import ParseError
from digest.ingest.parsers.html import parse

FIXTURES = Path(__file__).parent / "fixtures"
DAILY = FIXTURES / "html" / "daily_2025-03-11.html"
WEEK = FIXTURES / "html" / "week_2025-W10.html"
SEARCH = FIXTURES / "html" / "search_diffusion.html"
CARDS = FIXTURES / "html" / "cards_2025-03-12.html"
EMPTY = FIXTURES / "html" / "empty_2025-03-09.html"
DAILY_JSON = FIXTURES / "json" / "daily_papers_2025-03-11.json"
TODAY = date(2025, 3, 12)


def parse_file(path: Path, source: str | None = None):  # type: ignore[no-untyped-def]
    return parse(path.read_text(encoding="utf-8"), source=source or path.name, today=TODAY)


def page_with_props(props: object, *, head: str = "", target: str = "DailyPapers") -> str:
    """A minimal papers page carrying ``props`` the way the site does: HTML-escaped JSON."""
    escaped = html_escaping.escape(json.dumps(props), quote=True)
    return (
        f"<!doctype html>\n<html>\n<head>{head}</head>\n<body>\n"
        f'<div class="SVELTE_HYDRATER contents" data-target="{target}"\n'
        f'     data-props="{escaped}"></div>\n</body>\n</html>\n'
    )


def test_it_reads_the_papers_from_the_daily_papers_props() -> None:
    page = parse_file(DAILY)

    assert page.format == "html"
    assert page.page_date == date(2025, 3, 11)
    # The cards on this page show no abstracts; the props do, and win.
    assert all(p.abstract for p in page.papers)
    assert (
        page.papers[1].title
        == 'Q&A <Bench>: Evaluating "Long-Context" Retrieval in 1M-Token Windows'
    )


def test_the_props_give_the_same_papers_as_the_json_api() -> None:
    from_page = parse_file(DAILY).papers
    from_api = hf_json.parse(DAILY_JSON.read_text(), source="api", today=TODAY).papers

    assert from_page == from_api


def test_other_components_props_are_not_mistaken_for_papers() -> None:
    # The header's props hold a list of {"title": ...} navigation items.
    page = parse_file(DAILY)

    assert "Models" not in [p.title for p in page.papers]
    assert len(page.papers) == 3


def test_a_week_page_has_papers_but_no_single_date() -> None:
    page = parse_file(WEEK, source="https://huggingface.co/papers/week/2025-W10")

    assert page.page_date is None
    assert [p.arxiv_id for p in page.papers] == ["2503.05511", "2503.07365"]


def test_a_search_page_keeps_its_results_under_another_key() -> None:
    page = parse_file(SEARCH)

    assert page.page_date is None
    assert [(p.arxiv_id, p.title) for p in page.papers] == [
        ("2503.05511", "Cached Attention for Faster Video Diffusion Sampling"),
        ("2412.01821", "Latent Diffusion for Sparse-View 3D Reconstruction"),
    ]
    assert page.papers[1].upvotes == 31


def test_a_day_without_papers_is_an_empty_page_with_its_date() -> None:
    page = parse_file(EMPTY)

    assert page.papers == []
    assert page.page_date == date(2025, 3, 9)


def test_without_props_it_reads_the_article_cards() -> None:
    page = parse_file(CARDS)

    assert page.page_date == date(2025, 3, 12)
    # The promotion card has no paper link and is skipped.
    assert [p.arxiv_id for p in page.papers] == ["2503.07365", "2503.06749"]
    first, second = page.papers
    assert (
        first.title == "Scaling Sparse Mixture-of-Experts Without Auxiliary Load-Balancing Losses"
    )
    assert first.abstract.startswith("Sparse mixture-of-experts (MoE) models route each token")
    assert first.abstract.endswith("matches dense baselines at a third of the compute.")
    assert (first.upvotes, first.num_comments, first.authors_count) == (1204, 9, 4)
    assert first.github_repo == "https://github.com/example-lab/moe-bias-router"
    assert first.published_on == date(2025, 3, 10)
    assert (second.upvotes, second.num_comments, second.authors_count) == (0, 0, 2)
    assert second.title.startswith("Q&A <Bench>:")
    assert (second.github_repo, second.published_on) == ("", None)


def test_a_bare_card_gives_a_title_and_nothing_it_does_not_show() -> None:
    text = (
        "<html><body><article>"
        '<a href="https://huggingface.co/papers/2502.00042"><img src="t.png"></a>'
        '<a href="https://huggingface.co/papers/2502.00042">  A   Bare\n Card </a>'
        "</article></body></html>"
    )

    (paper,) = parse(text, source="bare.html", today=TODAY).papers

    assert (paper.title, paper.arxiv_id, paper.abstract) == ("A Bare Card", "2502.00042", "")
    assert (paper.upvotes, paper.num_comments, paper.authors_count) == (None, None, None)


def test_the_page_date_falls_back_to_the_props_then_the_source_url() -> None:
    items = json.loads(DAILY_JSON.read_text())[:1]
    with_date = page_with_props({"date": "2025-03-07T00:00:00.000Z", "dailyPapers": items})
    without = page_with_props({"dailyPapers": items})
    url = "https://huggingface.co/papers/date/2025-03-06"

    assert parse(with_date, source=url, today=TODAY).page_date == date(2025, 3, 7)
    assert parse(without, source=url, today=TODAY).page_date == date(2025, 3, 6)
    assert parse(without, source="saved.html", today=TODAY).page_date is None


def test_the_canonical_link_beats_the_props_date() -> None:
    head = '<link rel="canonical" href="https://huggingface.co/papers/date/2025-03-05">'
    text = page_with_props({"date": "2025-03-07", "dailyPapers": []}, head=head)

    assert parse(text, source="saved.html", today=TODAY).page_date == date(2025, 3, 5)


def test_props_that_are_not_json_name_the_element_line() -> None:
    text = DAILY.read_text().replace("&quot;dailyPapers&quot;:[", "&quot;dailyPapers&quot;:[[", 1)
    line = next(
        n for n, row in enumerate(text.splitlines(), 1) if 'data-target="DailyPapers"' in row
    )

    with pytest.raises(ParseError) as raised:
        parse(text, source="daily.html", today=TODAY)

    assert raised.value.line == line
    assert "data-props of the DailyPapers element is not valid JSON" in raised.value.message


def test_an_item_of_the_wrong_shape_is_named_with_its_index_and_line() -> None:
    text = page_with_props({"dailyPapers": [{"paper": {"title": "Fine"}}, {"paper": "2503.1"}]})

    with pytest.raises(ParseError) as raised:
        parse(text, source="odd.html", today=TODAY)

    assert raised.value.message == 'dailyPapers 1: expected "paper" to be an object, got a string'
    assert raised.value.line == 5


def test_daily_papers_props_without_a_paper_list_are_an_error() -> None:
    text = page_with_props({"date": "2025-03-11", "dailyPapers": None})

    with pytest.raises(ParseError, match='has no "dailyPapers" list'):
        parse(text, source="odd.html", today=TODAY)


def test_a_page_with_neither_props_nor_cards_is_an_error() -> None:
    text = "<!doctype html><html><body><h1>Sign in</h1><article><p>News</p></article></body>"

    with pytest.raises(ParseError) as raised:
        parse(text, source="login.html", today=TODAY)

    assert raised.value.message.startswith("no papers found")
    assert raised.value.source == "login.html"


def test_markup_the_html_parser_rejects_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="unreadable HTML"):
        parse("<html><![ x", source="broken.html", today=TODAY)
