"""Curated topics: what a topic's query would match before it is saved, and re-tagging
recent papers after it is. Papers are tagged at ingest (:mod:`digest.ingest.store`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from digest.matching.engine import PaperText, tag_papers
from digest.matching.query import QueryError, parse_query
from digest.models import Paper, Topic
from subscriptions.schedule import WEEKLY, window

__all__ = ["PREVIEW_DAYS", "TopicPreview", "preview_topic_query", "retag_topic"]

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


def retag_topic(topic: Topic, now: datetime | None = None) -> tuple[int, int]:
    """Re-tag with ``topic`` the papers that can still go out in a digest (seen within
    the widest delivery window, :func:`subscriptions.schedule.window`), after its query changed.

    Returns ``(added, removed)`` tag counts. Older papers keep their tags. Raises
    :class:`~digest.matching.query.QueryError` when the query does not parse.
    """
    parse_query(topic.query)
    now = now or timezone.now()
    papers = _paper_texts(now - window(WEEKLY))
    matched = tag_papers({topic.pk: topic.query}, papers)[topic.pk]
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
