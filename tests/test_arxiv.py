"""arXiv sources: the API's Atom feed, the announcement RSS and OAI-PMH harvests, merged
with Hugging Face's pages into one row per paper, filtered by category, and fetched
politely. arXiv is served from 127.0.0.1 (:class:`PageServer`), never the internet."""

from __future__ import annotations

import email
import time
from datetime import UTC, date, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.ingest.parsers import ParseError, normalise_title, parse_page
from digest.ingest.parsers.detect import detect_format
from digest.ingest.sources import add_source, fetch_source, next_announcement, next_page_url
from digest.ingest.store import ingest_bytes
from digest.matching.engine import PaperText, match_edition
from digest.matching.query import QueryError, parse_query, reference_match
from digest.models import DigestItem, IngestRun, Paper, Source, Topic
from tests.support.arxiv import atom_feed, make_entries, rss_feed
from tests.support.builders import make_subscriber
from tests.support.pageserver import Page, PageServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ARXIV = FIXTURES / "arxiv"
API = ARXIV / "api_cs_CL.xml"
API_ERROR = ARXIV / "api_error.xml"
RSS = ARXIV / "rss_cs_CL_cs_LG.xml"
RSS_EMPTY = ARXIV / "rss_empty_day.xml"
OAI_1 = ARXIV / "oai_arXiv_page1.xml"
OAI_2 = ARXIV / "oai_arXivRaw_page2.xml"
OAI_BAD_TOKEN = ARXIV / "oai_bad_token.xml"
OAI_NO_RECORDS = ARXIV / "oai_no_records.xml"
HF_JSON = FIXTURES / "json" / "daily_papers_2025-03-11.json"
TODAY = date(2025, 3, 11)
XML = "application/xml; charset=utf-8"


def parse(path: Path, **kwargs: Any):  # type: ignore[no-untyped-def]
    return parse_page(path.read_bytes(), source=path.name, today=TODAY, **kwargs)


def ingest(path: Path, **kwargs: Any):  # type: ignore[no-untyped-def]
    return ingest_bytes(path.read_bytes(), source=path.name, **kwargs)


@pytest.fixture(autouse=True)
def no_pacing(settings: Any) -> None:
    """Requests to the local arXiv follow at once, unless a test asks for pacing."""
    settings.ARXIV_REQUEST_INTERVAL = 0
    cache.clear()


# --- Parsers ----------------------------------------------------------------------------


def test_the_api_feed_gives_ids_versions_categories_and_arxiv_details() -> None:
    page = parse(API)
    assert page.format == "arxiv_api" and page.page_date == date(2025, 3, 11)
    assert (page.paging.total, page.paging.start, page.paging.per_page) == (7, 0, 3)
    moe, attention, old = page.papers
    assert (moe.arxiv_id, moe.version) == ("2503.07365", 2)
    assert moe.title == (
        "Scaling Sparse Mixture-of-Experts Without Auxiliary Load-Balancing Losses: "
        "A Bias-Only Router"
    )
    assert moe.abstract.startswith("Sparse mixture-of-experts (MoE) models route each token")
    assert moe.abstract.endswith("(v2: corrected Table 3.)")
    # The primary category first, each once; "68T50" (an MSC class) is not a category.
    assert moe.categories == ("cs.LG", "cs.CL")
    assert moe.authors == ("Mira Okonkwo", "Tomás Villanueva", "Hana Sato", "Priya Raman")
    assert moe.comment == "14 pages, 6 figures; v2 fixes a typo in Table 3"
    assert moe.journal_ref == "Proceedings of ACL 2025, pp. 1-14"
    assert moe.doi == "10.48550/arXiv.2503.07365"
    assert moe.pdf_url == "http://arxiv.org/pdf/2503.07365v2"
    assert moe.published_on == date(2025, 3, 10) and moe.upvotes is None
    assert (old.arxiv_id, old.version, old.categories) == ("hep-th/9901001", 3, ("hep-th", "cs.CL"))
    assert attention.comment == attention.doi == attention.journal_ref == ""


def test_latex_and_entity_escaped_titles_are_kept_as_the_source_gives_them() -> None:
    attention = parse(API).papers[1]
    assert attention.title == (
        r"$\mathcal{O}(n \log n)$ Attention via Hierarchical <mask> Tokens & Sparse Routing"
    )
    assert r"$\mathcal{O}(n \log n)$" in attention.abstract
    # The feed escaped this title twice; what it says is "&amp;", and that is kept.
    replaced = parse(RSS).papers[2]
    assert replaced.title == "Tokenizer-Free Language Models &amp; the <unk> Problem, Revisited"


