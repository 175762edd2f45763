"""``manage.py demo``: the whole pipeline on the example pages shipped with the project.

Creates demo subscribers with different interests, ingests ``examples/pages/``, sends
each subscriber's digest through the configured mail backend (by default into
``var/outbox/``) and prints a table. Run twice, it sends no paper twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.ingest.store import ingest_source
from digest.relevance.embed import MODEL_NAME, embed_papers, missing_embeddings
from subscriptions.models import Filter, Subscriber

EXAMPLE_PAGES = settings.BASE_DIR / "examples" / "pages"

DEMO_SUBSCRIBERS = [
    ("ada@example.org", "daily", "Europe/London", ["vision transformer", "segmentation"]),
    ("grace@example.org", "weekly", "America/New_York", ["mamba", "state space"]),
    ("alan@example.org", "daily", "Asia/Tokyo", ["diffusion", "video generation"]),
    ("katherine@example.org", "daily", "UTC", ["in-context learning", "survey"]),
]


def create_demo_subscribers() -> list[Subscriber]:
    """The demo subscribers, confirmed, created once and reused on later runs."""
    subscribers = []
    now = timezone.now()
    for email, frequency, tz, queries in DEMO_SUBSCRIBERS:
        subscriber, created = Subscriber.objects.get_or_create(
            email=email,
            defaults={"frequency": frequency, "timezone": tz, "confirmed_at": now},
        )
        if created:
            Filter.objects.bulk_create(Filter(subscriber=subscriber, query=q) for q in queries)
        subscribers.append(subscriber)
    return subscribers


class Command(BaseCommand):
    help = "Ingest the example pages and send the demo subscribers their digests."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--pages", default=str(EXAMPLE_PAGES), help="folder of pages")

    def handle(self, *args: Any, **options: Any) -> None:
        subscribers = create_demo_subscribers()
        for page in sorted(Path(options["pages"]).glob("*.txt")):
            r = ingest_source(str(page))
            self.stdout.write(
                f"ingested {page.name}: {r.papers} papers, {r.new} new, {r.updated} updated"
                + (f" — ERROR {r.error}" if r.error else "")
            )
        # The local model, offline (docs/relevance.md): what votes and semantic topics use.
        embedded = embed_papers(missing_embeddings())
        self.stdout.write(f"embedded {embedded} papers with {MODEL_NAME}, offline")
        results = deliver([s.pk for s in subscribers], force=True)
        filters = {s.pk: ", ".join(s.filters.values_list("query", flat=True)) for s in subscribers}
        rows = [("subscriber", "filters", "papers matched", "file written")]
        for r in results:
            path = settings.OUTBOX_DIR / f"digest-{r.digest_id}.eml"
            if r.status == "sent":
                written = (
                    str(path.relative_to(settings.BASE_DIR))
                    if path.is_relative_to(settings.BASE_DIR)
                    else str(path)
                )
            elif r.status == "already":
                written = "(already sent this period: nothing sent)"
            elif r.status == "empty":
                written = "(nothing new matched: nothing sent)"
            else:
                written = f"({r.status} {r.error})".strip()
            matched = str(r.papers) if r.status == "sent" else "0"
            rows.append((r.email, filters[r.subscriber_id], matched, written))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for n, row in enumerate(rows):
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
            if n == 0:
                self.stdout.write("  ".join("-" * w for w in widths))
