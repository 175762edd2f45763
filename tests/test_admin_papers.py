"""Moderating what goes out: papers (hide, pin, titles, merge), topics and blocked terms."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.delivery.plan import plan_digest
from digest.ingest.store import ingest_source
from digest.matching.blocked import blocked_terms_in
from digest.models import BlockedTerm, Digest, DigestItem, IngestRun, Paper, Sighting, Source, Topic
from subscriptions.models import Filter

from .conftest import PAGE_004, make_subscriber
from .test_admin_roles import action, moderator_client

PAPERS = reverse("admin:digest_paper_changelist")


@pytest.fixture
def mod() -> Client:
    return moderator_client()


def paper(title: str, abstract: str = "", **fields: object) -> Paper:
    values: dict[str, object] = {"title_key": title.lower(), "abstract": abstract or title}
    values.update(fields)
    return Paper.objects.create(title=title, **values)


# --- Hide and pin ---------------------------------------------------------------------


@pytest.mark.django_db
def test_hiding_asks_for_a_reason_then_keeps_the_paper_out_of_digests(mod: Client) -> None:
    ingest_source(str(PAGE_004))
    mamba = Paper.objects.filter(title__icontains="mamba").order_by("pk")
    target = mamba.first()

    form = action(mod, PAPERS, "hide_papers", [target.pk])
    assert form.status_code == 200
    assert "Reason:" in form.content.decode()
    target.refresh_from_db()
    assert target.hidden_at is None

    no_reason = action(mod, PAPERS, "hide_papers", [target.pk], apply="yes", reason="  ")
    assert "This field is required" in no_reason.content.decode()

    done = action(
        mod, PAPERS, "hide_papers", [target.pk], apply="yes", reason="Retracted by authors"
    )
    assert done.status_code == 302
    target.refresh_from_db()
    assert target.hidden_at is not None
    assert target.hidden_reason == "Retracted by authors"

    ada = make_subscriber("ada@example.org", ["mamba"])
    deliver([ada.pk], force=True)
    sent = set(DigestItem.objects.filter(subscriber=ada).values_list("paper_id", flat=True))
    assert sent and target.pk not in sent

    hidden_list = mod.get(PAPERS, {"state": "hidden"}).content.decode()
    assert target.title in hidden_list


@pytest.mark.django_db
def test_pinning_marks_papers_for_the_top_of_the_next_digests(mod: Client) -> None:
    shown, hidden = paper("Shown paper"), paper("Hidden paper")
    hidden.hide("spam")
    response = action(mod, PAPERS, "pin_papers", [shown.pk, hidden.pk])
    assert response.status_code == 302
    shown.refresh_from_db()
    hidden.refresh_from_db()
    assert shown.pinned_at is not None and hidden.pinned_at is None
    assert list(Paper.objects.pinned()) == [shown]
    messages = [str(m) for m in mod.get(PAPERS).context["messages"]]
    assert "1 hidden paper(s) not pinned: show them first." in messages

    pinned_page = mod.get(PAPERS, {"state": "pinned"}).content.decode()
    assert "Shown paper" in pinned_page and "Hidden paper" not in pinned_page

    action(mod, PAPERS, "unpin_papers", [shown.pk])
    shown.refresh_from_db()
    assert shown.pinned_at is None


@pytest.mark.django_db
def test_hiding_a_pinned_paper_unpins_it() -> None:
    p = paper("Pinned then hidden")
    p.pin()
    p.hide("duplicate of another listing")
    p.refresh_from_db()
    assert (p.state, p.pinned_at) == ("hidden", None)
    p.unhide()
    assert Paper.objects.visible().filter(pk=p.pk).exists()


# --- Titles ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_corrected_title_sticks_and_the_next_ingest_still_finds_the_paper(mod: Client) -> None:
    ingest_source(str(PAGE_004))
    target = Paper.objects.filter(arxiv_id__isnull=True).first() or Paper.objects.first()
    key, count = target.title_key, Paper.objects.count()
    url = reverse("admin:digest_paper_change", args=[target.pk])
    page = mod.get(url)
    assert page.status_code == 200
    data = {
        "title": "Corrected: " + target.title,
        "abstract": target.abstract,
        "authors": page.context["adminform"].form["authors"].value(),
    }
    response = mod.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    target.refresh_from_db()
    assert target.title.startswith("Corrected: ")
    assert target.title_key == key

    ingest_source(str(PAGE_004))
    target.refresh_from_db()
    assert Paper.objects.count() == count
    assert target.title.startswith("Corrected: ")


# --- Merge ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_merging_two_rows_moves_sightings_topics_and_digest_items(mod: Client) -> None:
    now = timezone.now()
    keep = paper("Mamba: Linear-Time Sequence Modeling", upvotes=10, first_seen_at=now)
    drop = paper(
        "Mamba - linear time sequence modeling",
        arxiv_id="2312.00752",
        upvotes=40,
        first_seen_at=now - timedelta(days=2),
        authors=["Albert Gu", "Tri Dao"],
    )
    run1, run2 = IngestRun.objects.create(source="a"), IngestRun.objects.create(source="b")
    Sighting.objects.create(paper=keep, run=run1, upvotes=10)
    Sighting.objects.create(paper=drop, run=run1, upvotes=40)  # same run: one survives
    Sighting.objects.create(paper=drop, run=run2, upvotes=41)
    ssm = Topic.objects.create(name="SSM", slug="ssm", query="mamba")
    drop.topics.add(ssm)
    ada = make_subscriber("ada@example.org", [])
    grace = make_subscriber("grace@example.org", [])
    for who, which in ((ada, keep), (ada, drop), (grace, drop)):
        digest, _ = Digest.objects.get_or_create(subscriber=who, period=f"p-{which.pk}")
        DigestItem.objects.create(digest=digest, subscriber=who, paper=which, rank=1)

    form = action(mod, PAPERS, "merge_two_papers", [keep.pk, drop.pk])
    assert form.status_code == 200
    assert "Choose the row to keep" in form.content.decode()

    done = action(
        mod, PAPERS, "merge_two_papers", [keep.pk, drop.pk], apply="yes", keep=str(keep.pk)
    )
    assert done.status_code == 302
    assert not Paper.objects.filter(pk=drop.pk).exists()
    keep.refresh_from_db()
    assert keep.title == "Mamba: Linear-Time Sequence Modeling"
    assert (keep.arxiv_id, keep.upvotes) == ("2312.00752", 40)
    assert keep.first_seen_at == now - timedelta(days=2)
    assert keep.authors == ["Albert Gu", "Tri Dao"]
    assert sorted(keep.sightings.values_list("run__source", flat=True)) == ["a", "b"]
    assert list(keep.topics.all()) == [ssm]
    items = DigestItem.objects.filter(paper=keep)
    assert sorted(items.values_list("subscriber__email", flat=True)) == [
        "ada@example.org",
        "grace@example.org",
    ]


@pytest.mark.django_db
def test_merge_needs_exactly_two_papers(mod: Client) -> None:
    rows = [paper(f"Paper {i}") for i in range(3)]
    response = action(
        mod, PAPERS, "merge_two_papers", [p.pk for p in rows], apply="yes", keep=str(rows[0].pk)
    )
    assert response.status_code == 302
    assert Paper.objects.count() == 3
    messages = [str(m) for m in mod.get(PAPERS).context["messages"]]
    assert "Select exactly two papers to merge." in messages
    with pytest.raises(ValueError):
        rows[0].merge(rows[0])


# --- Search and filters ---------------------------------------------------------------


@pytest.mark.django_db
def test_papers_are_searched_by_title_and_filtered_by_source_topic_and_date(mod: Client) -> None:
    daily = Source.objects.create(name="Daily papers", url="https://huggingface.co/papers")
    old = paper("Old diffusion paper", first_seen_at=timezone.now() - timedelta(days=40))
    new = paper("New vision transformer")
    run = IngestRun.objects.create(source=daily.url, from_source=daily)
    Sighting.objects.create(paper=new, run=run)
    vision = Topic.objects.create(name="Vision", slug="vision", query="vision")
    new.topics.add(vision)

    def titles(**params: str) -> set[str]:
        page = mod.get(PAPERS, params)
        assert page.status_code == 200
        return {p.title for p in page.context["cl"].result_list}

    assert titles(q="diffusion") == {"Old diffusion paper"}
    assert titles(source=str(daily.pk)) == {"New vision transformer"}
    assert titles(topics__id__exact=str(vision.pk)) == {"New vision transformer"}
    week_ago = (timezone.now() - timedelta(days=7)).isoformat()
    assert titles(first_seen_at__gte=week_ago) == {"New vision transformer"}
    assert old.pk and titles(state="visible") == {"Old diffusion paper", "New vision transformer"}


# --- Topics ---------------------------------------------------------------------------


def topic_form(**fields: str) -> dict[str, str]:
    return {"name": "Vision", "slug": "vision", "description": "", "query": "vision", **fields}


@pytest.mark.django_db
def test_a_topic_query_that_does_not_parse_is_refused_with_its_position(mod: Client) -> None:
    response = mod.post(reverse("admin:digest_topic_add"), topic_form(query='vision "transformer'))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["query"]
    assert errors == ['unclosed quote at character 8: vision ⟦"transformer']
    assert not Topic.objects.exists()


@pytest.mark.django_db
def test_the_topic_preview_counts_recent_papers_and_followers(mod: Client) -> None:
    recent = timezone.now() - timedelta(days=2)
    paper("Mamba for vision", last_seen_at=recent, upvotes=5)
    paper("State space models", abstract="We extend Mamba.", last_seen_at=recent)
    paper("Mamba long ago", last_seen_at=timezone.now() - timedelta(days=30))
    paper("Diffusion", last_seen_at=recent)
    ssm = Topic.objects.create(name="SSM", slug="ssm", query="diffusion")
    make_subscriber("ada@example.org", []).topics.add(ssm)
    make_subscriber("gone@example.org", [], unsubscribed_at=timezone.now()).topics.add(ssm)

    url = reverse("admin:digest_topic_preview")
    response = mod.post(url, {"query": "mamba", "topic_id": str(ssm.pk)})
    assert response.status_code == 200
    preview = response.context["preview"]
    assert (preview.papers, preview.subscribers) == (2, 1)
    assert preview.sample == ["Mamba for vision", "State space models"]
    html = response.content.decode()
    assert "<strong data-preview-papers>2</strong>" in html
    assert "<strong data-preview-subscribers>1</strong>" in html

    bad = mod.post(url, {"query": "mamba OR"})
    assert "OR needs a term on both sides at character 7" in bad.content.decode()
    assert mod.get(url).status_code == 405
    # The change form carries the preview button.
    change = mod.get(reverse("admin:digest_topic_change", args=[ssm.pk])).content.decode()
    assert 'id="topic-preview-button"' in change
    assert Topic.objects.get(pk=ssm.pk).query == "diffusion"  # nothing saved


@pytest.mark.django_db
def test_saving_a_changed_query_retags_recent_papers(mod: Client) -> None:
    recent = timezone.now() - timedelta(days=1)
    mamba = paper("Mamba for vision", last_seen_at=recent)
    diffusion = paper("Video diffusion", last_seen_at=recent)
    archived = paper("Diffusion of 2019", last_seen_at=timezone.now() - timedelta(days=60))
    response = mod.post(
        reverse("admin:digest_topic_add"), topic_form(name="Gen", slug="gen", query="diffusion")
    )
    assert response.status_code == 302
    topic = Topic.objects.get(slug="gen")
    assert set(topic.papers.all()) == {diffusion}  # the archived paper is outside the window

    archived.topics.add(topic)
    change = reverse("admin:digest_topic_change", args=[topic.pk])
    response = mod.post(change, topic_form(name="Gen", slug="gen", query="mamba"))
    assert response.status_code == 302
    assert set(topic.papers.all()) == {mamba, archived}
    messages = [
        str(m) for m in mod.get(reverse("admin:digest_topic_changelist")).context["messages"]
    ]
    assert "Re-tagged recent papers with “Gen”: 1 added, 1 removed." in messages

    # Tagged papers reach the topic's followers.
    ada = make_subscriber("ada@example.org", [])
    ada.topics.add(topic)
    digest = plan_digest(ada, timezone.now())
    assert list(digest.items.values_list("paper_id", flat=True)) == [mamba.pk]


# --- Blocked terms --------------------------------------------------------------------


@pytest.mark.django_db
def test_blocked_terms_are_found_whatever_the_case_plural_or_punctuation() -> None:
    BlockedTerm.objects.bulk_create(
        [BlockedTerm(term="deepfake"), BlockedTerm(term="face recognition")]
    )
    assert blocked_terms_in("Deepfakes detection") == ["deepfake"]
    assert blocked_terms_in('"face-recognition" -deepfake') == ["deepfake", "face recognition"]
    assert blocked_terms_in("recognition of faces") == []
    assert blocked_terms_in("deep fake") == []


@pytest.mark.django_db
def test_blocking_a_term_flags_the_filters_that_contain_it(mod: Client, outbox: Path) -> None:
    ada = make_subscriber("ada@example.org", ["deepfakes", "vision transformer"])
    grace = make_subscriber("grace@example.org", ["Deepfake detection OR forensics"])
    response = mod.post(
        reverse("admin:digest_blockedterm_add"), {"term": "Deepfake", "note": "abuse"}
    )
    assert response.status_code == 302
    flagged = set(Filter.objects.filter(flagged_for_review=True).values_list("query", flat=True))
    assert flagged == {"deepfakes", "Deepfake detection OR forensics"}
    assert not Filter.objects.get(subscriber=ada, query="vision transformer").flagged_for_review

    review = mod.get(
        reverse("admin:subscriptions_filter_changelist"), {"flagged_for_review__exact": "1"}
    )
    assert review.status_code == 200
    assert {f.subscriber_id for f in review.context["cl"].result_list} == {ada.pk, grace.pk}
    kept = Filter.objects.get(subscriber=grace)
    action(mod, reverse("admin:subscriptions_filter_changelist"), "keep_filters", [kept.pk])
    kept.refresh_from_db()
    assert not kept.flagged_for_review


@pytest.mark.django_db
def test_the_papers_list_shows_growth_recipients_topics_and_leads_with_pins(mod: Client) -> None:
    ingest_source(str(PAGE_004))
    papers = list(Paper.objects.order_by("-pk")[:3])
    papers[2].pin()
    ada = make_subscriber("ada@example.org", ["diffusion"])
    digest = Digest.objects.create(subscriber=ada, period="2026-11-30", status=Digest.SENT)
    DigestItem.objects.create(digest=digest, subscriber=ada, paper=papers[0], rank=1)
    page = mod.get(PAPERS)
    rows = page.context["cl"].result_list
    assert rows[0].pk == papers[2].pk  # the pinned paper first
    soup = BeautifulSoup(page.content, "html.parser")
    headers = {th.get_text(strip=True).lower() for th in soup.select("#result_list thead th")}
    assert {"growth", "sent to", "topics", "link"} <= headers
    by_id = {p.pk: p for p in rows}
    assert by_id[papers[0].pk].n_recipients == 1


@pytest.mark.django_db
def test_authors_are_edited_as_a_list_and_hide_and_pin_are_on_the_papers_page(mod: Client) -> None:
    ingest_source(str(PAGE_004))
    paper = Paper.objects.order_by("pk").first()
    url = reverse("admin:digest_paper_change", args=[paper.pk])
    page = mod.get(url)
    assert 'name="_pin"' in page.content.decode() and 'name="_hide"' in page.content.decode()
    data = {
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": "Ada Lovelace\n\n Alan Turing \n",
    }
    assert mod.post(url, {**data, "_pin": "1"}).status_code == 302
    paper.refresh_from_db()
    assert paper.authors == ["Ada Lovelace", "Alan Turing"] and paper.pinned_at is not None
    mod.post(url, {**data, "_hide": "1", "hide_reason": ""})
    paper.refresh_from_db()
    assert paper.hidden_at is None  # a reason is required
    mod.post(url, {**data, "_hide": "1", "hide_reason": "retracted"})
    paper.refresh_from_db()
    assert paper.hidden_at is not None and paper.hidden_reason == "retracted"
    assert paper.pinned_at is None  # hiding unpins