def test_an_api_error_entry_is_a_clear_error() -> None:
    with pytest.raises(ParseError, match="arXiv API error: incorrect id format for 1234.12345v9x"):
        parse(API_ERROR)


def test_the_announcement_feed_gives_each_announcement_type() -> None:
    page = parse(RSS)
    assert page.format == "arxiv_rss" and page.page_date == date(2025, 3, 11)
    assert [(p.arxiv_id, p.version, p.announce_type) for p in page.papers] == [
        ("2503.07100", 1, "new"),
        ("2503.07365", 1, "cross"),
        ("2502.01234", 3, "replace"),
        ("2501.09999", 2, "replace-cross"),
    ]
    first = page.papers[0]
    assert first.authors == ("Ngozi Adeyemi", "Lars Eriksson", "Mei Chen")
    assert first.categories == ("cs.CL", "cs.AI")
    assert first.abstract.startswith("Dialogue agents that act in the world")
    assert "Announce Type" not in first.abstract and first.published_on == date(2025, 3, 11)


def test_an_empty_announcement_day_is_a_clear_error() -> None:
    with pytest.raises(
        ParseError, match=r"no items: an empty announcement day \(Sat 15 Mar 2025\)"
    ):
        parse(RSS_EMPTY)


def test_an_oai_page_in_the_arxiv_format_skips_deleted_records_and_keeps_the_token() -> None:
    page = parse(OAI_1)
    assert page.format == "arxiv_oai"
    assert (page.paging.token, page.paging.total) == ("6960524|1001", 3)
    video, robots = page.papers
    assert video.arxiv_id == "2503.05511" and video.version is None
    assert video.title == "Video Diffusion Models Are Zero-Shot Physics Simulators"
    assert video.authors == ("Elin Lindqvist", "Chidi Okafor Jr")
    assert (video.categories, video.doi, video.published_on) == (
        ("cs.CV", "cs.LG"),
        "10.1234/vdm.2025.001",
        date(2025, 3, 7),
    )
    assert robots.journal_ref.startswith("IEEE Robotics and Automation Letters")


