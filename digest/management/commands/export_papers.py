"""``manage.py export_papers``: every stored paper as JSON Lines on stdout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand
from django.db.models import Count

from digest.models import Paper


def export_rows() -> Iterator[dict[str, object]]:
    """One dict per paper, oldest first: ``title``, ``abstract``, ``arxiv_id`` (None when
    unknown), ``url``, ``authors_count``, ``published_on`` (ISO date or None), ``upvotes``
    (None when no page showed a count),
    ``first_seen_at`` (ISO 8601), ``pages_seen`` (distinct pages that showed it)."""
    papers = Paper.objects.annotate(
        pages_seen=Count("sightings__run__source", distinct=True)
    ).order_by("first_seen_at", "id")
    for p in papers.iterator(chunk_size=2000):
        yield {
            "title": p.title,
            "abstract": p.abstract,
            "arxiv_id": p.arxiv_id,
            "url": p.url,
            "authors_count": p.authors_count,
            "published_on": p.published_on.isoformat() if p.published_on else None,
            "upvotes": p.upvotes,
            "first_seen_at": p.first_seen_at.isoformat(),
            "pages_seen": p.pages_seen,
        }


class Command(BaseCommand):
    help = "Write every stored paper to stdout as JSON Lines."

    def handle(self, *args: Any, **options: Any) -> None:
        for row in export_rows():
            self.stdout.write(json.dumps(row, ensure_ascii=False))
