"""Curated topics: what a topic's query would match before it is saved, and re-tagging
recent papers after it is. Papers are tagged at ingest (:mod:`digest.ingest.store`).

A topic may also have a semantic part (docs/relevance.md): a paper joins it when the
cosine similarity of its embedding to the topic's centroid — the mean of the embedding of
its description and of its example papers, normalised — is at least ``Topic.similarity``.
Papers are tagged so once embedded (:func:`tag_semantic_topics`, after each ingest's
embeddings) and when the topic is saved (:func:`retag_topic`); the preview shows the
papers around the threshold (:func:`preview_similarity`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from digest.matching.engine import PaperText, tag_papers
from digest.matching.query import QueryError, parse_query
from digest.models import Paper, Topic
from digest.relevance.embed import embed_texts, load_vectors
from digest.relevance.vectors import normalise
from subscriptions.schedule import WEEKLY, window

__all__ = [
    "PREVIEW_DAYS",
    "SimilarityPreview",
    "TopicPreview",
    "preview_similarity",
    "preview_topic_query",
    "retag_topic",
    "semantic_members",
    "tag_semantic_topics",
    "topic_centroid",
]

PREVIEW_DAYS = 7
"""A topic preview counts the papers seen on the pages in this many past days."""


def _paper_texts(since: datetime) -> list[PaperText]:
    rows = Paper.objects.filter(last_seen_at__gte=since).values_list(
        "id", "title", "abstract", "authors", "categories"
    )
    return [
        PaperText(
            id=pk,
            title=title,
            abstract=abstract,
            authors=tuple(authors or ()),
            categories=tuple(categories or ()),
        )
        for pk, title, abstract, authors, categories in rows
    ]


@dataclass
class TopicPreview:
    """What a topic query would match: ``papers`` seen in the last :data:`PREVIEW_DAYS`
    days (``sample``: up to 10 of their titles, most upvoted first), and ``subscribers``,
    the deliverable subscribers following the topic, who would get them."""

    query: str
    papers: int = 0
    subscribers: int = 0
    sample: list[str] = field(default_factory=list)
    error: str = ""


def preview_topic_query(
    query_text: str, topic: Topic | None = None, now: datetime | None = None
) -> TopicPreview:
    """Count what ``query_text`` would match, without saving anything.

    ``topic`` is the topic being edited (None for a new one: nobody follows it yet).
    A query that does not parse gives a preview with ``error`` set
    (:meth:`QueryError.describe`) and zero counts.
    """
    preview = TopicPreview(query=query_text)
    try:
        parse_query(query_text)
    except QueryError as error:
        preview.error = error.describe(query_text)
        return preview
    now = now or timezone.now()
    matched = tag_papers({0: query_text}, _paper_texts(now - timedelta(days=PREVIEW_DAYS)))[0]
    preview.papers = len(matched)
    preview.sample = list(
        Paper.objects.filter(pk__in=matched)
        .order_by(F("upvotes").desc(nulls_last=True), "-id")
        .values_list("title", flat=True)[:10]
    )
    if topic is not None and topic.pk:
        preview.subscribers = topic.subscribers.deliverable().count()
    return preview


def topic_centroid(description: str, example_ids: list[int]) -> npt.NDArray[np.float32] | None:
    """The unit mean of the embedding of ``description`` (when not blank) and of the
    stored embeddings of the papers ``example_ids``; None when there is neither."""
    rows = []
    if description.strip():
        rows.append(embed_texts([description.strip()])[0])
    _, examples = load_vectors(example_ids)
    rows.extend(examples)
    if not rows:
        return None
    return normalise(np.mean(rows, axis=0))


def _similarities(centroid: npt.NDArray[np.float32], paper_ids: list[int]) -> dict[int, float]:
    ids, matrix = load_vectors(paper_ids)
    return dict(zip(ids, (matrix @ centroid).tolist(), strict=True))


def semantic_members(topic: Topic, paper_ids: list[int]) -> set[int]:
    """Those of ``paper_ids`` (with an embedding) whose cosine similarity to the topic's
    centroid is at least ``topic.similarity``; empty when the topic has no semantic part."""
    if topic.similarity is None:
        return set()
    centroid = topic_centroid(topic.description, list(topic.examples.values_list("pk", flat=True)))
    if centroid is None:
        return set()
    return {pk for pk, cos in _similarities(centroid, paper_ids).items() if cos >= topic.similarity}


def _tag(topic_id: int, paper_ids: set[int]) -> int:
    through = Paper.topics.through
    created = through.objects.bulk_create(
        [through(topic_id=topic_id, paper_id=pk) for pk in paper_ids], ignore_conflicts=True
    )
    return len(created)


def tag_semantic_topics(paper_ids: list[int]) -> int:
    """Tag ``paper_ids`` with every topic with a semantic part they are similar enough to
    (existing tags stay). Returns how many (topic, paper) pairs were found."""
    found = 0
    for topic in Topic.objects.filter(similarity__isnull=False):
        members = semantic_members(topic, paper_ids)
        _tag(topic.pk, members)
        found += len(members)
    return found


@dataclass
class SimilarityPreview:
    """The papers of the last :data:`PREVIEW_DAYS` days around a similarity threshold:
    ``above`` (count) would join; ``near`` holds up to 6 papers on each side of the
    threshold as ``(cosine, title)``, most similar first, to help choose it."""

    threshold: float | None
    above: int = 0
    near: list[tuple[float, str]] = field(default_factory=list)
    error: str = ""


def preview_similarity(
    description: str,
    example_ids: list[int],
    threshold: float | None,
    now: datetime | None = None,
) -> SimilarityPreview:
    """What a semantic part would take in, without saving anything (a threshold of None
    shows the most similar papers)."""
    preview = SimilarityPreview(threshold)
    centroid = topic_centroid(description, example_ids)
    if centroid is None:
        preview.error = "Give a description or example papers for the semantic part."
        return preview
    now = now or timezone.now()
    recent = list(
        Paper.objects.filter(last_seen_at__gte=now - timedelta(days=PREVIEW_DAYS)).values_list(
            "pk", flat=True
        )
    )
    ranked = sorted(_similarities(centroid, recent).items(), key=lambda item: -item[1])
    cut = len(ranked) if threshold is None else sum(cos >= threshold for _, cos in ranked)
    preview.above = cut if threshold is not None else 0
    window_ = ranked[max(0, cut - 6) : cut + 6] if threshold is not None else ranked[:12]
    titles = dict(Paper.objects.filter(pk__in=[pk for pk, _ in window_]).values_list("pk", "title"))
    preview.near = [(round(cos, 3), titles[pk]) for pk, cos in window_]
    return preview


def retag_topic(topic: Topic, now: datetime | None = None) -> tuple[int, int]:
    """Re-tag with ``topic`` the papers that can still go out in a digest (seen within
    the widest delivery window, :func:`subscriptions.schedule.window`), after its query or
    semantic part changed: the papers its query matches and those similar enough.

    Returns ``(added, removed)`` tag counts. Older papers keep their tags. Raises
    :class:`~digest.matching.query.QueryError` when the query does not parse.
    """
    if topic.query.strip():
        parse_query(topic.query)
    now = now or timezone.now()
    papers = _paper_texts(now - window(WEEKLY))
    matched = (
        tag_papers({topic.pk: topic.query}, papers)[topic.pk] if topic.query.strip() else set()
    )
    matched |= semantic_members(topic, [p.id for p in papers])
    recent = {p.id for p in papers}
    through = Paper.topics.through
    tagged = set(
        through.objects.filter(topic=topic, paper_id__in=recent).values_list("paper_id", flat=True)
    )
    with transaction.atomic():
        removed, _ = through.objects.filter(topic=topic, paper_id__in=tagged - matched).delete()
        through.objects.bulk_create(
            [through(topic=topic, paper_id=pid) for pid in matched - tagged],
            ignore_conflicts=True,
        )
    return len(matched - tagged), removed
