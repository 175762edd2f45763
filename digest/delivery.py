"""Plan, render and send each subscriber's digest — claim first, then send.

A :class:`Digest` row, unique per (subscriber, period), is claimed before anything is
sent; its papers are recorded as :class:`DigestItem` rows, unique per (subscriber,
paper), so a paper never goes to the same subscriber twice. Sending moves the row
``pending → sending → sent`` with a conditional UPDATE whose row count says who won, so
two workers handed the same subscriber send one message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from subscriptions.models import Subscriber
from subscriptions.schedule import WEEKLY
from subscriptions.tokens import unsubscribe_url

from .emails import make_email
from .matching import Candidate, select_papers
from .models import Digest, DigestItem, Paper

log = logging.getLogger(__name__)

__all__ = ["DeliveryResult", "deliver", "digest_message", "plan_digest", "send_digest"]


@dataclass
class DeliveryResult:
    """What happened to one subscriber: ``sent``, ``empty`` (nothing matched),
    ``already`` (this period's digest was sent before), ``skipped`` (not deliverable or
    not due) or ``failed``."""

    subscriber_id: int
    email: str
    status: str
    digest_id: int | None = None
    papers: int = 0
    error: str = ""


def window(frequency: str) -> timedelta:
    """How far back a digest looks for papers seen on the papers pages."""
    return timedelta(days=8) if frequency == WEEKLY else timedelta(days=2)


def _candidates(subscriber: Subscriber, now: datetime) -> list[Candidate]:
    sent = DigestItem.objects.filter(subscriber=subscriber).values("paper_id")
    rows = (
        Paper.objects.visible()
        .filter(last_seen_at__gte=now - window(subscriber.frequency))
        .exclude(id__in=sent)
        .values_list("id", "title", "abstract", "upvotes", "published_on", "first_seen_at")
    )
    return [
        Candidate(
            id=pk,
            title=title,
            abstract=abstract,
            upvotes=upvotes,
            recency=(published_on.toordinal() if published_on else 0, seen.timestamp()),
        )
        for pk, title, abstract, upvotes, published_on, seen in rows
    ]


def plan_digest(subscriber: Subscriber, now: datetime) -> Digest:
    """Claim this period's digest for ``subscriber`` and choose its papers (once).

    Returns the digest; its status is ``empty`` when nothing matched. Calling it again
    for the same period returns the same row untouched.
    """
    digest, _ = Digest.objects.get_or_create(
        subscriber=subscriber, period=subscriber.period_key(now)
    )
    with transaction.atomic():
        digest = Digest.objects.select_for_update().get(pk=digest.pk)
        if digest.status != Digest.PENDING or digest.items.exists():
            return digest
        filters = list(subscriber.filters.values_list("query", flat=True))
        chosen = select_papers(
            filters, _candidates(subscriber, now), limit=settings.DIGEST_MAX_PAPERS
        )
        if not chosen:
            digest.status = Digest.EMPTY
            digest.save(update_fields=["status"])
            return digest
        DigestItem.objects.bulk_create(
            DigestItem(
                digest=digest,
                subscriber=subscriber,
                paper_id=s.paper_id,
                rank=rank,
                reason=s.reason,
            )
            for rank, s in enumerate(chosen, 1)
        )
    return digest


def digest_message(digest: Digest):  # type: ignore[no-untyped-def]
    """The email for ``digest``: multipart text + HTML, with a Message-ID, the digest id
    in ``X-Digest-ID`` and as anymail metadata, and the one-click unsubscribe headers of
    RFC 2369 and RFC 8058."""
    subscriber = digest.subscriber
    items = list(digest.items.select_related("paper"))
    unsubscribe = unsubscribe_url(subscriber.uuid)
    papers = [
        {
            "title": item.paper.title,
            "url": item.paper.url,
            "abstract": item.paper.abstract,
            "upvotes": item.paper.upvotes,
            "published_on": item.paper.published_on,
            "authors_count": item.paper.authors_count,
            "reason": item.reason,
        }
        for item in items
    ]
    context = {
        "papers": papers,
        "email": subscriber.email,
        "frequency": subscriber.get_frequency_display().lower(),
        "edition": digest.period,
        "unsubscribe_url": unsubscribe,
    }
    message = make_email(
        "digest",
        context,
        subscriber.email,
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Digest-ID": str(digest.pk),
        },
    )
    # django-anymail reads these; other backends ignore them.
    message.metadata = {"digest_id": str(digest.pk), "subscriber_id": str(subscriber.pk)}  # type: ignore[attr-defined]
    message.tags = ["digest"]  # type: ignore[attr-defined]
    return message


def send_digest(digest: Digest, connection: BaseEmailBackend, now: datetime) -> bool:
    """Send a planned digest once. Returns True when this call sent it.

    The ``pending → sending`` UPDATE is the claim: a second caller updates no row and
    returns False. On a send error the digest goes back to ``pending`` with the error
    recorded, and the exception propagates so the task can retry.
    """
    won = Digest.objects.filter(pk=digest.pk, status=Digest.PENDING).update(
        status=Digest.SENDING, attempts=F("attempts") + 1
    )
    if not won:
        return False
    message = digest_message(digest)
    try:
        connection.send_messages([message])
    except Exception as exc:
        Digest.objects.filter(pk=digest.pk).update(
            status=Digest.PENDING, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    Digest.objects.filter(pk=digest.pk).update(
        status=Digest.SENT,
        sent_at=now,
        message_id=message.extra_headers["Message-ID"],
        last_error="",
    )
    log.info(
        "digest_sent digest_id=%s subscriber_id=%s papers=%s",
        digest.pk,
        digest.subscriber_id,
        digest.items.count(),
    )
    return True


def deliver(
    subscriber_ids: Iterable[int],
    *,
    now: datetime | None = None,
    force: bool = False,
    connection: BaseEmailBackend | None = None,
) -> list[DeliveryResult]:
    """Plan and send the digests of ``subscriber_ids`` over one mail connection.

    Only deliverable subscribers whose ``next_digest_at`` has come are served unless
    ``force`` (the demo and a moderator's "send now" ignore the schedule, never the
    deliverable state). Each served subscriber's ``next_digest_at`` moves to the next
    slot after ``now``.
    """
    now = now or timezone.now()
    subscribers = Subscriber.objects.filter(pk__in=list(subscriber_ids)).order_by("pk")
    results: list[DeliveryResult] = []
    connection = connection or get_connection()
    with connection:
        for subscriber in subscribers:
            results.append(_deliver_one(subscriber, now, force, connection))
    return results


def _deliver_one(
    subscriber: Subscriber, now: datetime, force: bool, connection: BaseEmailBackend
) -> DeliveryResult:
    result = DeliveryResult(subscriber.pk, subscriber.email, "skipped")
    if subscriber.state != "active":
        return result
    if not force and (subscriber.next_digest_at is None or subscriber.next_digest_at > now):
        return result
    digest = plan_digest(subscriber, now)
    result.digest_id = digest.pk
    result.papers = digest.items.count()
    if digest.status == Digest.PENDING:
        try:
            sent = send_digest(digest, connection, now)
        except Exception as exc:  # recorded on the digest; the next tick retries it
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            return result
        result.status = "sent" if sent else "already"
    else:
        result.status = "empty" if digest.status == Digest.EMPTY else "already"
    Subscriber.objects.filter(pk=subscriber.pk).update(
        next_digest_at=subscriber.compute_next_digest_at(now)
    )
    return result


def due_subscriber_ids(now: datetime) -> Sequence[int]:
    """Ids of the subscribers whose digest is due at ``now``, oldest due first."""
    return list(
        Subscriber.objects.due(now).order_by("next_digest_at", "pk").values_list("pk", flat=True)
    )
