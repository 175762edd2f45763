"""Ingesting every papers format, from files and from URLs: detection, forced formats,
one row per paper across formats, richer details, bad input, progress, upvote growth."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.ingest.store import ingest_bytes, ingest_source
from digest.matching.trend import upvote_growth
from digest.models import IngestRun, Paper, Sighting
from tests.support.pageserver import Page, PageServer

from .conftest import PAGE_000, PAGE_002, PAGE_004, PAGES_DIR, make_subscriber
from .test_sources import FIXTURES

HTML = FIXTURES / "html"
JSON = FIXTURES / "json"
DAILY_HTML = HTML / "daily_2025-03-11.html"
DAILY_JSON = JSON / "daily_papers_2025-03-11.json"

# (fixture, its format, papers on it)
FIXTURE_PAGES = [
    (HTML / "cards_2025-03-12.html", "html", 2),
    (DAILY_HTML, "html", 3),
    (HTML / "search_diffusion.html", "html", 2),
    (HTML / "week_2025-W10.html", "html", 2),
    (DAILY_JSON, "json", 3),
    (JSON / "papers_search_diffusion.json", "json", 2),
    (PAGE_004, "text", 53),
]


def ingest_json(*sources: str, **options: Any) -> tuple[dict[str, Any], int]:
    """Run ``ingest --json``; returns the summary and the exit status."""
    out = StringIO()
    try:
        call_command("ingest", "--json", *sources, stdout=out, stderr=StringIO(), **options)
        status = 0
    except CommandError as exc:
        status = exc.returncode
    return json.loads(out.getvalue()), status


def api_page(*entries: tuple[str, str, int]) -> bytes:
    """The daily-papers API fixture with its first items renamed to ``(title, arXiv id,
    upvotes)`` entries, keeping their authors, keywords and links."""
    items = json.loads(DAILY_JSON.read_text(encoding="utf-8"))
    for item, (title, arxiv_id, upvotes) in zip(items, entries, strict=False):
        item["title"] = item["paper"]["title"] = title
        item["paper"].update(id=arxiv_id, upvotes=upvotes)
    return json.dumps(items).encode()


# --- Formats ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "format", "count"), FIXTURE_PAGES, ids=lambda v: getattr(v, "name", None)
)
def test_each_format_is_detected_and_can_be_forced(path: Path, format: str, count: int) -> None:
    detected, status = ingest_json(str(path))
    assert status == 0
    assert detected["pages"] == [
        {
            "source": str(path),
            "format": format,
            "papers": count,
            "new": count,
            "updated": 0,
            "error": None,
        }
    ]
    forced, status = ingest_json(str(path), format=format)
    assert status == 0
    assert forced["pages"][0] | {"source": None} == {
        "source": None,
        "format": format,
        "papers": count,
        "new": 0,
        "updated": count,
        "error": None,
    }
    assert forced["papers_total"] == Paper.objects.count() == count


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "format", "error"),
    [
        (DAILY_HTML, "json", "line 1: not valid JSON: Expecting value"),
        (DAILY_JSON, "html", 'no papers found: expected a data-target="DailyPapers" element'),
        (DAILY_JSON, "text", 'line 1: paper \'[ { "paper": { "id": "2503.07365"'),
        (PAGE_004, "json", "line 1: not valid JSON: Expecting value"),
        (PAGE_004, "html", "no papers found"),
    ],
    ids=["html-as-json", "json-as-html", "json-as-text", "text-as-json", "text-as-html"],
)
def test_forcing_the_wrong_format_fails_clearly(path: Path, format: str, error: str) -> None:
    summary, status = ingest_json(str(path), format=format)
    assert status == 1
    [page] = summary["pages"]
    assert page["error"].startswith(f"{path}: " if "line" not in error else f"{path}, ")
    assert error in page["error"]
    assert IngestRun.objects.get().error == page["error"]
    assert not Paper.objects.exists()


@pytest.mark.django_db
def test_it_ingests_pages_from_urls(server: PageServer) -> None:
    html_url = server.serve("/papers/date/2025-03-11", Page(DAILY_HTML.read_bytes()))
    json_url = server.serve(
        "/api/daily_papers?date=2025-03-11",
        Page(DAILY_JSON.read_bytes(), content_type="application/json"),
    )
    text_url = server.serve("/saved.txt", Page(PAGE_004.read_bytes(), content_type="text/plain"))
    missing_url = server.url("/papers/date/1999-01-01")
    summary, status = ingest_json(html_url, json_url, text_url, missing_url)
    assert status == 1
    assert [(p["source"], p["format"], p["papers"], p["error"]) for p in summary["pages"]] == [
        (html_url, "html", 3, None),
        (json_url, "json", 3, None),
        (text_url, "text", 53, None),
        # The URL once, then what went wrong.
        (missing_url, "", 0, f"{missing_url}: HTTP 404 Not Found"),
    ]
    assert summary["papers_total"] == 56
    # The URL's date is the page's date when the page shows none of its own.
    assert IngestRun.objects.get(source=json_url).page_date.isoformat() == "2025-03-11"


@pytest.mark.django_db
def test_a_folder_stands_for_its_pages() -> None:
    summary, status = ingest_json(str(PAGES_DIR))
    assert status == 0
    assert [p["source"] for p in summary["pages"]] == [str(PAGE_000), str(PAGE_002), str(PAGE_004)]
    assert summary["papers_total"] == 187


# --- One row per paper, richer details kept ------------------------------------------


@pytest.mark.django_db
def test_a_paper_seen_in_a_text_page_and_then_with_its_id_is_one_row() -> None:
    assert ingest_source(str(PAGE_004)).error is None
    sd3 = Paper.objects.get(
        title="Scaling Rectified Flow Transformers for High-Resolution Image Synthesis"
    )
    assert (sd3.arxiv_id, sd3.upvotes, sd3.authors_count) == (None, 4, 17)

    api = ingest_bytes(
        api_page((sd3.title, "2403.03206v1", 70)), source="https://huggingface.co/api/daily_papers"
    )
    assert (api.error, api.papers, api.new, api.updated) == (None, 3, 2, 1)
    html = DAILY_HTML.read_text(encoding="utf-8")
    html = html.replace(
        "Cached Attention for Faster Video Diffusion Sampling", "Transformer in Transformer"
    )
    html = html.replace("2503.05511", "2103.00112")
    page = ingest_bytes(html.encode(), source="https://huggingface.co/papers/date/2025-03-11")
    # Transformer in Transformer merges with the text page's row, 2503.06749 with the API
    # page's; 2503.07365 is new (api_page gave its entry to the SD3 paper).
    assert (page.error, page.papers, page.new, page.updated) == (None, 3, 1, 2)
    # And the text page again: its papers without ids find the rows that now have ids.
    again = ingest_source(str(PAGE_004))
    assert (again.new, again.updated) == (0, 53)

    assert Paper.objects.count() == 53 + 2 + 1
    sd3.refresh_from_db()
    assert sd3.arxiv_id == "2403.03206"
    assert sd3.upvotes == 4  # the latest page's count
    assert sd3.sightings.count() == 3
    assert sorted(sd3.sightings.values_list("upvotes", flat=True)) == [4, 4, 70]
    tnt = Paper.objects.get(title="Transformer in Transformer")
    assert (tnt.arxiv_id, tnt.sightings.count()) == ("2103.00112", 3)
    # The text page's details stay: its abstract, its author count.
    assert tnt.abstract.startswith("Transformer is a new kind of neural architecture")
    assert tnt.authors_count == 6


@pytest.mark.django_db
def test_it_keeps_what_richer_sources_give() -> None:
    assert ingest_source(str(DAILY_JSON)).error is None
    moe = Paper.objects.get(arxiv_id="2503.07365")
    assert moe.authors == ["Mira Okonkwo", "Tomás Villanueva", "Hana Sato", "Priya Raman"]
    assert moe.authors_count == 4
    assert moe.ai_keywords == ["mixture-of-experts", "router", "load balancing", "sparse models"]
    assert moe.github_repo == "https://github.com/example-lab/moe-bias-router"
    assert (moe.num_comments, moe.upvotes) == (5, 87)
    assert moe.arxiv_url == "https://arxiv.org/abs/2503.07365"
    assert moe.pdf_url == "https://arxiv.org/pdf/2503.07365"
    assert moe.hf_url == "https://huggingface.co/papers/2503.07365"
    qa = Paper.objects.get(arxiv_id="2503.06749")
    assert qa.project_page == "https://qa-bench.example.org/"

    # The cards page shows no names or keywords: they stay; the counts move on.
    assert ingest_source(str(HTML / "cards_2025-03-12.html")).error is None
    moe.refresh_from_db()
    assert moe.authors[0] == "Mira Okonkwo" and moe.ai_keywords[0] == "mixture-of-experts"
    assert (moe.upvotes, moe.num_comments) == (1204, 9)


@pytest.mark.django_db
def test_a_paper_without_id_has_no_arxiv_links() -> None:
    ingest_source(str(PAGE_004))
    paper = Paper.objects.get(title="Transformer in Transformer")
    assert (paper.arxiv_url, paper.pdf_url, paper.hf_url) == (None, None, None)
    assert paper.url == "https://huggingface.co/papers?q=Transformer+in+Transformer"


@pytest.mark.django_db
def test_links_that_are_not_web_urls_are_dropped() -> None:
    page = api_page(("Safe links", "2503.00001", 1))
    items = json.loads(page)
    items[0]["paper"]["githubRepo"] = "javascript:alert(1)"
    items[0]["paper"]["projectPage"] = "https://example.org/" + "x" * 600
    assert ingest_bytes(json.dumps(items).encode(), source="api.json").error is None
    paper = Paper.objects.get(arxiv_id="2503.00001")
    assert (paper.github_repo, paper.project_page) == ("", "")


@pytest.mark.django_db
def test_a_page_listing_a_paper_twice_stores_it_once() -> None:
    items = json.loads(api_page(("Twice on one page", "2503.00002", 3)))
    items[1] = json.loads(json.dumps(items[0]))
    del items[1]["paper"]["id"]  # the second entry has only the title
    result = ingest_bytes(json.dumps(items).encode(), source="api.json")
    assert (result.error, result.new) == (None, 2)
    paper = Paper.objects.get(title="Twice on one page")
    assert paper.sightings.count() == 1


# --- Bad input ----------------------------------------------------------------------


def _truncated_html() -> bytes:
    data = DAILY_HTML.read_bytes()
    return data[: data.index(b"dailyPapers") + 200]


BAD_PAGES = [
    ("empty", b"", "empty page"),
    ("blank", b" \n\t\n", "empty page (only white space)"),
    (
        "binary",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        "binary data, not a page (contains NUL bytes)",
    ),
    (
        "control",
        b"Mar 11\n" + b"\x01\x02\x03\x04" * 50,
        "binary data, not a page (200 control characters in 207)",
    ),
    ("truncated-json", DAILY_JSON.read_bytes()[:1500], "not valid JSON: Unterminated string"),
    ("truncated-html", _truncated_html(), "no papers found: expected a data-target"),
    (
        "json-object",
        b'{"papers": []}',
        'expected a JSON list of papers (or an object with a "dailyPapers" list)',
    ),
    ("json-numbers", b"[1, 2]", "item 0: expected an object, got a number"),
    (
        "json-title",
        b'[{"paper": {"title": ["a"]}}]',
        'item 0: expected "title" to be a string, got a list',
    ),
    ("json-empty", b"[]", "no papers found on the page"),
    (
        "html-no-papers",
        (HTML / "empty_2025-03-09.html").read_bytes(),
        "no papers found on the page",
    ),
    (
        "html-scripts-only",
        b"<!doctype html><html><body><script>document.write('<article><a href=\"/papers/2503.1\">x</a></article>')</script><style>article{}</style></body></html>",
        "no papers found: expected a data-target",
    ),
    ("text-no-papers", b"new\n\nSubscribe\n\nMar 11\n", "no papers found on the page"),
    (
        "broken-utf8",
        "Mar 11\n\nCafé — a title\n\nAn abstract.\n".encode() + b"\xff",
        "invalid UTF-8 (bad byte at offset",
    ),
    (
        "utf16-without-bom",
        "Mar 11\n\nA title\n\nAn abstract.\n".encode("utf-16-le"),
        "binary data, not a page (contains NUL bytes)",
    ),
    (
        "long-title",
        ("Mar 11\n\n" + "T" * 1001 + "\n\nAn abstract.\n").encode(),
        "paper 0: title is 1,001 characters, more than the 1,000 stored",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "data", "error"), BAD_PAGES, ids=[b[0] for b in BAD_PAGES])
def test_bad_input_is_a_clear_error_and_nothing_is_stored(
    tmp_path: Path, name: str, data: bytes, error: str
) -> None:
    ingest_source(str(PAGE_004))  # papers already stored must stay as they are
    papers = list(Paper.objects.order_by("pk").values())
    page = tmp_path / f"{name}.page"
    page.write_bytes(data)
    summary, status = ingest_json(str(page))
    assert status == 1
    [result] = summary["pages"]
    assert result["error"].startswith(str(page))
    assert error in result["error"]
    assert (result["papers"], result["new"], result["updated"]) == (0, 0, 0)
    run = IngestRun.objects.get(source=str(page))
    assert (run.status, run.error, run.papers_new) == (IngestRun.FAILED, result["error"], 0)
    assert run.finished_at is not None
    assert list(Paper.objects.order_by("pk").values()) == papers
    assert not Sighting.objects.filter(run=run).exists()


@pytest.mark.django_db
def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    page = tmp_path / "huge.json"
    with page.open("wb") as f:
        f.truncate(20 * 1024 * 1024 + 1)
    summary, status = ingest_json(str(page))
    assert status == 1
    assert summary["pages"][0]["error"] == (
        f"{page}: file is 20,971,521 bytes, more than the 20,971,520-byte limit"
    )


@pytest.mark.django_db
def test_the_text_command_reports_a_bad_page_on_stderr(tmp_path: Path) -> None:
    page = tmp_path / "empty.txt"
    page.write_bytes(b"")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as exc_info:
        call_command("ingest", str(page), str(PAGE_004), stdout=out, stderr=err)
    assert exc_info.value.returncode == 1
    assert err.getvalue() == f"FAILED {page}: empty page\n"
    assert out.getvalue().splitlines() == [
        f"{PAGE_004}: 53 papers (text), 53 new, 0 updated",
        "53 papers stored",
    ]


@pytest.mark.django_db
def test_a_windows_1252_page_is_read_in_its_encoding(tmp_path: Path) -> None:
    page = tmp_path / "latin.txt"
    page.write_bytes("Mar 11\n\nCafé — déjà vu for transformers\n\nAn abstract.\n".encode("cp1252"))
    summary, status = ingest_json(str(page))
    assert (status, summary["pages"][0]["papers"]) == (0, 1)
    assert Paper.objects.get().title == "Café — déjà vu for transformers"


@pytest.mark.django_db
def test_markup_in_a_title_is_stored_verbatim_and_escaped_where_shown(outbox: Path) -> None:
    title = '<script>alert("x")</script> Diffusion <img src=x onerror=alert(1)>'
    card = (
        '<!doctype html><html><body><article><h3><a href="/papers/2503.09999">'
        '&lt;script&gt;alert("x")&lt;/script&gt; Diffusion &lt;img src=x onerror=alert(1)&gt;'
        "</a></h3><p>An abstract with <b>bold</b> &amp; <script>alert(2)</script>odd markup</p>"
        "</article><script>alert(3)</script></body></html>"
    )
    result = ingest_bytes(card.encode(), source="odd.html")
    assert (result.error, result.format, result.papers) == (None, "html", 1)
    paper = Paper.objects.get()
    assert paper.title == title

    client = Client()
    client.force_login(User.objects.create_superuser("mod", "mod@example.org", "pw"))
    page = client.get("/admin/digest/paper/").content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Diffusion &lt;img" in page
    assert '<script>alert("x")' not in page and "<img src=x" not in page

    ada = make_subscriber("ada@example.org", ["diffusion"])
    [sent] = deliver([ada.pk])
    html = (outbox / f"digest-{sent.digest_id}.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(" in html
    assert "<script>" not in html and "<img src=x" not in html


# --- Progress -----------------------------------------------------------------------


@pytest.mark.django_db
def test_progress_is_drawn_on_stderr_when_asked() -> None:
    err = StringIO()
    call_command("ingest", "--json", "--progress", str(PAGES_DIR), stdout=StringIO(), stderr=err)
    assert "3/3" in err.getvalue() and "page" in err.getvalue()
    # Papers read so far, counting each page's (187 distinct papers).
    assert "papers=230" in err.getvalue()


@pytest.mark.django_db
def test_no_progress_when_stderr_is_not_a_terminal() -> None:
    out, err = StringIO(), StringIO()
    call_command("ingest", "--json", str(PAGES_DIR), stdout=out, stderr=err)
    assert err.getvalue() == ""
    assert json.loads(out.getvalue())["papers_total"] == 187


# --- Upvote growth ------------------------------------------------------------------


@pytest.mark.django_db
def test_upvote_growth_between_the_last_two_sightings() -> None:
    t0 = timezone.now() - timedelta(hours=3)
    moe, qa, cached = (
        ("Scaling MoE", "2503.07365"),
        ("QA Bench", "2503.06749"),
        ("Cached", "2503.05511"),
    )
    for hours, votes in [(0, (87, 0, 12)), (1, (100, 5, 12)), (2, (130, 5, 10))]:
        entries = [(t, i, v) for (t, i), v in zip([moe, qa, cached], votes, strict=True)]
        assert (
            ingest_bytes(api_page(*entries), source="api", now=t0 + timedelta(hours=hours)).error
            is None
        )
    ids = dict(Paper.objects.values_list("arxiv_id", "pk"))
    growth = upvote_growth(ids.values())
    assert growth == {ids["2503.07365"]: 30, ids["2503.06749"]: 0, ids["2503.05511"]: -2}
    # Over a window: from the count at its start.
    since = upvote_growth(ids.values(), since=t0 + timedelta(minutes=30))
    assert since == {ids["2503.07365"]: 43, ids["2503.06749"]: 5, ids["2503.05511"]: -2}


@pytest.mark.django_db
def test_upvote_growth_of_papers_seen_once_or_without_counts_is_zero() -> None:
    t0 = timezone.now() - timedelta(hours=2)
    ingest_source(str(PAGE_004))  # most papers on it show no count
    ingest_source(str(PAGE_004))

    def one_paper(title: str, arxiv_id: str, upvotes: int) -> bytes:
        return json.dumps(json.loads(api_page((title, arxiv_id, upvotes)))[:1]).encode()

    ingest_bytes(one_paper("Late paper", "2503.00003", 9), source="api", now=t0)
    ingest_bytes(
        one_paper("Late paper", "2503.00003", 19), source="api", now=t0 + timedelta(hours=1)
    )
    ingest_bytes(one_paper("Seen once", "2503.00004", 50), source="api", now=t0)
    neuro = Paper.objects.get(title__startswith="NeuroBOLT").pk
    late = Paper.objects.get(arxiv_id="2503.00003").pk
    once = Paper.objects.get(arxiv_id="2503.00004").pk
    assert upvote_growth([neuro, late, once, 10**9]) == {neuro: 0, late: 10, once: 0, 10**9: 0}
    # First seen inside the window: growth since it was first seen.
    assert upvote_growth([late], since=t0 - timedelta(days=1)) == {late: 10}
    assert upvote_growth([]) == {}
