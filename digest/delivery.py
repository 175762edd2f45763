"""Plan, render and send each subscriber's digest — claim first, then send.

A :class:`Digest` row, unique per (subscriber, period), is claimed before anything is
sent; its papers are recorded as :class:`DigestItem` rows, unique per (subscriber,
paper), so a paper never goes to the same subscriber twice. Sending moves the row
``pending → sending → sent`` with a conditional UPDATE whose row count says who won, so
two workers handed the same subscriber send one message.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from subscriptions.models import Filter, Subscriber
from subscriptions.schedule import WEEKLY
from subscriptions.tokens import unsubscribe_url

from .emails import make_email
from .matching import Candidate, Selection, SubscriberSpec, select_for_subscribers
from .models import Digest, DigestItem, Paper, Topic

log = logging.getLogger(__name__)

__all__ = [
    "DeliveryResult",
    "deliver",
    "digest_message",
    "due_subscriber_ids",
    "plan_digest",
    "plan_digests",
    "send_digest",
]


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


def _candidates(subscribers: Sequence[Subscriber], now: datetime) -> list[Candidate]:
    """Visible papers seen on the pages within the widest window of ``subscribers``."""
    widest = max(window(s.frequency) for s in subscribers)
    rows = (
        Paper.objects.visible()
        .filter(last_seen_at__gte=now - widest)
        .values_list(
            "id", "title", "abstract", "upvotes", "published_on", "first_seen_at", "last_seen_at"
        )
    )
    return [
        Candidate(
            id=pk,
            title=title,
            abstract=abstract,
            upvotes=upvotes,
            recency=(published_on.toordinal() if published_on else 0, seen.timestamp()),
            last_seen_at=last_seen,
        )
        for pk, title, abstract, upvotes, published_on, seen, last_seen in rows
    ]


def plan_digests(subscribers: Sequence[Subscriber], now: datetime) -> dict[int, Digest]:
    """Claim this period's digest of each subscriber and choose its papers, once.

    Matching runs once for the whole batch. Returns subscriber id → digest; a digest's
    status is ``empty`` when nothing matched. Planning again in the same period returns
    the same rows untouched.
    """
    digests: dict[int, Digest] = {}
    to_plan: list[Subscriber] = []
    for subscriber in subscribers:
        digest, _ = Digest.objects.get_or_create(
            subscriber=subscriber, period=subscriber.period_key(now)
        )
        digests[subscriber.pk] = digest
        if digest.status == Digest.PENDING and not digest.items.exists():
            to_plan.append(subscriber)
    if not to_plan:
        return digests

    candidates = _candidates(to_plan, now)
    candidate_ids = [c.id for c in candidates]
    ids = [s.pk for s in to_plan]
    excluded: dict[int, set[int]] = defaultdict(set)
    for sid, pid in DigestItem.objects.filter(
        subscriber_id__in=ids, paper_id__in=candidate_ids
    ).values_list("subscriber_id", "paper_id"):
        excluded[sid].add(pid)
    topic_ids: dict[int, list[int]] = defaultdict(list)
    for sid, tid in Subscriber.topics.through.objects.filter(subscriber_id__in=ids).values_list(
        "subscriber_id", "topic_id"
    ):
        topic_ids[sid].append(tid)
    wanted_topics = {t for ts in topic_ids.values() for t in ts}
    topic_names = dict(Topic.objects.filter(pk__in=wanted_topics).values_list("pk", "name"))
    topic_papers: dict[int, set[int]] = defaultdict(set)
    for tid, pid in Paper.topics.through.objects.filter(
        topic_id__in=wanted_topics, paper_id__in=candidate_ids
    ).values_list("topic_id", "paper_id"):
        topic_papers[tid].add(pid)
    filters: dict[int, list[str]] = defaultdict(list)
    for sid, query in Filter.objects.filter(subscriber_id__in=ids).values_list(
        "subscriber_id", "query"
    ):
        filters[sid].append(query)

    for frequency in {s.frequency for s in to_plan}:
        group = [s for s in to_plan if s.frequency == frequency]
        since = now - window(frequency)
        selections = select_for_subscribers(
            [SubscriberSpec(s.pk, tuple(filters[s.pk]), tuple(topic_ids[s.pk])) for s in group],
            [c for c in candidates if c.last_seen_at >= since],
            limit=settings.DIGEST_MAX_PAPERS,
            excluded=excluded,
            topic_names=topic_names,
            topic_papers=topic_papers,
        )
        for subscriber in group:
            digests[subscriber.pk] = _record_plan(
                digests[subscriber.pk], subscriber, selections[subscriber.pk]
            )
    return digests


def _record_plan(digest: Digest, subscriber: Subscriber, chosen: list[Selection]) -> Digest:
    with transaction.atomic():
        digest = Digest.objects.select_for_update().get(pk=digest.pk)
        if digest.status != Digest.PENDING or digest.items.exists():
            return digest  # planned meanwhile by another worker
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


def plan_digest(subscriber: Subscriber, now: datetime) -> Digest:
    """:func:`plan_digests` for one subscriber."""
    return plan_digests([subscriber], now)[subscriber.pk]


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
    served = [
        s
        for s in subscribers
        if s.state == "active"
        and (force or (s.next_digest_at is not None and s.next_digest_at <= now))
    ]
    digests = plan_digests(served, now) if served else {}
    with connection:
        for subscriber in subscribers:
            if subscriber.pk not in digests:
                results.append(DeliveryResult(subscriber.pk, subscriber.email, "skipped"))
                continue
            results.append(_send_planned(subscriber, digests[subscriber.pk], now, connection))
    return results


def _send_planned(
    subscriber: Subscriber, digest: Digest, now: datetime, connection: BaseEmailBackend
) -> DeliveryResult:
    result = DeliveryResult(subscriber.pk, subscriber.email, "skipped", digest_id=digest.pk)
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
