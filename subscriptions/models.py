"""Subscribers, their keyword filters, and their delivery schedule."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from functools import cache
from zoneinfo import available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils.timezone import now as utcnow

from . import schedule
from .addresses import canonical_key


def validate_timezone(value: str) -> None:
    """Accept IANA timezone names only (``Europe/Paris``, ``UTC``)."""
    if value not in _timezones():
        raise ValidationError(f"{value!r} is not a known IANA timezone")


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


# The browser session key holding the uuid of the subscriber it is signed in as.
SESSION_KEY = "subscriptions.subscriber"

# Temporary failures in a row after which an address is suppressed.
SOFT_BOUNCE_LIMIT = 3
# The most papers a subscriber may ask for per digest, and "you may also like" papers.
MAX_PAPERS = 30
MAX_SUGGESTIONS = 10


def default_max_papers() -> int:
    """Papers per digest of a new subscriber: ``DIGEST_MAX_PAPERS``, within 1–:data:`MAX_PAPERS`."""
    return min(max(int(settings.DIGEST_MAX_PAPERS), 1), MAX_PAPERS)


class State(models.TextChoices):
    """A subscriber's state, in the order of a subscription's life. It is derived from
    their timestamps (:attr:`Subscriber.state`), and where several apply the later one
    here wins: unconfirmed (double opt-in not done), active (receives digests), paused,
    suppressed (a bounce, a complaint or a moderator's suspension), unsubscribed."""

    UNCONFIRMED = "unconfirmed"
    ACTIVE = "active"
    PAUSED = "paused"
    SUPPRESSED = "suppressed"
    UNSUBSCRIBED = "unsubscribed"


# Each state as a queryset condition.
_STATE_CONDITIONS = {
    State.UNSUBSCRIBED: Q(unsubscribed_at__isnull=False),
    State.SUPPRESSED: Q(unsubscribed_at__isnull=True, suppressed_at__isnull=False),
    State.UNCONFIRMED: Q(
        unsubscribed_at__isnull=True, suppressed_at__isnull=True, confirmed_at__isnull=True
    ),
    State.PAUSED: Q(
        unsubscribed_at__isnull=True,
        suppressed_at__isnull=True,
        confirmed_at__isnull=False,
        paused_at__isnull=False,
    ),
    State.ACTIVE: Q(
        unsubscribed_at__isnull=True,
        suppressed_at__isnull=True,
        confirmed_at__isnull=False,
        paused_at__isnull=True,
    ),
}


class SubscriberQuerySet(models.QuerySet["Subscriber"]):
    def bulk_create(self, objs, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        """As Django's, with each row's ``email_key`` set as :meth:`Subscriber.save` sets it."""
        objs = list(objs)
        for subscriber in objs:
            subscriber.email_key = canonical_key(subscriber.email)
        return super().bulk_create(objs, *args, **kwargs)

    def with_address(self, address: str) -> SubscriberQuerySet:
        """The subscriber (at most one) whose address has the same
        :func:`~subscriptions.addresses.canonical_key` as ``address``."""
        return self.filter(email_key=canonical_key(address))

    def in_state(self, state: str) -> SubscriberQuerySet:
        """The subscribers whose :attr:`Subscriber.state` is ``state`` (a :class:`State`)."""
        return self.filter(_STATE_CONDITIONS[State(state)])

    def deliverable(self) -> SubscriberQuerySet:
        """Subscribers in :attr:`State.ACTIVE`: they receive digests."""
        return self.in_state(State.ACTIVE)

    def due(self, now: datetime) -> SubscriberQuerySet:
        """Deliverable subscribers whose ``next_digest_at`` has come and whom no beat
        tick has claimed (``claimed_until`` unset or past)."""
        return self.deliverable().filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lte=now), next_digest_at__lte=now
        )


