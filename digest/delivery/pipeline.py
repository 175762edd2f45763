"""The daily run: the bodies of the delivery tasks of :mod:`digest.tasks`."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.db.models import Count
from django.utils import timezone

from digest.delivery.plan import plan_digests
from digest.delivery.send import SendOutcome, send_planned
from digest.models import Digest, DigestItem
from subscriptions.models import Subscriber

log = logging.getLogger(__name__)

__all__ = ["DeliveryResult", "claim_due_subscribers", "deliver", "due_subscriber_ids"]


@dataclass
class DeliveryResult:
    """What happened to one digest of a subscriber: ``sent``, ``feed`` (published to
    the private feed of a subscriber who reads it only, no email), ``empty`` (nothing
    matched), ``already`` (sent before, or being sent by another worker), ``retrying``
    (a transient error; a retry is due in ``retry_in`` seconds), ``failed`` (given up)
    or ``skipped`` (not deliverable or not due; no digest)."""

    subscriber_id: int
    email: str
    status: str
    digest_id: int | None = None
    papers: int = 0
    error: str = ""
    attempts: int = 0


def deliver(
    subscriber_ids: Iterable[int],
    *,
    now: datetime | None = None,
    force: bool = False,
    connection: BaseEmailBackend | None = None,
) -> list[DeliveryResult]:
    """Plan and send the digests of ``subscriber_ids`` (:func:`send_planned`: up to
    ``DIGEST_SEND_CONCURRENCY`` in flight, or one at a time over ``connection``).

    Only deliverable subscribers whose ``next_digest_at`` has come are planned unless
    ``force`` (the demo and a moderator's "send now" ignore the schedule, never the
    deliverable state); each one's ``next_digest_at`` then moves to the next slot after
    ``now`` — unless their digest row was held by another transaction and is still
    unplanned: they stay due. Planned digests of these subscribers still unsent — from
    this call or an earlier one that was interrupted — are sent too, so running it again
    finishes what a killed worker left. Returns a result per digest handled, in
    subscriber order, and ``skipped`` for a subscriber with none.
    """
    now = now or timezone.now()
    subscribers = list(Subscriber.objects.filter(pk__any=list(subscriber_ids)).order_by("pk"))
    active = [s for s in subscribers if s.state == Subscriber.State.ACTIVE]
    served = [
        s for s in active if force or (s.next_digest_at is not None and s.next_digest_at <= now)
    ]
    planned = plan_digests(served, now)
    # Only a subscriber whose edition is planned (here or by another worker) or failed
    # moves on. A digest row another transaction held (a moderator's preview, which
    # rolls back) stays unplanned: its subscriber stays due for the next tick.
    moved = [s for s in served if _settled(planned[s.pk])]
    for subscriber in moved:
        subscriber.next_digest_at = subscriber.compute_next_digest_at(now)
    Subscriber.objects.bulk_update(moved, ["next_digest_at"])
    # The tick's claims are done with: whoever is still due (a digest row held
    # elsewhere, a schedule changed meanwhile) is due again at the next tick, not when
    # the claim runs out.
    Subscriber.objects.filter(
        pk__any=[s.pk for s in subscribers], claimed_until__isnull=False
    ).update(claimed_until=None)

    unsent = list(
        Digest.objects.filter(
            subscriber__in=active,
            status__in=[Digest.PENDING, Digest.SENDING],
            planned_at__isnull=False,
        ).values_list("pk", "subscriber_id")
    )
    outcome = send_planned([pk for pk, _ in unsent], connection=connection)
    counts = dict(
        DigestItem.objects.filter(
            digest_id__any=[d.pk for d in planned.values()] + [pk for pk, _ in unsent]
        )
        .values_list("digest_id")
        .annotate(n=Count("id"))
        .values_list("digest_id", "n")
    )

    earlier: dict[int, list[int]] = defaultdict(list)
    current = {d.pk for d in planned.values()}
    for pk, subscriber_id in unsent:
        if pk not in current:
            earlier[subscriber_id].append(pk)
    results = []
    for subscriber in subscribers:
        digest = planned.get(subscriber.pk)
        if digest is not None:
            results.append(_result(subscriber, digest, outcome, counts))
        for pk in earlier[subscriber.pk]:
            unsent_digest = Digest(pk=pk, subscriber_id=subscriber.pk, status=Digest.PENDING)
            results.append(_result(subscriber, unsent_digest, outcome, counts))
        if digest is None and not earlier[subscriber.pk]:
            results.append(DeliveryResult(subscriber.pk, subscriber.email, "skipped"))
    return results


def _settled(digest: Digest) -> bool:
    """Whether the edition's digest no longer needs planning."""
    return digest.planned_at is not None or digest.status != Digest.PENDING


def _result(
    subscriber: Subscriber, digest: Digest, outcome: SendOutcome, counts: dict[int, int]
) -> DeliveryResult:
    result = DeliveryResult(subscriber.pk, subscriber.email, "already", digest_id=digest.pk)
    result.papers = counts.get(digest.pk, 0)
    result.error = outcome.errors.get(digest.pk, "")
    result.attempts = outcome.attempts.get(digest.pk, 0)
    if digest.pk in outcome.sent:
        result.status = "sent"
    elif digest.pk in outcome.published:
        result.status = "feed"
    elif digest.pk in outcome.failed:
        result.status = "failed"
    elif digest.pk in outcome.retry:
        result.status = "retrying"
    elif digest.status == Digest.EMPTY:
        result.status = "empty"
    elif digest.status == Digest.FAILED:
        result.status, result.error = "failed", digest.last_error
    elif digest.pk in outcome.errors:
        result.status = "failed"
    return result


def due_subscriber_ids(now: datetime) -> Sequence[int]:
    """Ids of the subscribers whose digest is due at ``now``, oldest due first."""
    return list(
        Subscriber.objects.due(now).order_by("next_digest_at", "pk").values_list("pk", flat=True)
    )


def claim_due_subscribers(now: datetime, limit: int) -> list[int]:
    """Claim up to ``limit`` of the subscribers due at ``now``, oldest due first, and
    return their ids; call it inside the transaction that enqueues them.

    A claim sets ``claimed_until`` to ``now`` + ``DIGEST_DUE_LEASE``: until then the
    subscriber is not due to another tick (:meth:`SubscriberQuerySet.due`), so a backlog
    longer than one tick is enqueued once; if the chunk's task is lost, the subscriber
    is due again when the claim runs out. Rows locked by another transaction are
    skipped (``SKIP LOCKED``), as claimed ones; the chunk task moves ``next_digest_at``.
    """
    until = now + timedelta(seconds=settings.DIGEST_DUE_LEASE)
    ids = list(
        Subscriber.objects.due(now)
        .order_by("next_digest_at", "pk")
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("pk", flat=True)[:limit]
    )
    Subscriber.objects.filter(pk__any=ids).update(claimed_until=until)
    return ids
