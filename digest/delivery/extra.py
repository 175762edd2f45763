"""Editions outside the schedule: the welcome digest and the one a subscriber asks for.

Confirming an address sends the welcome digest at once, so nobody waits a week for the
first one; the settings page's "send me one now" asks for another, at most one an hour
per subscriber and ``THROTTLES["send-now"]`` for the whole site. Each is a
:class:`~digest.models.Digest` of its own period — :attr:`Digest.WELCOME` (once per
subscriber, ever) or :attr:`Digest.ON_REQUEST` and the UTC hour — so the unique (subscriber,
period) keeps it exactly-once without touching the scheduled edition's row or
``next_digest_at``. Its papers are :class:`~digest.models.DigestItem` rows like any
edition's, unique per (subscriber, paper): the scheduled digest skips them afterwards.
It looks back ``DIGEST_EXTRA_DAYS`` days and, when nothing matched, says so and when
the next digest comes (a feed-only subscriber gets it in the feed, and no note).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone

from digest.delivery.pipeline import DeliveryResult
from digest.delivery.plan import plan_digests
from digest.delivery.send import SendOutcome, send_planned
from digest.models import Digest
from subscriptions.models import State, Subscriber

__all__ = ["ON_REQUEST_INTERVAL", "TooSoon", "ask_for_digest", "on_request_period", "send_extra"]

# A subscriber may ask for one digest per this interval.
ON_REQUEST_INTERVAL = timedelta(hours=1)


class TooSoon(Exception):
    """A digest was asked for less than :data:`ON_REQUEST_INTERVAL` after the last one;
    ``again_at`` (UTC) is when the next may be asked for."""

    def __init__(self, again_at: datetime) -> None:
        super().__init__(f"ask again at {again_at.isoformat()}")
        self.again_at = again_at


def on_request_period(at: datetime) -> str:
    """The period of a digest asked for at ``at``: ``"now-2026113015"`` (its UTC hour;
    16 characters at most, as ``Digest.period`` holds)."""
    return Digest.ON_REQUEST + at.astimezone(UTC).strftime("%Y%m%d%H")


def ask_for_digest(subscriber: Subscriber, now: datetime | None = None) -> Digest:
    """Claim a digest asked for by ``subscriber`` at ``now``: its row, unplanned, which
    :func:`send_extra` then plans and sends. Raises :class:`TooSoon` when their last one
    was asked for within :data:`ON_REQUEST_INTERVAL` (the subscriber's row is locked
    meanwhile, so two requests at once make one digest)."""
    now = now or timezone.now()
    with transaction.atomic():
        Subscriber.objects.select_for_update().filter(pk=subscriber.pk).first()
        last = (
            Digest.objects.filter(subscriber=subscriber, period__startswith=Digest.ON_REQUEST)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if last is not None and last > now - ON_REQUEST_INTERVAL:
            raise TooSoon(last + ON_REQUEST_INTERVAL)
        digest, _ = Digest.objects.get_or_create(
            subscriber=subscriber, period=on_request_period(now), defaults={"created_at": now}
        )
    return digest


def send_extra(
    subscriber_id: int,
    period: str,
    *,
    now: datetime | None = None,
    connection: BaseEmailBackend | None = None,
) -> tuple[DeliveryResult, SendOutcome]:
    """Plan and send the edition ``period`` (:attr:`Digest.WELCOME` or one of
    :func:`on_request_period`) of subscriber ``subscriber_id``, from the papers of the
    last ``DIGEST_EXTRA_DAYS`` days that match them and that they have not had.

    Only an active subscriber gets one (``skipped`` otherwise: unconfirmed, paused,
    suppressed after a bounce or complaint, unsubscribed, deleted). Safe to run twice:
    the edition is planned once and sent once (``already`` the second time). Returns
    the result (``sent``, ``feed``, ``empty``, ``already``, ``retrying``, ``failed``,
    ``skipped``) and the send outcome, whose ``retry`` the caller schedules. Raises
    ``ValueError`` for a period that is not an extra edition's.
    """
    if period != Digest.WELCOME and not period.startswith(Digest.ON_REQUEST):
        raise ValueError(f"{period!r} is not an edition outside the schedule")
    now = now or timezone.now()
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or subscriber.state != State.ACTIVE:
        email = subscriber.email if subscriber else ""
        return DeliveryResult(subscriber_id, email, "skipped"), SendOutcome()
    lookback = timedelta(days=settings.DIGEST_EXTRA_DAYS)
    digest = plan_digests([subscriber], now, period=period, lookback=lookback)[subscriber.pk]
    result = DeliveryResult(subscriber.pk, subscriber.email, "already", digest_id=digest.pk)
    result.papers = digest.items.count()
    if digest.status == Digest.EMPTY:
        result.status = "empty"
        return result, SendOutcome()
    if digest.status == Digest.FAILED:
        result.status, result.error = "failed", digest.last_error
        return result, SendOutcome()
    outcome = send_planned([digest.pk], connection=connection)
    for status, ids in (
        ("sent", outcome.sent),
        ("feed", outcome.published),
        ("failed", outcome.failed),
        ("retrying", outcome.retry),
    ):
        if digest.pk in ids:
            result.status = status
    result.error = outcome.errors.get(digest.pk, "")
    result.attempts = outcome.attempts.get(digest.pk, 0)
    return result, outcome
