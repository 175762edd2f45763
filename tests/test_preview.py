"""Filter previews answer from one index of the recent papers, built once per edition and
rebuilt when the papers change, agree with the reference evaluator, and are throttled
on every page that offers them."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from digest.ingest.store import ingest_source
from digest.matching import preview
from digest.matching.engine import PaperText, reference_top
from digest.matching.query import (
    parse_query,
    reference_together,
    together_phrase,
)
from digest.models import Paper

from .conftest import ALL_PAGES, PAGE_004, make_subscriber
from .test_signup import add_paper

QUERIES = [
    "diffusion",
    "video -diffusion",
    '"language model" OR reasoning',
    "vision transformer",
    "agent*",
    "title:benchmark",
    "mamba OR state",
]


@pytest.fixture(autouse=True)
def _empty_throttles() -> None:
    cache.clear()


def reads_papers(queries: CaptureQueriesContext) -> bool:
    return any('"abstract"' in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db
def test_previews_share_one_index_until_the_papers_change() -> None:
    ingest_source(str(PAGE_004))
    with CaptureQueriesContext(connection) as first:
        count, _ = preview.preview("diffusion")
    assert reads_papers(first) and count > 0
    for text in QUERIES:
        with CaptureQueriesContext(connection) as later:
            preview.preview(text)
        # Only the edition key is read: no paper is scanned again.
        assert not reads_papers(later), text
        assert len(later.captured_queries) == 2

    # A new paper, a hidden one: the next preview sees them (with PREVIEW_INDEX_TTL
    # seconds between checks in production; none in the tests).
    add_paper("Diffusion for weather", "diffusion", upvotes=10_000)
    count_after, papers = preview.preview("diffusion")
    assert count_after == count + 1
    assert papers[0].title == "Diffusion for weather"
    Paper.objects.get(title="Diffusion for weather").hide("spam")
    assert preview.preview("diffusion")[0] == count


@pytest.mark.django_db
def test_a_process_checks_for_new_papers_at_most_once_per_ttl(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(preview, "_current", None)
    settings.PREVIEW_INDEX_TTL = 3600
    ingest_source(str(PAGE_004))
    assert preview.preview("diffusion")[0] > 0
    with CaptureQueriesContext(connection) as queries:
        for text in QUERIES:
            preview.preview(text)
    assert queries.captured_queries == []


@pytest.mark.django_db
def test_previews_agree_with_the_reference_evaluator() -> None:
    for page in ALL_PAGES:
        ingest_source(str(page))
    rows = list(preview.recent())
    texts = [
        PaperText(p.pk, p.title, p.abstract, tuple(p.authors or ()), -float(i))
        for i, p in enumerate(rows)
    ]
    for text in QUERIES:
        query = parse_query(text)
        expected = reference_top(texts, [query], top_n=len(texts))
        phrase = together_phrase(text)
        if phrase is not None:  # papers holding the words together come first
            together = {p.id for p in texts if reference_together(phrase, p.title, p.abstract)}
            expected.sort(key=lambda e: e[0] not in together)  # stable: keeps the rest's order
        count, papers = preview.preview(text)
        assert count == len(expected), text
        assert [p.pk for p in papers] == [pid for pid, _ in expected[: preview.PREVIEW_LIMIT]]


@pytest.mark.django_db
def test_the_settings_page_preview_is_throttled(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.THROTTLES = {**settings.THROTTLES, "preview-ip": (2, 60)}
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    session = client.session
    session["subscriptions.subscriber"] = str(ada.uuid)
    session.save()
    item = ada.filters.get()
    posts = [
        ("/manage/filters/", {"new-query": "diffusion", "action": "preview"}),
        (f"/manage/filters/{item.pk}/", {f"f{item.pk}-query": "video", "action": "preview"}),
        ("/manage/filters/", {"new-query": "agents", "action": "preview"}),
    ]
    assert [client.post(url, data).status_code for url, data in posts] == [200, 200, 429]
    assert client.get("/preview.json", {"q": "diffusion"}).status_code == 429
    # Saving is not a preview: it is not counted against the limit.
    response = client.post("/manage/filters/", {"new-query": "agents", "action": "save"})
    assert response.status_code == 302


@pytest.mark.django_db
def test_a_preview_of_plain_words_says_how_many_hold_them_as_a_phrase(client: Client) -> None:
    for page in ALL_PAGES:
        ingest_source(str(page))
    data = client.get("/preview.json", {"q": "vision transformer"}).json()
    quoted = client.get("/preview.json", {"q": "“vision transformer”"}).json()
    assert data["phrase"] == '"vision transformer"'
    assert 0 < quoted["count"] == data["as_phrase"] <= data["together"] < data["count"]
    assert quoted["phrase"] is None and quoted["together"] == quoted["as_phrase"] == 0
    # The papers holding the words together are listed first, then the scattered ones.
    phrase = together_phrase("vision transformer")
    assert phrase is not None
    listed = [Paper.objects.get(title=p["title"]) for p in data["papers"]]
    held = [bool(reference_together(phrase, p.title, p.abstract)) for p in listed]
    assert held == sorted(held, reverse=True) and held[0]
    html = preview.preview_result("vision transformer")
    assert (html.together, html.as_phrase) == (data["together"], data["as_phrase"])


@pytest.mark.django_db
def test_a_preview_warns_of_a_lower_case_or_between_words(client: Client) -> None:
    ingest_source(str(PAGE_004))
    data = client.get("/preview.json", {"q": "mamba or diffusion"}).json()
    assert data["ok"]
    assert data["warnings"] == [
        "“or” in lower case is an ordinary word that papers must contain; "
        "write OR in capitals to match either word"
    ]
    assert client.get("/preview.json", {"q": "mamba OR diffusion"}).json()["warnings"] == []
    refused = client.get("/preview.json", {"q": "the of and"}).json()
    assert not refused["ok"]
    assert "nearly every paper" in refused["error"]["message"]


@pytest.mark.django_db
def test_the_settings_page_preview_says_how_many_hold_the_words_together(client: Client) -> None:
    for page in ALL_PAGES:
        ingest_source(str(page))
    ada = make_subscriber("ada@example.org", ["mamba"])
    session = client.session
    session["subscriptions.subscriber"] = str(ada.uuid)
    session.save()
    data = client.get("/preview.json", {"q": "vision transformer"}).json()
    assert data["as_phrase"] < data["together"]  # some hold them near, not as the phrase
    page = client.post(
        "/manage/filters/", {"new-query": "vision transformer", "action": "preview"}
    ).content.decode()
    assert (
        f"<strong>{data['together']}</strong> with the words together, listed first; "
        f"<strong>{data['as_phrase']}</strong> as a phrase — use quotes to keep only those: "
        "<code>&quot;vision transformer&quot;</code>"
    ) in page
