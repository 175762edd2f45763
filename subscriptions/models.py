"""Subscribers, their keyword filters, and their delivery schedule."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import available_timezones

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils.timezone import now as utcnow

from . import schedule


def validate_timezone(value: str) -> None:
    """Accept IANA timezone names only (``Europe/Paris``, ``UTC``)."""
    if value not in _timezones():
        raise ValidationError(f"{value!r} is not a known IANA timezone")


_TZ_CACHE: set[str] = set()


def _timezones() -> set[str]:
    if not _TZ_CACHE:
        _TZ_CACHE.update(available_timezones())
    return _TZ_CACHE


class SubscriberQuerySet(models.QuerySet["Subscriber"]):
    def deliverable(self) -> SubscriberQuerySet:
        """Confirmed, not paused, not unsubscribed, not suppressed."""
        return self.filter(
            confirmed_at__isnull=False,
            paused_at__isnull=True,
            unsubscribed_at__isnull=True,
            suppressed_at__isnull=True,
        )

    def due(self, now: datetime) -> SubscriberQuerySet:
        """Deliverable subscribers whose ``next_digest_at`` has come."""
        return self.deliverable().filter(next_digest_at__lte=now)


class Subscriber(models.Model):
    """A person who receives digests. ``uuid`` is the public id used in signed links."""

    FREQUENCIES = [(schedule.DAILY, "Daily"), (schedule.WEEKLY, "Weekly")]
    WEEKDAYS = list(
        enumerate(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])
    )

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField(max_length=254)
    frequency = models.CharField(max_length=8, choices=FREQUENCIES, default=schedule.DAILY)
    weekday = models.PositiveSmallIntegerField(
        choices=WEEKDAYS, default=0, help_text="Weekly digests go out on this day."
    )
    hour = models.PositiveSmallIntegerField(default=8, help_text="Local hour, 0–23.")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    next_digest_at = models.DateTimeField(null=True, blank=True, db_index=True)

    created_at = models.DateTimeField(default=utcnow)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    suppressed_at = models.DateTimeField(null=True, blank=True)
    suppressed_reason = models.CharField(max_length=200, blank=True)
    topics = models.ManyToManyField("digest.Topic", blank=True, related_name="subscribers")

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def state(self) -> str:
        """One of ``unsubscribed``, ``suppressed``, ``unconfirmed``, ``paused``, ``active``."""
        if self.unsubscribed_at:
            return "unsubscribed"
        if self.suppressed_at:
            return "suppressed"
        if not self.confirmed_at:
            return "unconfirmed"
        if self.paused_at:
            return "paused"
        return "active"

    def compute_next_digest_at(self, after: datetime) -> datetime:
        """The first send time after ``after`` under this subscriber's schedule (UTC)."""
        return schedule.next_digest_at(
            after,
            frequency=self.frequency,
            hour=self.hour,
            timezone=self.timezone,
            weekday=self.weekday,
        )

    def period_key(self, at: datetime) -> str:
        """The edition (local day or ISO week) a digest sent at ``at`` belongs to."""
        return schedule.period_key(at, frequency=self.frequency, timezone=self.timezone)

    def confirm(self, now: datetime | None = None) -> None:
        """Mark the address confirmed (double opt-in done) and schedule the first digest."""
        now = now or utcnow()
        self.confirmed_at = self.confirmed_at or now
        self.next_digest_at = self.compute_next_digest_at(now)
        self.save(update_fields=["confirmed_at", "next_digest_at"])

    def unsubscribe(self, now: datetime | None = None) -> bool:
        """Stop all digests. Returns False when already unsubscribed (nothing changed)."""
        updated = Subscriber.objects.filter(pk=self.pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=now or utcnow()
        )
        self.refresh_from_db(fields=["unsubscribed_at"])
        return bool(updated)


class Filter(models.Model):
    """One keyword query of a subscriber; a paper matching any filter is a candidate."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="filters")
    query = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=utcnow)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.query
