"""Ingesting the real saved text pages."""

from __future__ import annotations

import json
import re
from datetime import date
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from digest.ingest.parsers import ParseError
from digest.ingest.parsers.text import parse
from digest.ingest.store import ingest_source
from digest.models import IngestRun, Paper, Sighting

from .conftest import ALL_PAGES, PAGE_000, PAGE_002, PAGE_004

HEADER = {
    "new",
    "Get trending papers in your email inbox!",
    "Subscribe",
    "Daily Papers",
    "byAK and the research community",
}
META = re.compile(r"^(•\s*\d+ authors?|·|[A-Z][a-z]{2} \d{1,2}(, \d{4})?( \d+)?)$")


def titles_and_abstracts(path: Path) -> list[tuple[str, str]]:
    """Read a page the simple way: drop the header, the page date and the metadata lines;
    what remains alternates title, abstract."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = [line for line in lines if line not in HEADER]
    body = [line for line in lines[1:] if not META.match(line)]  # lines[0] is the page date
    assert len(body) % 2 == 0
    return list(zip(body[0::2], body[1::2], strict=True))


# Counted by hand from the pages' line numbers.
@pytest.mark.parametrize(("page", "count"), [(PAGE_000, 63), (PAGE_002, 114), (PAGE_004, 53)])
def test_it_parses_every_paper_on_each_real_page(page: Path, count: int) -> None:
    parsed = parse(page.read_text(encoding="utf-8"), source=str(page), today=date(2026, 11, 21))
    expected = titles_and_abstracts(page)
    assert len(expected) == count
    assert [(p.title, p.abstract) for p in parsed.papers] == expected


def test_it_reads_authors_dates_and_upvotes() -> None:
    page = parse(PAGE_004.read_text(encoding="utf-8"), source="p", today=date(2026, 11, 21))
    assert page.page_date == date(2026, 4, 22)
    first, last = page.papers[0], page.papers[-1]
    assert first.title.startswith("NeuroBOLT: Resting-state EEG-to-fMRI Synthesis")
    assert (first.authors_count, first.published_on, first.upvotes) == (10, date(2024, 10, 6), None)
    assert last.title == "Scaling Rectified Flow Transformers for High-Resolution Image Synthesis"
    assert (last.authors_count, last.published_on, last.upvotes) == (17, date(2024, 3, 5), 4)
    by_title = {p.title: p for p in page.papers}
    # "Mar 9" and "Jan 29" have no year: this year, as neither is in the future.
    assert by_title["Adaptive MLP Pruning for Large Vision Transformers"].published_on == date(
        2026, 3, 9
    )
    assert by_title[
        "CoFrGeNet: Continued Fraction Architectures for Language Generation"
    ].published_on == date(2026, 1, 29)


def test_a_date_without_year_that_would_be_in_the_future_is_last_year() -> None:
    page = parse(PAGE_004.read_text(encoding="utf-8"), source="p", today=date(2026, 2, 1))
    by_title = {p.title: p for p in page.papers}
    assert by_title["Adaptive MLP Pruning for Large Vision Transformers"].published_on == date(
        2025, 3, 9
    )
    assert by_title[
        "CoFrGeNet: Continued Fraction Architectures for Language Generation"
    ].published_on == date(2026, 1, 29)
    assert page.page_date == date(2025, 4, 22)


@pytest.mark.django_db
def test_it_stores_a_paper_seen_on_several_pages_once() -> None:
    expected = {t.lower() for page in ALL_PAGES for t, _ in titles_and_abstracts(page)}
    for page in ALL_PAGES:
        assert ingest_source(str(page)).error is None
    assert Paper.objects.count() == len(expected) == 187
    tnt = Paper.objects.get(title="Transformer in Transformer")
    assert tnt.sightings.count() == 3
    # Only page 004 shows its upvotes (Feb 26, 2021 1) and authors.
    assert (tnt.upvotes, tnt.authors_count) == (1, 6)


@pytest.mark.django_db
def test_ingesting_a_page_twice_updates_and_does_not_duplicate() -> None:
    first = ingest_source(str(PAGE_004))
    second = ingest_source(str(PAGE_004))
    assert (first.papers, first.new, first.updated) == (53, 53, 0)
    assert (second.papers, second.new, second.updated) == (53, 0, 53)
    assert Paper.objects.count() == 53
    assert Sighting.objects.count() == 106


@pytest.mark.django_db
def test_a_broken_page_among_good_ones_fails_alone(tmp_path: Path) -> None:
    broken = tmp_path / "broken.txt"
    text = PAGE_000.read_text(encoding="utf-8").splitlines()
    # Drop the abstract of the third paper (line 21): its title now runs into the next title.
    broken.write_text("\n".join(text[:20] + ["• 3 authors"] + text[21:]), encoding="utf-8")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as exc_info:
        call_command(
            "ingest", "--json", str(PAGE_002), str(broken), str(PAGE_004), stdout=out, stderr=err
        )
    assert exc_info.value.returncode == 1
    summary = json.loads(out.getvalue())
    pages = summary["pages"]
    assert [p["source"] for p in pages] == [str(PAGE_002), str(broken), str(PAGE_004)]
    assert (
        pages[1]["error"]
        == f"{broken}, line 19: paper 'Prithvi WxC: Foundation Model for Weather and Climate' has no abstract"
    )
    assert pages[0]["error"] is None and pages[2]["error"] is None
    assert (pages[0]["papers"], pages[2]["papers"]) == (114, 53)
    assert summary["papers_total"] == Paper.objects.count() == 114 + 53 - 19
    assert not Paper.objects.filter(title__startswith="DINO-X").exists()
    assert IngestRun.objects.get(source=str(broken)).status == IngestRun.FAILED


@pytest.mark.django_db
def test_a_page_is_stored_atomically(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import IntegrityError

    def fail(*args: object, **kwargs: object) -> None:
        raise IntegrityError("simulated conflict")

    monkeypatch.setattr(Sighting.objects, "bulk_create", fail)
    result = ingest_source(str(PAGE_004))
    assert result.error and "simulated conflict" in result.error
    assert Paper.objects.count() == 0


@pytest.mark.django_db
def test_ingest_prints_one_line_per_page() -> None:
    out = StringIO()
    call_command("ingest", str(PAGE_000), str(PAGE_004), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines == [
        f"{PAGE_000}: 63 papers (text), 63 new, 0 updated",
        f"{PAGE_004}: 53 papers (text), 35 new, 18 updated",
        "98 papers stored",
    ]


@pytest.mark.django_db
def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("ingest", "--json", str(tmp_path / "nope.txt"), stdout=out)
    page = json.loads(out.getvalue())["pages"][0]
    assert page["error"] == f"{tmp_path / 'nope.txt'}: cannot read file: No such file or directory"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("new\n\nMar 11\n\nA title\n", 5, "paper 'A title' has no abstract"),
        ("Mar 11\n\n·\n\nabstract\n", 3, "expected a paper title, found '·'"),
        (
            "Mar 11\n\nT\n\nA\n\n• 3 authors\n·\nFeb 30, 2024\n",
            9,
            "'Feb 30, 2024' is not a valid date",
        ),
        ("Mar 11\n\nT\n\nA\n\n• 3 authors\n·\nsoon\n", 9, "unreadable paper details 'soon'"),
    ],
)
def test_it_names_the_line_of_a_parse_error(text: str, line: int, message: str) -> None:
    with pytest.raises(ParseError) as exc_info:
        parse(text, source="page.txt", today=date(2026, 11, 21))
    assert (exc_info.value.line, exc_info.value.message) == (line, message)
    assert str(exc_info.value) == f"page.txt, line {line}: {message}"


def test_a_page_with_no_papers_is_an_error() -> None:
    with pytest.raises(ParseError, match="no papers found"):
        parse("new\n\nSubscribe\n\nMar 11\n", source="empty.txt", today=date(2026, 11, 21))


@pytest.mark.django_db
def test_papers_are_tagged_with_matching_topics_when_ingested() -> None:
    from digest.models import Topic

    mamba = Topic.objects.create(
        name="State space models", slug="ssm", query='mamba OR "state space"'
    )
    brains = Topic.objects.create(name="Brains", slug="brains", query="title:brain")
    ingest_source(str(PAGE_004))
    expected_ssm = {
        p.pk
        for p in Paper.objects.all()
        if re.search(r"mamba|state[- ]space", p.title + " " + p.abstract, re.I)
    }
    assert set(mamba.papers.values_list("pk", flat=True)) == expected_ssm and len(expected_ssm) >= 3
    assert sorted(brains.papers.values_list("title", flat=True)) == sorted(
        Paper.objects.filter(title__iregex=r"\ybrain").values_list("title", flat=True)
    )