class Subscriber(models.Model):
    """A person who receives digests. ``uuid`` is the public id used in signed links."""

    FREQUENCIES = [(schedule.DAILY, "Daily"), (schedule.WEEKLY, "Weekly")]
    WEEKDAYS = list(
        enumerate(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])
    )

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField(max_length=254)
    # canonical_key(email), set on every save: addresses are compared, looked up and
    # throttled by it, and it is unique (subscriptions.addresses says why).
    email_key = models.CharField(max_length=254, editable=False)
    frequency = models.CharField(max_length=8, choices=FREQUENCIES, default=schedule.DAILY)
    weekday = models.PositiveSmallIntegerField(
        choices=WEEKDAYS, default=0, help_text="Weekly digests go out on this day."
    )
    hour = models.PositiveSmallIntegerField(default=8, help_text="Local hour, 0–23.")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    next_digest_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Set by the beat's tick when it enqueues the subscriber's digest: not due again
    # until then, so a backlog longer than a tick is enqueued once and a lost task is
    # picked up again after it (digest.delivery.pipeline.claim_due_subscribers).
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(default=utcnow)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    suppressed_at = models.DateTimeField(null=True, blank=True)
    suppressed_reason = models.CharField(max_length=200, blank=True)
    soft_bounces = models.PositiveSmallIntegerField(
        default=0, help_text="Soft bounces in a row; a delivery resets it."
    )
    topics = models.ManyToManyField("digest.Topic", blank=True, related_name="subscribers")
    # What each digest carries (the settings page; docs/delivery.md).
    max_papers = models.PositiveSmallIntegerField(
        db_default=10,
        default=default_max_papers,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PAPERS)],
        help_text=f"Papers per digest, 1–{MAX_PAPERS}.",
    )
    strong_only = models.BooleanField(
        db_default=False,
        default=False,
        help_text="Only papers that match a filter strongly (e.g. in the title).",
    )
    # None: as the site's DIGEST_SEND_EMPTY says (every subscriber until they choose).
    send_empty = models.BooleanField(
        null=True,
        blank=True,
        default=None,
        help_text="Send a short note when nothing matched (empty: as the site's default).",
    )
    feed_only = models.BooleanField(
        db_default=False,
        default=False,
        help_text="No email: read the digests in the private feed only.",
    )
    suggestions = models.PositiveSmallIntegerField(
        db_default=3,
        default=3,
        validators=[MaxValueValidator(MAX_SUGGESTIONS)],
        help_text=f'"You may also like" papers per digest, 0–{MAX_SUGGESTIONS} (0: none).',
    )
    # The learned relevance profile (digest.relevance): float32 values, little-endian,
    # empty until computed; rebuilt when the subscriber's feedback changes.
    profile = models.BinaryField(blank=True, default=b"", db_default=b"", editable=False)
    profile_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Part of every confirmation and settings link and of every signed-in session:
    # confirming bumps it, so a confirmation link works once (as django.contrib.auth.tokens
    # does with the password hash); "sign out of every browser" bumps it, voiding all.
    link_counter = models.PositiveIntegerField(default=0, editable=False)
    # The secret path of the private Atom feed; empty until first asked for.
    feed_secret = models.CharField(max_length=64, blank=True, editable=False)
    # A signup of an address that already has kept choices (unsubscribed, or suppressed
    # after a bounce or complaint): its filters, topics and schedule wait here until the
    # address confirms, so a stranger's signup replaces nothing (:meth:`hold_signup`).
    pending_signup = models.JSONField(null=True, blank=True, editable=False)
    # A signup of an address already subscribed: its choices, offered in the settings-link
    # email and applied only by that email's button (:meth:`offer_signup`). The latest
    # signup replaces it; only its link works.
    offered_signup = models.JSONField(null=True, blank=True, editable=False)
    # Keys of the browser sessions signed in as this subscriber (the latest
    # MAX_SESSIONS), deleted with them by "delete me" (subscriptions.erasure).
    session_keys = models.JSONField(default=list, blank=True, editable=False)

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_unique_ci"),
            models.UniqueConstraint(fields=["email_key"], name="subscriber_email_key_unique"),
            models.UniqueConstraint(
                fields=["feed_secret"],
                condition=~Q(feed_secret=""),
                name="subscriber_feed_secret_unique",
            ),
        ]
        permissions = [
            ("lift_suppression_subscriber", "Can lift a bounce or complaint suppression"),
        ]

    def __str__(self) -> str:
        return self.email

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.email_key = canonical_key(self.email)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "email" in update_fields:
            kwargs["update_fields"] = {*update_fields, "email_key"}
        super().save(*args, **kwargs)

    State = State

    @property
    def state(self) -> models.TextChoices:
        """The subscriber's :class:`State`."""
        if self.unsubscribed_at:
            return State.UNSUBSCRIBED
        if self.suppressed_at:
            return State.SUPPRESSED
        if not self.confirmed_at:
            return State.UNCONFIRMED
        if self.paused_at:
            return State.PAUSED
        return State.ACTIVE

    @property
    def wants_empty_notes(self) -> bool:
        """Whether an edition where nothing matched sends the "nothing matched" note: the
        subscriber's ``send_empty`` choice, else the site's ``DIGEST_SEND_EMPTY``; never
        for a feed-only subscriber (the note is an email)."""
        if self.feed_only:
            return False
        if self.send_empty is None:
            return bool(settings.DIGEST_SEND_EMPTY)
        return self.send_empty

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
        """Mark the address confirmed (double opt-in done) and schedule the first digest.

        The owner of the address has just proved it, so a signup held by
        :meth:`hold_signup` replaces the kept choices now, an unsubscribe is undone and
        a bounce or complaint suppression lifted (:meth:`lift_suppression`; a
        moderator's suspension stays).
        """
        now = now or utcnow()
        with transaction.atomic():
            if self.pending_signup is not None:
                self.apply_signup(self.pending_signup)
                self.pending_signup = None
            self.unsubscribed_at = None
            self.paused_at = None
            self.confirmed_at = self.confirmed_at or now
            self.next_digest_at = self.compute_next_digest_at(now)
            self.save(
                update_fields=[
                    "confirmed_at",
                    "next_digest_at",
                    "pending_signup",
                    "unsubscribed_at",
                    "paused_at",
                ]
            )
            self.lift_suppression(now)

    def apply_signup(self, choices: dict[str, object]) -> None:
        """Replace filters, topics, frequency and timezone with a signup's ``choices``:
        ``{"frequency", "timezone", "filters": [query, …], "topics": [topic id, …]}``."""
        self.frequency = str(choices["frequency"])
        self.timezone = str(choices["timezone"])
        self.save(update_fields=["frequency", "timezone"])
        self.filters.all().delete()
        Filter.objects.bulk_create(
            Filter(subscriber=self, query=str(q))
            for q in choices["filters"]  # type: ignore[attr-defined]
        )
        # A topic a moderator deleted since is left out.
        self.topics.set(self.topics.model.objects.filter(pk__in=choices["topics"]))  # type: ignore[misc]

    def hold_signup(self, choices: dict[str, object]) -> None:
        """Keep a signup's ``choices`` (as :meth:`apply_signup` takes them) until the
        address confirms; the kept filters, topics and schedule stay until then."""
        self.pending_signup = choices
        self.save(update_fields=["pending_signup"])

    def offer_signup(self, choices: dict[str, object]) -> None:
        """Keep a signup's ``choices`` (as :meth:`apply_signup` takes them) to offer to a
        subscribed address; nothing changes until the owner accepts them
        (:meth:`accept_offer`)."""
        self.offered_signup = choices
        self.save(update_fields=["offered_signup"])

    def accept_offer(self, *, replace: bool, now: datetime | None = None) -> bool:
        """Apply the offered signup: with ``replace`` its filters, topics, frequency and
        timezone replace the subscriber's (and the next digest is rescheduled); else its
        filters and topics are added to theirs (a filter already there, by its text, or
        past ``MAX_FILTERS`` filters in all, is skipped) and the schedule stays. Returns
        False when there was no offer (already accepted, or replaced by a newer one)."""
        from digest.matching.query import MAX_FILTERS  # the filter language's limit

        with transaction.atomic():
            locked = Subscriber.objects.select_for_update().get(pk=self.pk)
            offer = locked.offered_signup
            if offer is None:
                return False
            if replace:
                self.apply_signup(offer)
                self.reschedule(now)
            else:
                have = list(self.filters.values_list("query", flat=True))
                new = [q for q in dict.fromkeys(map(str, offer["filters"])) if q not in have]  # type: ignore[call-overload]
                Filter.objects.bulk_create(
                    Filter(subscriber=self, query=q) for q in new[: max(MAX_FILTERS - len(have), 0)]
                )
                self.topics.add(*self.topics.model.objects.filter(pk__in=offer["topics"]))  # type: ignore[misc]
            Subscriber.objects.filter(pk=self.pk).update(offered_signup=None)
            self.offered_signup = None
        return True

    @property
    def is_suppressed_by_delivery(self) -> bool:
        """Suppressed after a bounce, a rejection or a complaint (not a moderator's
        suspension): the owner may lift it by confirming the address again."""
        return bool(self.suppressed_at) and not self.suppressed_reason.startswith(self.SUSPENDED)

    def lift_suppression(self, now: datetime | None = None) -> bool:
        """Lift a bounce, rejection or complaint suppression and reset the soft-bounce
        run; schedule the next digest from ``now`` when confirmed. Returns False when
        there was none (a moderator's suspension is left alone: :meth:`unsuspend`)."""
        now = now or utcnow()
        updated = (
            Subscriber.objects.filter(pk=self.pk, suppressed_at__isnull=False)
            .exclude(suppressed_reason__startswith=self.SUSPENDED)
            .update(
                suppressed_at=None,
                suppressed_reason="",
                soft_bounces=0,
                next_digest_at=self.compute_next_digest_at(now) if self.confirmed_at else None,
            )
        )
        self.refresh_from_db(
            fields=["suppressed_at", "suppressed_reason", "soft_bounces", "next_digest_at"]
        )
        return bool(updated)

    def suppress(self, reason: str, now: datetime | None = None) -> bool:
        """Stop all digests because the address cannot or must not receive them (a hard
        bounce, a rejection, a spam complaint). Returns False when already suppressed."""
        updated = Subscriber.objects.filter(pk=self.pk, suppressed_at__isnull=True).update(
            suppressed_at=now or utcnow(), suppressed_reason=reason[:200]
        )
        self.refresh_from_db(fields=["suppressed_at", "suppressed_reason"])
        return bool(updated)

    def record_soft_bounce(self, reason: str, now: datetime | None = None) -> bool:
        """Count a temporary delivery failure; the ``SOFT_BOUNCE_LIMIT``-th in a row
        suppresses the address. Returns True when this call suppressed it."""
        Subscriber.objects.filter(pk=self.pk).update(soft_bounces=F("soft_bounces") + 1)
        self.refresh_from_db(fields=["soft_bounces"])
        if self.soft_bounces >= SOFT_BOUNCE_LIMIT:
            return self.suppress(f"{self.soft_bounces} soft bounces in a row: {reason}", now)
        return False

    def record_delivery(self) -> None:
        """A message reached the mailbox: the soft-bounce run is over."""
        if Subscriber.objects.filter(pk=self.pk, soft_bounces__gt=0).update(soft_bounces=0):
            self.soft_bounces = 0

    def unsubscribe(self, now: datetime | None = None) -> bool:
        """Stop all digests. Returns False when already unsubscribed (nothing changed)."""
        updated = Subscriber.objects.filter(pk=self.pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=now or utcnow()
        )
        self.refresh_from_db(fields=["unsubscribed_at"])
        return bool(updated)

    SUSPENDED = "suspended by a moderator"
    MAX_SESSIONS = 20

    def remember_session(self, key: str) -> None:
        """Note a browser session signed in as this subscriber (see ``session_keys``)."""
        self.session_keys = [*[k for k in self.session_keys if k != key], key][-self.MAX_SESSIONS :]
        self.save(update_fields=["session_keys"])

    def suspend(self, reason: str = "", now: datetime | None = None) -> bool:
        """Stop all digests on a moderator's decision, whatever the subscriber does.

        Recorded as a suppression whose ``suppressed_reason`` starts with
        :attr:`SUSPENDED`. Returns False when the subscriber was already suppressed
        (for any reason; nothing changed).
        """
        text = f"{self.SUSPENDED}: {reason.strip()}" if reason.strip() else self.SUSPENDED
        return self.suppress(text, now)

    def unsuspend(self, now: datetime | None = None) -> bool:
        """Lift a moderator's :meth:`suspend` and schedule the next digest from ``now``.

        Returns False when the subscriber was not suspended; a suppression for another
        reason (a hard bounce, a complaint) is left alone.
        """
        now = now or utcnow()
        updated = Subscriber.objects.filter(
            pk=self.pk,
            suppressed_at__isnull=False,
            suppressed_reason__startswith=self.SUSPENDED,
        ).update(
            suppressed_at=None,
            suppressed_reason="",
            next_digest_at=self.compute_next_digest_at(now) if self.confirmed_at else None,
        )
        self.refresh_from_db(fields=["suppressed_at", "suppressed_reason", "next_digest_at"])
        return bool(updated)

    def use_link(self, counter: int) -> bool:
        """Spend a single-use link made when ``link_counter`` was ``counter``.

        The conditional UPDATE is the claim: of two requests with the same link, one
        wins and gets True; an older link (any other counter) gets False.
        """
        won = Subscriber.objects.filter(pk=self.pk, link_counter=counter).update(
            link_counter=F("link_counter") + 1
        )
        self.refresh_from_db(fields=["link_counter"])
        return bool(won)

    def sign_out_everywhere(self) -> None:
        """Void every settings and confirmation link sent so far and every browser's
        session (both carry ``link_counter``)."""
        Subscriber.objects.filter(pk=self.pk).update(link_counter=F("link_counter") + 1)
        self.refresh_from_db(fields=["link_counter"])

    def pause(self, now: datetime | None = None) -> None:
        """Hold digests until :meth:`resume`; filters and schedule are kept."""
        self.paused_at = self.paused_at or now or utcnow()
        self.save(update_fields=["paused_at"])

    def resume(self, now: datetime | None = None) -> None:
        """Undo :meth:`pause` (or an unsubscribe, the subscriber asking from the manage
        page) and schedule the next digest from ``now``; papers seen meanwhile are not
        sent in a burst, the next digest looks back only over its usual window."""
        now = now or utcnow()
        self.paused_at = None
        self.unsubscribed_at = None
        self.next_digest_at = self.compute_next_digest_at(now) if self.confirmed_at else None
        self.save(update_fields=["paused_at", "unsubscribed_at", "next_digest_at"])

    def reschedule(self, now: datetime | None = None) -> None:
        """Recompute ``next_digest_at`` after the frequency, weekday, hour or timezone
        changed (only a confirmed subscriber has one)."""
        if self.confirmed_at:
            self.next_digest_at = self.compute_next_digest_at(now or utcnow())
            self.save(update_fields=["next_digest_at"])

    def reset_feed_secret(self) -> str:
        """A new secret path for the Atom feed (the old feed URL stops working)."""
        self.feed_secret = secrets.token_urlsafe(32)
        self.save(update_fields=["feed_secret"])
        return self.feed_secret

    def erase(self, now: datetime | None = None) -> None:
        """Delete the subscriber with their address, filters and digests.

        Only anonymous monthly counts survive, in :class:`ErasureCount`. "Delete me"
        calls it through :func:`subscriptions.erasure.erase`, which also erases what the
        delivery events, the admin log and the sessions hold about the subscriber.
        """
        now = now or utcnow()
        # Through the reverse relation: this app's models import no stage of digest/.
        digests = self.digests.all()
        sent = digests.filter(status=digests.model.SENT).count()
        with transaction.atomic():
            month = now.date().replace(day=1)
            ErasureCount.objects.get_or_create(month=month)
            ErasureCount.objects.filter(month=month).update(
                subscribers=F("subscribers") + 1, digests_sent=F("digests_sent") + sent
            )
            self.delete()


class Filter(models.Model):
    """One keyword query of a subscriber; a paper matching any filter is a candidate."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="filters")
    query = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=utcnow)
    # Set when a moderator blocks a term this filter contains
    # (digest.matching.blocked.flag_filters_containing); cleared when a moderator keeps it.
    flagged_for_review = models.BooleanField(default=False, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.query


class ErasureCount(models.Model):
    """What is left of subscribers who deleted themselves: counts per calendar month,
    with nothing that names a person."""

    month = models.DateField(unique=True, help_text="First day of the month.")
    subscribers = models.PositiveIntegerField(default=0)
    digests_sent = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-month"]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}: {self.subscribers} erased"
