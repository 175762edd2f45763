"""Relevance that learns: paper embeddings from the local model, subscriber profiles from
feedback, and digests that use them (docs/relevance.md)."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command
from django.db import transaction

from digest import tasks
from digest.ingest.store import ingest_source
from digest.models import Feedback, Paper, PaperEmbedding
from digest.relevance.embed import DIMENSIONS, MODEL_NAME, embed_texts, load_vectors
from digest.relevance.profile import Evidence, centroid
from digest.relevance.vectors import from_bytes, to_bytes
from subscriptions.models import Subscriber

from .conftest import PAGE_004, make_subscriber

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
