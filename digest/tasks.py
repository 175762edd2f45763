"""Celery tasks. They take ids and plain values, never model instances, and are
idempotent: a task run twice does no harm (the database records what was done)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import delivery
from .ingest import ingest_source

CHUNK_SIZE = 500


@shared_task
def ingest_page(source: str, format: str | None = None) -> dict[str, object]:
    """Ingest one file path or URL; returns the page summary of ``ingest --json``."""
    return ingest_source(source, format=format).as_dict()


@shared_task
def ingest_sources() -> int:
    """Enqueue an ingest of every path or URL in ``INGEST_SOURCES``; returns how many."""
    for source in settings.INGEST_SOURCES:
        ingest_page.delay(source)
    return len(settings.INGEST_SOURCES)


@shared_task
def send_due_digests() -> int:
    """Find the subscribers whose digest is due and enqueue them in chunks of
    ``CHUNK_SIZE``, after the transaction commits. Returns how many are due."""
    ids = list(delivery.due_subscriber_ids(timezone.now()))
    for start in range(0, len(ids), CHUNK_SIZE):
        chunk = ids[start : start + CHUNK_SIZE]
        transaction.on_commit(lambda chunk=chunk: send_digests.delay(chunk))
    return len(ids)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_digests(subscriber_ids: list[int]) -> dict[str, int]:
    """Deliver the due digests of ``subscriber_ids`` over one mail connection.
    Returns counts by outcome (``sent``, ``empty``, ``skipped``, ``already``, ``failed``)."""
    counts: dict[str, int] = {}
    for result in delivery.deliver(subscriber_ids):
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts
