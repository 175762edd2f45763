"""Relevance that learns: paper embeddings from the local model, subscriber profiles from
feedback, and digests that use them (docs/relevance.md)."""

from __future__ import annotations

import email.message
import json
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.db import transaction

from digest import tasks
from digest.delivery.pipeline import DeliveryResult, deliver
from digest.ingest.store import ingest_source
from digest.matching.query import parse_query, reference_match
from digest.models import Digest, DigestItem, Feedback, Paper, PaperEmbedding, Topic
from digest.relevance.embed import (
    DIMENSIONS,
    MAX_TOKENS,
    MODEL_NAME,
    compute_dtype,
    embed_texts,
    load_vectors,
    missing_embeddings,
)
from digest.relevance.profile import Evidence, centroid
from digest.relevance.score import EditionVectors, Learner, learned_scores, learned_scores_many
from digest.relevance.vectors import from_bytes, normalise, to_bytes
from subscriptions.models import Subscriber

from .conftest import PAGE_002, PAGE_004, make_subscriber
from .test_signup import sent

pytestmark = pytest.mark.django_db


def test_the_model_runs_offline_and_puts_similar_papers_closer() -> None:
    vectors = embed_texts(
        [
            "Mamba: linear-time sequence modeling with selective state spaces.",
            "Structured state space models for long sequences, an alternative to attention.",
            "A recipe for sourdough bread with a long cold fermentation.",
        ]
    )
    assert vectors.shape == (3, DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_bfloat16_and_float32_give_the_same_vectors() -> None:
    if compute_dtype() != "bfloat16":
        pytest.skip("this CPU has no native bfloat16: the model runs in float32 only")
    texts = [
        "Mamba: linear-time sequence modeling with selective state spaces. "
        + "Foundation models, now powering most of the exciting applications in deep "
        + "learning, are almost universally based on the Transformer architecture. " * 8,
        "Scaling rectified flow transformers for high-resolution image synthesis.",
    ]
    fast = embed_texts(texts, dtype="bfloat16")
    exact = embed_texts(texts, dtype="float32")
    assert fast.dtype == exact.dtype == np.float32
    assert np.all(np.sum(fast * exact, axis=1) > 0.999)
    assert embed_texts(texts) == pytest.approx(fast)  # the default on this CPU


def test_a_paper_is_cut_at_max_tokens_word_pieces() -> None:
    words = " ".join(f"word{i}" for i in range(400))
    # Beyond the cut, text changes nothing; within it, it does.
    longer, cut, shorter = embed_texts([words + " unrelated tail", words, words[:200]])
    assert float(longer @ cut) == pytest.approx(1.0, abs=1e-6)
    assert float(cut @ shorter) < 0.999
    assert MODEL_NAME.endswith(f"/{MAX_TOKENS}")


def test_a_vector_of_another_variant_is_made_again() -> None:
    ingest_source(str(PAGE_004))
    call_command("embed_papers")
    paper = Paper.objects.order_by("id").first()
    assert paper is not None
    fresh = bytes(PaperEmbedding.objects.get(paper=paper).vector)
    # A vector of the former variant (the same model cut at 128 word pieces).
    stale = embed_texts([f"{paper.title}. {paper.abstract}"], max_tokens=128)[0]
    PaperEmbedding.objects.filter(paper=paper).update(
        model="all-MiniLM-L6-v2", vector=to_bytes(stale)
    )
    assert missing_embeddings() == [paper.pk]
    # Until it is made again, the former variant's vector is read (nothing stops working
    # after an upgrade); a vector of any other model never is.
    ids, matrix = load_vectors([paper.pk])
    assert ids == [paper.pk] and np.allclose(matrix[0], stale)
    PaperEmbedding.objects.filter(paper=paper).update(model="another-model")
    assert load_vectors([paper.pk])[0] == []
    # After an upgrade the newest papers are embedded again first.
    newest = Paper.objects.order_by("-id").first()
    assert newest is not None and newest.pk != paper.pk
    PaperEmbedding.objects.filter(paper=newest).update(model="all-MiniLM-L6-v2")
    assert missing_embeddings() == [newest.pk, paper.pk]
    call_command("embed_papers")
    row = PaperEmbedding.objects.get(paper=paper)
    assert row.model == MODEL_NAME
    remade = from_bytes(row.vector, DIMENSIONS)
    # The same vector as at ingest, up to bfloat16 rounding in another batch.
    assert float(remade @ from_bytes(fresh, DIMENSIONS)) > 0.9999
    assert float(remade @ stale) < 0.9999
    assert missing_embeddings() == []


def test_vectors_round_trip_through_bytes_and_refuse_a_wrong_length() -> None:
    vector = np.arange(DIMENSIONS, dtype=np.float32)
    data = to_bytes(vector)
    assert len(data) == 4 * DIMENSIONS
    assert np.array_equal(from_bytes(data, DIMENSIONS), vector)
    with pytest.raises(ValueError):
        from_bytes(data[:-2])
    with pytest.raises(ValueError):
        from_bytes(data, DIMENSIONS + 1)


def test_the_ingest_task_embeds_the_new_papers_once(django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        summary = tasks.ingest_page(str(PAGE_004))
    assert summary["error"] is None
    papers = Paper.objects.count()
    assert papers == 53
    assert PaperEmbedding.objects.filter(model=MODEL_NAME).count() == papers
    # Idempotent: nothing left to embed, a second ingest embeds nothing new.
    assert tasks.ingest_embeddings() == 0
    ids, matrix = load_vectors(Paper.objects.values_list("id", flat=True))
    assert len(ids) == papers and matrix.shape == (papers, DIMENSIONS)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


def test_the_backfill_command_embeds_papers_stored_before(capsys) -> None:  # type: ignore[no-untyped-def]
    ingest_source(str(PAGE_004))
    assert not PaperEmbedding.objects.exists()
    call_command("embed_papers")
    assert PaperEmbedding.objects.count() == Paper.objects.count()
    call_command("embed_papers")
    assert "every paper has an embedding" in capsys.readouterr().out


def test_a_profile_leans_to_liked_papers_and_away_from_disliked() -> None:
    liked, disliked, other = embed_texts(
        [
            "State space models for long sequence modeling.",
            "Text-to-video diffusion models.",
            "Selective state spaces make recurrent models competitive with transformers.",
        ]
    )
    u = centroid(Evidence(liked[None], disliked[None], np.zeros((0, DIMENSIONS), np.float32)))
    assert u is not None
    assert u @ other > u @ disliked
    empty = np.zeros((0, DIMENSIONS), np.float32)
    assert centroid(Evidence(empty, empty, empty)) is None


@pytest.mark.django_db(transaction=True)
def test_a_vote_rebuilds_the_profile_and_an_undo_rebuilds_it_again() -> None:
    ingest_source(str(PAGE_004))
    call_command("embed_papers")
    ada = make_subscriber("ada@example.org", ["mamba"])
    assert ada.profile == b"" or bytes(ada.profile) == b""
    paper = Paper.objects.order_by("id").first()
    assert paper is not None
    with transaction.atomic():
        vote = Feedback.objects.create(subscriber=ada, paper=paper, vote=Feedback.MORE)
    ada.refresh_from_db()
    profile = from_bytes(ada.profile, DIMENSIONS)
    own = from_bytes(PaperEmbedding.objects.get(paper=paper).vector, DIMENSIONS)
    assert profile @ own == pytest.approx(1.0, abs=1e-5)  # one liked paper: the profile is it
    first = ada.profile_updated_at
    assert first is not None
    with transaction.atomic():
        vote.delete()
    ada.refresh_from_db()
    assert bytes(ada.profile) == b"" and ada.profile_updated_at > first
    assert Subscriber.objects.get(pk=ada.pk).profile_updated_at is not None


def test_rebuilding_a_deleted_subscriber_does_nothing() -> None:
    assert tasks.rebuild_profile(999_999) is False


# --- Digests that use it ------------------------------------------------------------------


def _edition_with_embeddings() -> None:
    ingest_source(str(PAGE_002))
    call_command("embed_papers")


def _vote(subscriber: Subscriber, title: str, vote: int, capture) -> Paper:  # type: ignore[no-untyped-def]
    paper = Paper.objects.get(title__startswith=title)
    with capture(execute=True):
        Feedback.objects.create(subscriber=subscriber, paper=paper, vote=vote)
    return paper


def _items(result: DeliveryResult) -> list[DigestItem]:
    return list(Digest.objects.get(pk=result.digest_id).items.order_by("rank"))


def _message(outbox: Path) -> email.message.EmailMessage:
    [message] = sent(outbox, "digest")
    return message


def test_a_liked_paper_brings_suggestions_in_a_section_of_their_own(
    outbox: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    _edition_with_embeddings()
    ada = make_subscriber("ada@example.org", ["mamba"])
    grace = make_subscriber("grace@example.org", ["mamba"])
    liked = _vote(
        ada,
        "Mamba: Linear-Time Sequence Modeling",
        Feedback.MORE,
        django_capture_on_commit_callbacks,
    )
    ada.refresh_from_db()
    assert len(ada.profile) == 4 * DIMENSIONS

    results = {r.subscriber_id: r for r in deliver([ada.pk, grace.pk])}
    mine, theirs = _items(results[ada.pk]), _items(results[grace.pk])
    matched = {i.paper_id for i in theirs}
    assert not any(i.suggested for i in theirs)  # no profile: keyword matches only
    suggested = [i for i in mine if i.suggested]
    assert 0 < len(suggested) <= 3  # Subscriber.suggestions, default 3
    assert {i.paper_id for i in mine if not i.suggested} == matched
    assert [i.suggested for i in mine] == sorted(i.suggested for i in mine)  # they come last
    for item in suggested:
        assert item.paper_id not in matched and item.paper_id != liked.pk
        assert (
            item.reason
            == 'like "Mamba: Linear-Time Sequence Modeling with Selective State…", which you liked'
        )
    # Close in meaning, not in words: none of them says "mamba".
    titles = set(
        Paper.objects.filter(pk__in=[i.paper_id for i in suggested]).values_list("title", flat=True)
    )
    assert not any("mamba" in t.lower() for t in titles)

    message = next(m for m in sent(outbox, "digest") if m["To"] == ada.email)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    section = text.index("YOU MAY ALSO LIKE")
    for title in titles:
        assert text.index(title[:40]) > section
    assert html.index("You may also like") < html.index(html_escape(sorted(titles)[0][:30]))
    assert "which you liked" in html


def test_less_like_this_pushes_similar_matches_down_and_keeps_them_out_of_suggestions(
    outbox: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    _edition_with_embeddings()
    ada = make_subscriber("ada@example.org", ["mamba OR transformer"], suggestions=10)
    grace = make_subscriber("grace@example.org", ["mamba OR transformer"])
    liked = _vote(
        ada,
        "Mamba: Linear-Time Sequence Modeling",
        Feedback.MORE,
        django_capture_on_commit_callbacks,
    )
    disliked = _vote(ada, "MobileMamba", Feedback.LESS, django_capture_on_commit_callbacks)
    ada.refresh_from_db()
    results = {r.subscriber_id: r for r in deliver([ada.pk, grace.pk])}
    mine, theirs = _items(results[ada.pk]), _items(results[grace.pk])
    # Grace (no votes) gets the disliked paper among her matches; for Ada it falls out of
    # her ten or lower than it was.
    grace_rank = {i.paper_id: i.rank for i in theirs}
    ada_rank = {i.paper_id: i.rank for i in mine if not i.suggested}
    assert disliked.pk in grace_rank
    assert disliked.pk not in ada_rank or ada_rank[disliked.pk] > grace_rank[disliked.pk]
    suggested = [i.paper_id for i in mine if i.suggested]
    assert suggested  # the liked paper still brings some
    assert disliked.pk not in suggested
    ids, matrix = load_vectors([liked.pk, disliked.pk, *suggested])
    row = dict(zip(ids, matrix, strict=True))
    for pk in suggested:  # each is closer to the liked paper than to the disliked one
        assert row[pk] @ row[liked.pk] > row[pk] @ row[disliked.pk]


def test_a_paper_a_filter_matches_is_never_suggested_even_beyond_the_matches_ranked(
    outbox: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    _edition_with_embeddings()
    # A broad filter: it matches far more papers than the 2 × 2 ranked for this digest.
    ada = make_subscriber("ada@example.org", ["attention"], max_papers=2, suggestions=10)
    _vote(
        ada,
        "Mamba: Linear-Time Sequence Modeling",
        Feedback.MORE,
        django_capture_on_commit_callbacks,
    )
    [result] = deliver([ada.pk])
    items = _items(result)
    suggested = {i.paper_id for i in items if i.suggested}
    assert len(items) - len(suggested) == 2 and suggested
    query = parse_query("attention")

    def matches(paper: Paper) -> bool:
        return reference_match(query, paper.title, paper.abstract, paper.authors, paper.categories)

    assert sum(map(matches, Paper.objects.all())) > 2 * 2
    assert [p.title for p in Paper.objects.filter(pk__in=suggested) if matches(p)] == []


def test_no_suggestions_when_they_are_turned_off_or_nothing_matched(
    outbox: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    _edition_with_embeddings()
    ada = make_subscriber("ada@example.org", ["mamba"], suggestions=0)
    nobody = make_subscriber("nobody@example.org", ["protein folding"])
    for who in (ada, nobody):
        _vote(
            who,
            "Mamba: Linear-Time Sequence Modeling",
            Feedback.MORE,
            django_capture_on_commit_callbacks,
        )
    results = {r.subscriber_id: r for r in deliver([ada.pk, nobody.pk])}
    assert results[ada.pk].status == "sent"
    assert not any(i.suggested for i in _items(results[ada.pk]))
    assert results[nobody.pk].status == "empty"  # suggestions never make a digest alone


def test_a_title_with_markup_is_escaped_in_the_reason(
    outbox: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    _edition_with_embeddings()
    ada = make_subscriber("ada@example.org", ["mamba"])
    paper = Paper.objects.get(title__startswith="Mamba: Linear-Time")
    paper.title = '<script>alert(1)</script> "Mamba" & <b>state</b> spaces'
    paper.save()
    _vote(ada, "<script>", Feedback.MORE, django_capture_on_commit_callbacks)
    [result] = deliver([ada.pk])
    assert any(i.suggested for i in _items(result))
    html = _message(outbox).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_scoring_many_subscribers_at_once_equals_scoring_each() -> None:
    rng = np.random.default_rng(3)
    edition = EditionVectors(
        tuple(range(50)), normalise(rng.standard_normal((50, DIMENSIONS)).astype(np.float32))
    )
    rows = normalise(rng.standard_normal((20, DIMENSIONS)).astype(np.float32))
    empty = np.zeros((0, DIMENSIONS), np.float32)
    learners = {
        1: Learner(rows[0], rows[1:2], ("a",), ("liked",), empty, frozenset()),
        2: Learner(rows[2], rows[3:5], ("a", "b"), ("liked", "picked"), rows[5:8], frozenset()),
        3: Learner(rows[8], empty, (), (), rows[9:10], frozenset()),
    }
    many = learned_scores_many(learners, edition)
    for sid, learner in learners.items():
        assert np.allclose(many[sid], learned_scores(learner, edition), atol=1e-5)
    # A disliked paper's neighbours score lower than without the vote.
    assert many[2].mean() < (edition.matrix @ learners[2].profile).mean() + 1e-6


# --- Privacy ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_my_data_holds_my_profile_and_delete_me_takes_it_and_my_votes(client, outbox: Path) -> None:  # type: ignore[no-untyped-def]
    from .test_manage import sign_in

    _edition_with_embeddings()
    ada = make_subscriber("ada@example.org", ["mamba"])
    with transaction.atomic():
        Feedback.objects.create(
            subscriber=ada,
            paper=Paper.objects.get(title__startswith="Mamba: Linear-Time"),
            vote=Feedback.MORE,
        )
    deliver([ada.pk])
    ada.refresh_from_db()
    sign_in(client, ada)
    data = json.loads(client.get("/manage/data.json").content)
    profile = data["relevance_profile"]
    assert len(profile["float32_values"]) == DIMENSIONS
    assert np.allclose(profile["float32_values"], from_bytes(ada.profile, DIMENSIONS))
    assert profile["updated_at"] == ada.profile_updated_at.isoformat()
    papers = [p for d in data["digests"] for p in d["papers"]]
    assert any(p["suggested"] for p in papers) and not all(p["suggested"] for p in papers)

    assert client.post("/manage/delete/").status_code == 200
    assert not Subscriber.objects.filter(pk=ada.pk).exists()
    assert not Feedback.objects.filter(subscriber_id=ada.pk).exists()


# --- Semantic topics ----------------------------------------------------------------------

STATE_SPACES = "State space models: selective scans, linear-time recurrent sequence models as an alternative to attention"


def test_a_topic_without_a_query_takes_in_similar_papers_at_ingest_and_fills_digests(
    outbox: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    topic = Topic.objects.create(
        name="State spaces", slug="ssm", description=STATE_SPACES, query="", similarity=0.45
    )
    with django_capture_on_commit_callbacks(execute=True):
        tasks.ingest_page(str(PAGE_002))
    titles = set(topic.papers.values_list("title", flat=True))
    assert "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" in titles
    assert not any("Audio" in t or "Fashion" in t for t in titles)
    assert 1 <= len(titles) <= 15

    ada = make_subscriber("ada@example.org", [])
    ada.topics.add(topic)
    [result] = deliver([ada.pk])
    items = _items(result)
    assert {i.paper_id for i in items} == set(topic.papers.values_list("pk", flat=True))
    assert {i.reason for i in items} == {
        'matched topic "State spaces" (similar to its description and examples)'
    }


def test_saving_a_topic_with_examples_retags_recent_papers_and_the_preview_shows_the_threshold(
    admin_client,
) -> None:  # type: ignore[no-untyped-def]
    from django.urls import reverse

    _edition_with_embeddings()
    mamba = Paper.objects.get(title__startswith="Mamba: Linear-Time")
    survey = Paper.objects.get(title="A Survey of Mamba")
    response = admin_client.post(
        reverse("admin:digest_topic_add"),
        {
            "name": "State spaces",
            "slug": "ssm",
            "description": "",
            "query": "",
            "examples": f"{mamba.pk},{survey.pk}",
            "similarity": "0.5",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    topic = Topic.objects.get(slug="ssm")
    tagged = set(topic.papers.values_list("pk", flat=True))
    assert {mamba.pk, survey.pk} <= tagged

    page = admin_client.post(
        reverse("admin:digest_topic_preview"),
        {
            "query": "",
            "description": "",
            "examples": f"{mamba.pk},{survey.pk}",
            "similarity": "0.5",
        },
    ).content.decode()
    assert f"<strong data-similarity-above>{len(tagged)}</strong>" in page
    table = page[page.index('<table class="mod-similarity">') :]
    table = table[: table.index("</table>")]
    rows = table.count("<tr") - 1  # the header row
    below = table.count('class="below"')  # papers just under the threshold are shown too
    assert 0 < below < rows <= 12


def test_a_topic_needs_a_query_or_a_semantic_part(admin_client) -> None:  # type: ignore[no-untyped-def]
    from django.urls import reverse

    for fields, error in (
        ({"query": "", "similarity": ""}, "Give the topic a query"),
        ({"query": "", "similarity": "0.5"}, "needs a description or example papers"),
    ):
        response = admin_client.post(
            reverse("admin:digest_topic_add"),
            {"name": "Empty", "slug": "empty", "description": "", "examples": "", **fields},
        )
        assert response.status_code == 200 and error in response.content.decode()
    assert not Topic.objects.exists()


def test_votes_written_without_signals_are_caught_up_at_planning(outbox: Path) -> None:
    _edition_with_embeddings()
    ada = make_subscriber("ada@example.org", ["mamba"])
    Feedback.objects.bulk_create(  # bulk_create sends no post_save
        [
            Feedback(
                subscriber=ada,
                paper=Paper.objects.get(title__startswith="Mamba: Linear-Time"),
                vote=Feedback.MORE,
            )
        ]
    )
    ada.refresh_from_db()
    assert bytes(ada.profile) == b"" and ada.profile_updated_at is None
    [result] = deliver([ada.pk])
    assert any(i.suggested for i in _items(result))
    ada.refresh_from_db()
    assert len(ada.profile) == 4 * DIMENSIONS and ada.profile_updated_at is not None
