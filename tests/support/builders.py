"""Subscribers and papers in the database, as tests and benchmarks build them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone

if TYPE_CHECKING:
    from subscriptions.models import Subscriber


def make_subscriber(email: str, filters: list[str], **fields: object) -> Subscriber:
    """A confirmed, due subscriber with ``filters``; ``fields`` override the defaults."""
    from subscriptions.models import Filter, Subscriber

    now = timezone.now()
    values: dict[str, object] = {"confirmed_at": now, "next_digest_at": now}
    values.update(fields)
    subscriber = Subscriber.objects.create(email=email, **values)
    Filter.objects.bulk_create(Filter(subscriber=subscriber, query=q) for q in filters)
    return subscriber