def test_an_oai_page_in_the_arxivraw_format_gives_the_latest_version() -> None:
    page = parse(OAI_2)
    assert page.paging is not None and page.paging.token is None  # the last page
    [paper] = page.papers
    assert (paper.arxiv_id, paper.version, paper.published_on) == (
        "2502.01234",
        3,
        date(2025, 2, 3),
    )
    assert paper.authors == ("Ana Souza", "Bruno Lima", "Carla Dias")
    assert paper.title == "Tokenizer-Free Language Models & the <unk> Problem, Revisited"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (OAI_BAD_TOKEN, "OAI-PMH error badResumptionToken: The value of the resumptionToken"),
        (OAI_NO_RECORDS, "OAI-PMH error noRecordsMatch: The combination of the values"),
    ],
)
def test_oai_pmh_errors_are_clear_errors(path: Path, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse(path)


@pytest.mark.parametrize("path", [API, RSS, OAI_1])
def test_truncated_xml_is_an_error_naming_the_line(path: Path) -> None:
    data = path.read_bytes()
    cut = data[: len(data) * 2 // 3]
    with pytest.raises(ParseError, match="not well-formed XML") as caught:
        parse_page(cut, source=path.name, today=TODAY)
    assert caught.value.line == cut.count(b"\n") + 1


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<rss version="2.0"><channel><item><title>&d;&d;&d;&d;</title>
<link>https://arxiv.org/abs/2503.00001</link></item></channel></rss>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2503.00001v1</id>
<title>&secret;</title><summary>x</summary></entry></feed>"""


@pytest.mark.parametrize(("data", "fmt"), [(BOMB, "arxiv_rss"), (EXTERNAL, "arxiv_api")])
def test_xml_bombs_and_external_entities_are_refused(data: bytes, fmt: str) -> None:
    assert detect_format(data.decode()) == fmt
    with pytest.raises(ParseError, match="refused XML: DTDForbidden"):
        parse_page(data, source="evil.xml", today=TODAY)


def test_each_format_is_told_apart_by_its_content() -> None:
    found = {p.name: detect_format(p.read_text()) for p in sorted(ARXIV.glob("*.xml"))}
    assert found == {
        "api_cs_CL.xml": "arxiv_api",
        "api_error.xml": "arxiv_api",
        "oai_arXivRaw_page2.xml": "arxiv_oai",
        "oai_arXiv_page1.xml": "arxiv_oai",
        "oai_bad_token.xml": "arxiv_oai",
        "oai_no_records.xml": "arxiv_oai",
        "rss_cs_CL_cs_LG.xml": "arxiv_rss",
        "rss_empty_day.xml": "arxiv_rss",
    }
    assert detect_format((FIXTURES / "html" / "daily_2025-03-11.html").read_text()) == "html"


# --- One row per paper ------------------------------------------------------------------


def assert_merged_moe_paper() -> Paper:
    paper = Paper.objects.get(arxiv_id="2503.07365")
    # Hugging Face gave the upvotes, the AI summary and keywords...
    assert paper.upvotes == 87
    assert paper.ai_summary.startswith("A bias-only router update trains sparse MoE")
    assert paper.ai_keywords and paper.github_repo
    # ...arXiv the categories, comment, journal reference, DOI and the newer version.
    assert paper.categories == ["cs.LG", "cs.CL"]
    assert paper.comment.startswith("14 pages") and paper.doi == "10.48550/arXiv.2503.07365"
    assert paper.journal_ref == "Proceedings of ACL 2025, pp. 1-14"
    assert paper.arxiv_version == 2
    assert paper.title.endswith("Losses: A Bias-Only Router")
    assert paper.title_key.endswith("losses a bias only router")
    assert sorted(paper.origins) == ["Hugging Face", "arXiv"]
    return paper


@pytest.mark.django_db
def test_hugging_face_then_arxiv_is_one_row_with_what_each_gave() -> None:
    assert ingest(HF_JSON).status == IngestRun.OK
    result = ingest(API)
    assert (result.status, result.papers, result.new, result.updated) == ("ok", 3, 2, 1)
    assert Paper.objects.count() == 5
    assert_merged_moe_paper()


@pytest.mark.django_db
def test_arxiv_then_hugging_face_is_the_same_row() -> None:
    assert ingest(API).status == IngestRun.OK
    assert ingest(HF_JSON).updated == 1
    paper = assert_merged_moe_paper()
    assert paper.origins == ["arXiv", "Hugging Face"]
    assert Paper.objects.count() == 5


@pytest.mark.django_db
def test_an_older_version_changes_nothing_arxiv_gave_and_erases_nothing() -> None:
    ingest(HF_JSON)
    ingest(API)
    # The announcement lists the paper's v1 as a cross-list, without comment or DOI.
    assert ingest(RSS).status == IngestRun.OK
    assert_merged_moe_paper()


@pytest.mark.django_db
def test_a_newer_version_updates_title_and_abstract() -> None:
    ingest(RSS, format="arxiv_rss")
    source = Source.objects.create(
        name="all", url="https://rss.arxiv.org/rss/cs.CL", announce_types=""
    )
    ingest_bytes(RSS.read_bytes(), source="rss", from_source=source)
    paper = Paper.objects.get(arxiv_id="2502.01234")
    assert paper.arxiv_version == 3 and paper.abstract.startswith("We revisit tokenizer-free")
    # The OAI-PMH record of the same version has another abstract: not newer, not taken.
    ingest(OAI_2)
    paper.refresh_from_db()
    assert paper.abstract.startswith("We revisit tokenizer-free models (v3 adds")
    assert paper.categories == ["cs.CL", "cs.LG"]  # arXiv's latest listing of the paper


@pytest.mark.django_db
def test_replacements_are_left_out_unless_the_source_takes_them() -> None:
    result = ingest(RSS)
    assert (result.papers, result.new) == (4, 2)
    assert set(Paper.objects.values_list("arxiv_id", flat=True)) == {"2503.07100", "2503.07365"}
    everything = Source.objects.create(
        name="every announcement",
        url="https://rss.arxiv.org/rss/cs.CL+cs.LG",
        announce_types="new cross replace replace-cross",
    )
    again = ingest_bytes(RSS.read_bytes(), source="rss", from_source=everything)
    assert (again.new, again.updated) == (2, 2)


@pytest.mark.django_db
def test_a_source_keeps_only_papers_in_its_categories() -> None:
    robotics = Source.objects.create(name="robots", url="https://x.example/oai", categories="cs.RO")
    result = ingest_bytes(OAI_1.read_bytes(), source="oai", from_source=robotics)
    assert (result.status, result.papers, result.new) == ("ok", 2, 1)
    assert list(Paper.objects.values_list("arxiv_id", flat=True)) == ["2503.07200"]
    archive = Source.objects.create(name="all cs", url="https://x.example/oai2", categories="cs")
    assert ingest_bytes(OAI_1.read_bytes(), source="oai", from_source=archive).new == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data",
    [
        RSS.read_bytes()[:-200],
        OAI_BAD_TOKEN.read_bytes(),
        OAI_NO_RECORDS.read_bytes(),
        RSS_EMPTY.read_bytes(),
        API_ERROR.read_bytes(),
    ],
)
def test_bad_arxiv_input_is_a_failed_run_and_nothing_is_stored(data: bytes) -> None:
    result = ingest_bytes(data, source="bad.xml")
    assert result.status == IngestRun.FAILED and result.error
    run = IngestRun.objects.get()
    assert run.error == result.error and run.status == IngestRun.FAILED
    assert not Paper.objects.exists() and not run.sightings.exists()


@pytest.mark.django_db
def test_topics_tag_arxiv_papers_by_category_at_ingest() -> None:
    robots = Topic.objects.create(name="Robotics", slug="robotics", query="cat:cs.RO")
    vision = Topic.objects.create(name="Vision", slug="vision", query="category:cs.CV video")
    ingest(OAI_1)
    assert list(robots.papers.values_list("arxiv_id", flat=True)) == ["2503.07200"]
    assert list(vision.papers.values_list("arxiv_id", flat=True)) == ["2503.05511"]


# --- The category field -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("category:cs.CL", "category:cs.cl"),
        ("cat:cs.*", "category:cs.*"),
        ("CAT:q-bio.NC", "category:q-bio.nc"),
        ("diffusion cat:(cs.CV OR cs.LG) -cat:cs.RO", None),
    ],
)
def test_categories_are_a_field_of_the_query_language(text: str, canonical: str | None) -> None:
    query = parse_query(text)
    assert canonical is None or query.canonical == canonical
    assert parse_query(query.canonical) == query


@pytest.mark.parametrize("text", ["cat:c", "cat:cs.CL.x", "cat:*", "cat:2503", 'cat:""', "cat:"])
def test_a_category_that_is_not_one_is_a_query_error(text: str) -> None:
    with pytest.raises(QueryError):
        parse_query(text)


PAPERS = [
    PaperText(1, "Video diffusion", "", (), 0.0, ("cs.CV", "cs.LG")),
    PaperText(2, "Diffusion policies for robots", "", (), 1.0, ("cs.RO", "cs.LG")),
    PaperText(3, "Diffusion on manifolds", "", (), 2.0, ("math-ph",)),
    PaperText(4, "Diffusion equations", "", (), 3.0, ("math.AP",)),
    PaperText(5, "Diffusion from Hugging Face", "", (), 4.0, ()),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("diffusion cat:(cs.CV OR cs.LG) -cat:cs.RO", [1]),
        ("cat:math", [4]),  # the archive, not math-ph
        ("cat:math*", [3, 4]),
        ("category:CS.*", [1, 2]),
        ("diffusion -cat:cs.*", [3, 4, 5]),
    ],
)
def test_engine_and_reference_agree_on_categories(text: str, expected: list[int]) -> None:
    query = parse_query(text)
    reference = [
        p.id for p in PAPERS if reference_match(query, p.title, p.abstract, p.authors, p.categories)
    ]
    found = match_edition(PAPERS, [(1, [text], [])], {}, top_n=10)[1]
    assert reference == expected
    assert sorted(m.paper_id for m in found) == expected


def test_a_category_match_is_a_weak_one() -> None:
    [title_and_category] = match_edition(PAPERS, [(1, ["video cat:cs.CV"], [])], {})[1]
    [category_only] = match_edition(PAPERS, [(1, ["cat:cs.CV"], [])], {})[1]
    assert int(title_and_category.score) == 2 and int(category_only.score) == 1
    assert [str(h) for h in category_only.reasons[0].hits] == ["cs.cv in category"]


# --- Sources ----------------------------------------------------------------------------


def test_the_next_announcement_is_at_8pm_eastern_sunday_to_thursday() -> None:
    # Tuesday 11 March 2025, 12:00 UTC (08:00 EDT) -> the same day at 20:00 EDT.
    assert next_announcement(datetime(2025, 3, 11, 12, tzinfo=UTC)) == datetime(
        2025, 3, 12, 0, tzinfo=UTC
    )
    # Friday 14 March, 23:00 EDT: nothing on Friday or Saturday -> Sunday 20:00 EDT.
    assert next_announcement(datetime(2025, 3, 15, 3, tzinfo=UTC)) == datetime(
        2025, 3, 17, 0, tzinfo=UTC
    )
    # Thursday 6 March, 20:00 EST exactly -> the next, Sunday 9 March (EDT from that day).
    assert next_announcement(datetime(2025, 3, 7, 1, tzinfo=UTC)) == datetime(
        2025, 3, 10, 0, tzinfo=UTC
    )


def test_paging_moves_start_on_and_stops_at_the_end() -> None:
    url = "http://arxiv.test/api/query?search_query=cat:cs.CL&start=0&max_results=3"
    page = parse(API).paging
    assert next_page_url(url, page) == url.replace("start=0", "start=3")
    last = type(page)(total=7, start=6, per_page=3)
    assert next_page_url(url, last) == ""
    token = parse(OAI_1).paging
    assert (
        next_page_url("http://arxiv.test/oai2?verb=ListRecords&metadataPrefix=arXiv&set=cs", token)
        == "http://arxiv.test/oai2?verb=ListRecords&resumptionToken=6960524%7C1001"
    )


@pytest.mark.django_db
def test_an_rss_source_is_fetched_after_the_announcement_with_conditional_requests(
    server: PageServer,
) -> None:
    url = server.serve("/rss/cs.CL+cs.LG", Page(RSS.read_bytes(), etag='"day-1"', content_type=XML))
    source, _ = add_source("arXiv CL+LG", url, format="arxiv_rss", categories="cs.CL cs.LG")
    first = fetch_source(source.pk)
    assert first is not None and (first.status, first.papers, first.new) == ("ok", 4, 2)
    source.refresh_from_db()
    assert source.etag == '"day-1"' and source.last_fetched_at is not None
    assert source.next_fetch_at == next_announcement(source.last_fetched_at) + timedelta(minutes=30)
    second = fetch_source(source.pk)
    assert second is not None and second.status == IngestRun.NOT_MODIFIED
    assert server.requests[-1][1]["if-none-match"] == '"day-1"'
    assert IngestRun.objects.filter(from_source=source).count() == 2


@pytest.mark.django_db
def test_an_api_source_pages_within_the_limits_one_run_per_request(
    server: PageServer, settings: Any
) -> None:
    entries = make_entries(7)
    base = "/api/query?search_query=cat:cs.CL&start={}&max_results=3"
    for start in (0, 3, 6):
        server.serve(
            base.format(start),
            Page(atom_feed(entries[start : start + 3], start=start, total=7), content_type=XML),
        )
    source = Source.objects.create(name="api", url=server.url(base.format(0)), format="arxiv_api")
    result = fetch_source(source.pk)
    assert result is not None and (result.status, result.papers, result.new) == ("ok", 7, 7)
    assert server.paths_requested() == [base.format(s) for s in (0, 3, 6)]
    assert IngestRun.objects.filter(from_source=source, status="ok").count() == 3
    assert Paper.objects.count() == 7

    settings.ARXIV_MAX_PAGES = 2
    Paper.objects.all().delete()
    fetch_source(source.pk)
    assert Paper.objects.count() == 6 and len(server.requests) == 3 + 2


@pytest.mark.django_db
def test_requests_to_arxiv_are_spaced_by_the_interval(server: PageServer, settings: Any) -> None:
    settings.ARXIV_REQUEST_INTERVAL = 1
    entries = make_entries(4)
    base = "/api/query?search_query=cat:cs.RO&start={}&max_results=2"
    for start in (0, 2):
        server.serve(
            base.format(start),
            Page(atom_feed(entries[start : start + 2], start=start, total=4), content_type=XML),
        )
    source = Source.objects.create(name="api", url=server.url(base.format(0)), format="arxiv_api")
    assert fetch_source(source.pk, sleep=time.sleep) is not None
    first, second = server.times
    assert second - first >= 0.95


@pytest.mark.django_db
def test_an_oai_harvest_follows_tokens_honours_retry_after_and_moves_on(
    server: PageServer,
) -> None:
    first_path = "/oai2?verb=ListRecords&metadataPrefix=arXiv&set=cs&from=2025-03-10"
    server.serve_in_turn(
        first_path,
        [
            Page(b"busy", status=503, headers={"Retry-After": "7"}),
            Page(OAI_1.read_bytes(), content_type=XML),
        ],
    )
    server.serve(
        "/oai2?verb=ListRecords&resumptionToken=6960524%7C1001",
        Page(OAI_2.read_bytes(), content_type=XML),
    )
    source = Source.objects.create(name="harvest", url=server.url(first_path), format="arxiv_oai")
    slept: list[float] = []
    result = fetch_source(source.pk, sleep=slept.append)
    assert result is not None and (result.status, result.papers, result.new) == ("ok", 3, 3)
    assert slept == [7.0]  # the server's Retry-After, and no other wait
    assert IngestRun.objects.filter(from_source=source).count() == 2  # one per page
    source.refresh_from_db()
    assert source.url == server.url(
        f"/oai2?verb=ListRecords&metadataPrefix=arXiv&set=cs&from={timezone.now().date()}"
    )


@pytest.mark.django_db
def test_a_bad_resumption_token_stops_the_harvest_and_keeps_the_pages_before(
    server: PageServer,
) -> None:
    first_path = "/oai2?verb=ListRecords&metadataPrefix=arXiv&set=cs&from=2025-03-10"
    server.serve(first_path, Page(OAI_1.read_bytes(), content_type=XML))
    server.serve(
        "/oai2?verb=ListRecords&resumptionToken=6960524%7C1001",
        Page(OAI_BAD_TOKEN.read_bytes(), content_type=XML),
    )
    source = Source.objects.create(name="harvest", url=server.url(first_path), format="arxiv_oai")
    result = fetch_source(source.pk)
    assert result is not None and result.status == IngestRun.FAILED
    assert result.error is not None and "badResumptionToken" in result.error
    assert Paper.objects.count() == 2  # the first page, stored whole
    source.refresh_from_db()
    assert source.url.endswith("from=2025-03-10")  # not harvested: the range stays
    assert source.last_status == "failed"


@pytest.mark.django_db
def test_add_source_makes_arxiv_urls_from_categories_and_checks_them() -> None:
    call_command("add_source", "robots", "--format", "arxiv_rss", "--categories", "cs.RO cs.LG")
    source = Source.objects.get(name="robots")
    assert source.url == "https://rss.arxiv.org/rss/cs.RO+cs.LG"
    assert source.announce_type_set() == {"new", "cross"}
    api, _ = add_source("api", "", format="arxiv_api", categories="cs.CL")
    assert api.url.startswith("https://export.arxiv.org/api/query?search_query=cat:cs.CL&")
    oai, _ = add_source("hep", "", format="arxiv_oai", categories="hep-th")
    assert "set=physics:hep-th&from=" in oai.url
    with pytest.raises(CommandError, match="Not an arXiv category: 12"):
        call_command("add_source", "bad", "--format", "arxiv_rss", "--categories", "cs.CL 12")
    with pytest.raises(ValidationError, match="Unknown: sometimes"):
        add_source("bad", "", format="arxiv_rss", categories="cs.CL", announce_types="sometimes")
    with pytest.raises(ValidationError, match="or categories, for an arXiv source"):
        add_source("bad", "", format="html")


# --- Digests ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_arxiv_papers_reach_digests_saying_where_they_came_from(outbox: Path) -> None:
    ingest(HF_JSON)
    ingest(API)
    ingest(OAI_1)
    ada = make_subscriber("ada@example.org", ["cat:cs.RO", "router"])
    grace = make_subscriber("grace@example.org", ["attention cat:cs.CL"])
    sent = {r.subscriber_id: r for r in deliver([ada.pk, grace.pk])}
    message = email.message_from_bytes(
        (outbox / f"digest-{sent[ada.pk].digest_id}.eml").read_bytes(), policy=policy.default
    )
    ada_text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    robots = ada_text[ada_text.index("Legged Robots Learn to Climb Stairs") :]
    facts = [line for line in robots.split("Why:")[0].splitlines() if "via " in line]
    assert facts and facts[0].rstrip().endswith("· via arXiv")  # the card's facts line
    moe = ada_text[ada_text.index("Scaling Sparse Mixture-of-Experts") :]
    assert "via Hugging Face · arXiv" in moe.split("Why:")[0]
    html = (outbox / f"digest-{sent[grace.pk].digest_id}.html").read_text()
    assert "Hierarchical &lt;mask&gt; Tokens &amp; Sparse Routing" in html
    assert "<mask>" not in html and "via arXiv" in html


@pytest.mark.django_db
def test_an_arxiv_source_added_in_the_admin_gets_its_url_from_the_categories() -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("mod", "mod@example.org", "pw"))
    form = {
        "name": "arXiv robotics",
        "url": "",
        "format": "arxiv_rss",
        "categories": "cs.RO, cs.SY",
        "announce_types": "new cross",
        "enabled": "on",
        "interval": "01:00:00",
        "next_fetch_at_0": "2025-03-11",
        "next_fetch_at_1": "08:00:00",
    }
    response = client.post("/admin/digest/source/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    source = Source.objects.get(name="arXiv robotics")
    assert source.url == "https://rss.arxiv.org/rss/cs.RO+cs.SY"
    response = client.post(
        "/admin/digest/source/add/", {**form, "name": "bad", "categories": "<b>cs.RO</b>"}
    )
    assert response.status_code == 200
    assert "Not an arXiv category: &lt;b&gt;cs.RO&lt;/b&gt;" in response.content.decode()


@pytest.mark.django_db
def test_a_source_without_a_url_is_a_failed_run_not_a_crash() -> None:
    source = Source.objects.create(name="blank", url="", format="arxiv_rss")
    result = fetch_source(source.pk)
    assert result is not None and result.status == IngestRun.FAILED
    assert (result.source, result.error) == ("source 'blank'", "the source has no URL")


# --- Editions of a realistic size -------------------------------------------------------


@pytest.mark.django_db
def test_a_day_of_a_thousand_announcements_reaches_a_digest_by_category(outbox: Path) -> None:
    entries = make_entries(1000)
    Topic.objects.create(name="Robots", slug="robots", query="cat:cs.RO")
    result = ingest_bytes(rss_feed(entries), source="rss")
    assert (result.status, result.papers, result.new) == ("ok", 1000, 1000)
    robots = {e.arxiv_id for e in entries if "cs.RO" in e.categories}
    assert set(Topic.objects.get().papers.values_list("arxiv_id", flat=True)) == robots
    filters = ["cat:cs.RO " + " ".join(f"-nomatch{n}" for n in range(19))] + [
        f'"no such phrase {n}" ' + "x" * (270 - len(str(n))) for n in range(19)
    ]
    assert all(len(f) <= 300 for f in filters)
    ada = make_subscriber("ada@example.org", filters)
    [sent] = deliver([ada.pk])
    assert sent.status == "sent"
    items = DigestItem.objects.filter(digest_id=sent.digest_id).select_related("paper")
    assert items.count() == 10
    assert all(item.paper.arxiv_id in robots for item in items)


@pytest.mark.django_db
def test_papers_hugging_face_never_listed_rank_by_recency(outbox: Path) -> None:
    today = timezone.localdate()

    def paper(title: str, days_old: int, upvotes: int, origins: list[str]) -> Paper:
        return Paper.objects.create(
            title=title,
            title_key=normalise_title(title),
            abstract="",
            upvotes=upvotes,
            published_on=today - timedelta(days=days_old),
            origins=origins,
            categories=["cs.RO"],
        )

    older = paper("Grasping, older", 3, 0, ["arXiv"])
    newer = paper("Grasping, newer", 1, 0, ["arXiv"])
    voted = paper("Grasping, voted", 3, 40, ["Hugging Face", "arXiv"])
    ada = make_subscriber("ada@example.org", ["cat:cs.RO"])
    [sent] = deliver([ada.pk])
    order = list(
        DigestItem.objects.filter(digest_id=sent.digest_id)
        .order_by("rank")
        .values_list("paper_id", flat=True)
    )
    assert order == [voted.pk, newer.pk, older.pk]
