"""Papers and where they were seen; digests and the papers each one carried."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models, transaction
from django.utils import timezone

from digest.formats import ANNOUNCE_TYPES, ARXIV_FORMATS, FORMAT_CHOICES, arxiv_url
from subscriptions import schedule

log = logging.getLogger(__name__)

HF_PAPERS_URL = "https://huggingface.co/papers"


def paper_url(arxiv_id: str | None, title: str) -> str:
    """A paper's Hugging Face page (``/papers/<arXiv id>``), or a Hugging Face papers
    search for its title when it has no arXiv id."""
    if arxiv_id:
        return f"{HF_PAPERS_URL}/{arxiv_id}"
    return f"{HF_PAPERS_URL}?q={quote_plus(title)}"


ARXIV_URL = "https://arxiv.org"


def origin_label(origins: list[str] | tuple[str, ...] | None) -> str:
    """The origins a paper was seen at, as one short label (``"Hugging Face · arXiv"``);
    ``""`` when unknown."""
    return " · ".join(origins or ())


_CATEGORY = re.compile(r"^[A-Za-z][A-Za-z\-]*(?:\.[A-Za-z][A-Za-z\-]*)?$")


class Source(models.Model):
    """A papers page or API URL fetched on a schedule (see :mod:`digest.ingest.sources`).

    ``etag`` and ``last_modified`` are the validators of the last page ingested, sent
    back as a conditional GET (RFC 9110 section 13.1) so an unchanged page costs a 304.
    ``next_fetch_at`` is when the beat next fetches it; ``last_status`` the status of
    its latest :class:`IngestRun`.
    """

    name = models.CharField(max_length=100, unique=True)
    url = models.CharField(
        "URL",
        max_length=2000,
        blank=True,
        validators=[URLValidator(schemes=["http", "https"], message="Enter an http(s) URL.")],
        help_text="arXiv sources: blank to use arXiv's own, made from the categories.",
    )
    format = models.CharField(
        max_length=16, choices=FORMAT_CHOICES, blank=True, help_text="Blank: auto-detect."
    )
    categories = models.CharField(
        max_length=500,
        blank=True,
        help_text="arXiv sources: the categories to keep, e.g. cs.CL cs.LG (blank: all the "
        "page holds). A blank URL is made from them.",
    )
    announce_types = models.CharField(
        max_length=60,
        blank=True,
        default="new cross",
        help_text="arXiv announcements to take: any of new, cross, replace, replace-cross "
        "(blank: all).",
    )
    enabled = models.BooleanField(default=True)
    interval = models.DurationField(
        default=timedelta(hours=1),
        validators=[MinValueValidator(timedelta(minutes=1))],
        help_text="Time between fetches, e.g. 01:00:00 for hourly.",
    )
    etag = models.CharField("ETag", max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    next_fetch_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_arxiv(self) -> bool:
        """Whether the source is one of arXiv's services (fetched politely, after the
        daily announcement: :mod:`digest.ingest.sources`)."""
        return self.format in ARXIV_FORMATS

    def clean(self) -> None:
        """Check the arXiv settings and fill a blank URL of an arXiv source from its
        categories (:func:`digest.formats.arxiv_url`). Raises ``ValidationError`` for a
        blank URL that cannot be made, a category that is not one, or an unknown
        announcement type."""
        errors: dict[str, str] = {}
        bad = [c for c in self.category_list() if not _CATEGORY.match(c)]
        if bad:
            errors["categories"] = f"Not an arXiv category: {', '.join(bad)} (e.g. cs.CL)."
        unknown = sorted(self.announce_type_set() - set(ANNOUNCE_TYPES))
        if unknown:
            errors["announce_types"] = (
                f"Unknown: {', '.join(unknown)}; choose from {', '.join(ANNOUNCE_TYPES)}."
            )
        if not self.url and not errors:
            if self.is_arxiv and self.category_list():
                self.url = arxiv_url(self.format, self.category_list(), since=timezone.localdate())
            else:
                errors["url"] = "Enter an http(s) URL (or categories, for an arXiv source)."
        if errors:
            raise ValidationError(errors)

    def category_list(self) -> tuple[str, ...]:
        """``categories`` as names, in the order written (``"cs.CL, cs.LG"`` and
        ``"cs.CL cs.LG"`` alike)."""
        return tuple(self.categories.replace(",", " ").replace("+", " ").split())

    def announce_type_set(self) -> frozenset[str]:
        """The announcement types to take; empty means all."""
        return frozenset(self.announce_types.replace(",", " ").lower().split())


class IngestRun(models.Model):
    """One page ingested from a file or URL: what it held, what changed, what failed."""

    RUNNING, OK, FAILED, NOT_MODIFIED = "running", "ok", "failed", "not_modified"
    STATUSES = [
        (RUNNING, "Running"),
        (OK, "OK"),
        (FAILED, "Failed"),
        (NOT_MODIFIED, "Not modified"),
    ]

    source = models.CharField(max_length=2000, help_text="File path or URL.")
    from_source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    format = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, choices=STATUSES, default=RUNNING)
    page_date = models.DateField(null=True, blank=True)
    papers_parsed = models.PositiveIntegerField(default=0)
    papers_new = models.PositiveIntegerField(default=0)
    papers_updated = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.source} ({self.status})"

    @property
    def duration(self) -> float | None:
        """Seconds the run took, or None while it runs."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Topic(models.Model):
    """A curated subject: a query in the filter language, kept by moderators.

    Papers are tagged with the topics whose query they match when they are ingested (and
    re-tagged when the query changes), so a subscriber's topics are a lookup.
    """

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    query = models.CharField(
        max_length=300,
        blank=True,
        help_text="Papers matching this filter join the topic. Blank: only the semantic part.",
    )
    # The semantic part (docs/relevance.md): papers whose embedding is at least
    # ``similarity`` cosine-similar to the centroid of the description and the example
    # papers join the topic too. Null: no semantic part.
    examples: models.ManyToManyField[Paper, Any] = models.ManyToManyField(
        "Paper", blank=True, related_name="example_of_topics", help_text="Papers that define it."
    )
    similarity = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(-1.0), MaxValueValidator(1.0)],
        help_text="Cosine similarity threshold for the semantic part; blank turns it off.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PaperQuerySet(models.QuerySet["Paper"]):
    def visible(self) -> PaperQuerySet:
        """Papers that may go out in digests (not hidden by a moderator)."""
        return self.filter(hidden_at__isnull=True)

    def pinned(self) -> PaperQuerySet:
        """Visible papers a moderator pinned to the top of the next digests, newest pin
        first."""
        return self.visible().filter(pinned_at__isnull=False).order_by("-pinned_at", "-id")


# Moderation state and identity of the row kept are never taken from the duplicate (Paper.merge).
_NOT_FILLED = {"id", "title", "title_key", "arxiv_id", "hidden_at", "hidden_reason", "pinned_at"}


class Paper(models.Model):
    """A paper, stored once however many pages show it.

    Identity is the arXiv id (version dropped) when a source gives one, else
    ``title_key``, the normalised title (:func:`digest.ingest.parsers.normalise_title`).
    """

    arxiv_id = models.CharField(max_length=32, null=True, blank=True, unique=True)
    title = models.CharField(max_length=1000)
    title_key = models.CharField(max_length=1000, db_index=True, editable=False)
    abstract = models.TextField()
    authors = models.JSONField(default=list, blank=True, help_text="Author names, when known.")
    authors_count = models.PositiveIntegerField(null=True, blank=True)
    published_on = models.DateField(null=True, blank=True)
    upvotes = models.IntegerField(
        null=True, blank=True, help_text="Upvotes last seen; empty when no page showed a count."
    )
    num_comments = models.PositiveIntegerField(null=True, blank=True)
    ai_keywords = models.JSONField(default=list, blank=True, help_text="Keywords, when known.")
    ai_summary = models.TextField(
        "AI summary", blank=True, help_text="The source's one-paragraph summary, when it gives one."
    )
    github_repo = models.URLField("GitHub repository", max_length=500, blank=True)
    project_page = models.URLField(max_length=500, blank=True)
    categories = models.JSONField(
        default=list, blank=True, help_text="arXiv categories, the primary first."
    )
    arxiv_version = models.PositiveSmallIntegerField(
        "arXiv version", null=True, blank=True, help_text="The latest version seen."
    )
    comment = models.TextField(blank=True, help_text="The authors' comment on arXiv.")
    journal_ref = models.CharField("journal reference", max_length=500, blank=True)
    doi = models.CharField("DOI", max_length=200, blank=True)
    origins = models.JSONField(
        default=list, blank=True, help_text="Where the paper was seen: Hugging Face, arXiv."
    )
    first_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    hidden_at = models.DateTimeField(null=True, blank=True)
    hidden_reason = models.CharField(max_length=200, blank=True)
    pinned_at = models.DateTimeField(
        null=True, blank=True, help_text="Pinned papers lead every subscriber's next digest."
    )
    topics = models.ManyToManyField(Topic, blank=True, related_name="papers")

    objects = PaperQuerySet.as_manager()

    class Meta:
        ordering = ["-first_seen_at", "-id"]

    def __str__(self) -> str:
        return self.title

    @property
    def url(self) -> str:
        """The paper's Hugging Face page, or a Hugging Face search for its title."""
        return paper_url(self.arxiv_id, self.title)

    @property
    def origin_label(self) -> str:
        """Where the paper came from, for digests: ``"Hugging Face · arXiv"``."""
        return origin_label(self.origins)

    # --- Moderation -------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``hidden``, ``pinned`` or ``visible``."""
        if self.hidden_at:
            return "hidden"
        return "pinned" if self.pinned_at else "visible"

    def hide(self, reason: str, now: datetime | None = None) -> None:
        """Keep the paper out of every digest from now on, and unpin it.

        ``reason`` (at most 200 characters) is required; hiding a hidden paper again
        only replaces the reason. Raises ValueError when ``reason`` is blank.
        """
        reason = reason.strip()
        if not reason:
            raise ValueError("a reason is required to hide a paper")
        self.hidden_at = self.hidden_at or now or timezone.now()
        self.hidden_reason = reason[:200]
        self.pinned_at = None
        self.save(update_fields=["hidden_at", "hidden_reason", "pinned_at"])

    def unhide(self) -> None:
        """Let the paper go out in digests again."""
        self.hidden_at = None
        self.hidden_reason = ""
        self.save(update_fields=["hidden_at", "hidden_reason"])

    def pin(self, now: datetime | None = None) -> None:
        """Put the paper at the top of every subscriber's next digest (see
        :meth:`PaperQuerySet.pinned`). Raises ValueError for a hidden paper."""
        if self.hidden_at:
            raise ValueError("a hidden paper cannot be pinned; unhide it first")
        self.pinned_at = now or timezone.now()
        self.save(update_fields=["pinned_at"])

    def unpin(self) -> None:
        """Stop leading digests with this paper."""
        self.pinned_at = None
        self.save(update_fields=["pinned_at"])

    @transaction.atomic
    def merge(self, drop: Paper) -> Paper:
        """Fold ``drop`` into this paper, ``keep`` (two rows that are the same paper), and
        delete ``drop``.

        ``keep`` keeps its id, title and moderation state, and gains: ``drop``'s arXiv id
        when it has none, the higher upvotes, the earlier first-seen and later last-seen
        times, any detail it lacks (abstract, authors, dates...), ``drop``'s topics, its
        sightings and its digest items. Where both rows have a sighting in the same ingest
        run, or both went to the same subscriber (a paper goes to a subscriber once), the
        duplicate's row is dropped. A pin on ``drop`` carries over unless ``keep`` is
        hidden. Returns this paper, refreshed. Raises ValueError when both are the same row.
        """
        keep = self
        if keep.pk == drop.pk:
            raise ValueError("cannot merge a paper with itself")
        keep, drop = (
            Paper.objects.select_for_update().get(pk=keep.pk),
            Paper.objects.select_for_update().get(pk=drop.pk),
        )
        Sighting.objects.filter(
            paper=drop, run_id__in=Sighting.objects.filter(paper=keep).values("run_id")
        ).delete()
        Sighting.objects.filter(paper=drop).update(paper=keep)
        DigestItem.objects.filter(
            paper=drop,
            subscriber_id__in=DigestItem.objects.filter(paper=keep).values("subscriber_id"),
        ).delete()
        DigestItem.objects.filter(paper=drop).update(paper=keep)
        keep.topics.add(*drop.topics.all())

        if drop.arxiv_id and not keep.arxiv_id:
            keep.arxiv_id = drop.arxiv_id
            drop.arxiv_id = None
            drop.save(update_fields=["arxiv_id"])  # the column is unique
        counts = [n for n in (keep.upvotes, drop.upvotes) if n is not None]
        keep.upvotes = max(counts) if counts else None
        keep.origins = [*keep.origins, *(o for o in drop.origins if o not in keep.origins)]
        keep.first_seen_at = min(keep.first_seen_at, drop.first_seen_at)
        keep.last_seen_at = max(keep.last_seen_at, drop.last_seen_at)
        if drop.pinned_at and not keep.pinned_at and not keep.hidden_at:
            keep.pinned_at = drop.pinned_at
        for f in Paper._meta.concrete_fields:
            if f.name in _NOT_FILLED or f.name in {
                "upvotes",
                "origins",
                "first_seen_at",
                "last_seen_at",
            }:
                continue
            if getattr(keep, f.attname) in (None, "", [], {}) and getattr(drop, f.attname) not in (
                None,
                "",
                [],
                {},
            ):
                setattr(keep, f.attname, getattr(drop, f.attname))
        drop.delete()
        keep.save()
        log.info("papers_merged kept=%s dropped=%s", keep.pk, drop.pk)
        self.refresh_from_db()
        return self

    @property
    def hf_url(self) -> str | None:
        """The paper's Hugging Face page, or None without an arXiv id."""
        return f"{HF_PAPERS_URL}/{self.arxiv_id}" if self.arxiv_id else None

    @property
    def arxiv_url(self) -> str | None:
        """The arXiv abstract page, or None without an arXiv id
        (https://info.arxiv.org/help/arxiv_identifier_for_services.html)."""
        return f"{ARXIV_URL}/abs/{self.arxiv_id}" if self.arxiv_id else None

    @property
    def pdf_url(self) -> str | None:
        """The latest version's PDF on arXiv, or None without an arXiv id."""
        return f"{ARXIV_URL}/pdf/{self.arxiv_id}" if self.arxiv_id else None


class Sighting(models.Model):
    """A paper as one ingest run saw it, with its upvotes at that time."""

    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="sightings")
    run = models.ForeignKey(IngestRun, on_delete=models.CASCADE, related_name="sightings")
    upvotes = models.IntegerField(null=True, blank=True)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["paper", "run"], name="sighting_once_per_run"),
        ]

    def __str__(self) -> str:
        return f"{self.paper_id} in run {self.run_id}: {self.upvotes} upvotes"


class Digest(models.Model):
    """One subscriber's edition for one period (a local day, an ISO week, or an edition
    outside the schedule: :attr:`WELCOME`, :attr:`ON_REQUEST` and the hour).

    Unique per (subscriber, period): the row is claimed before anything is sent, and
    its status moves ``pending → sending → sent`` (or ``failed``, or ``empty`` when
    nothing matched).
    """

    PENDING, SENDING, SENT, FAILED, EMPTY = "pending", "sending", "sent", "failed", "empty"
    # Editions outside the schedule (digest.delivery.extra): the welcome digest, sent
    # once on confirming, and one asked for from the settings page, at most one per
    # UTC clock hour ("now-YYYYMMDDHH"). Their papers are never sent again either.
    WELCOME = schedule.WELCOME
    ON_REQUEST = schedule.ON_REQUEST
    STATUSES = [
        (PENDING, "Pending"),
        (SENDING, "Sending"),
        (SENT, "Sent"),
        (FAILED, "Failed"),
        (EMPTY, "Nothing matched"),
    ]

    subscriber = models.ForeignKey(
        "subscriptions.Subscriber", on_delete=models.CASCADE, related_name="digests"
    )
    period = models.CharField(max_length=16)
    status = models.CharField(max_length=8, choices=STATUSES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    message_id = models.CharField(
        max_length=255,
        blank=True,
        db_index=True,
        help_text="Chosen when planned; every attempt reuses it.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    planned_at = models.DateTimeField(
        null=True, blank=True, help_text="When its papers were chosen (unset: not yet)."
    )
    attempted_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="When the last send attempt began; a digest left sending past the lease "
        "is sent again with the same Message-ID.",
    )
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "period"], name="digest_once_per_period"),
        ]
        indexes = [models.Index(fields=["status", "attempted_at"], name="digest_status_attempted")]

    def __str__(self) -> str:
        return f"{self.subscriber} {self.period}"


def archive_cutoff(now: datetime | None = None) -> datetime:
    """The oldest send time whose digests keep their papers (``DIGEST_ARCHIVE_DAYS``):
    older digests are pruned of them (:mod:`digest.delivery.retention`), so the "view in
    browser" page and the feed show only newer ones."""
    return (now or timezone.now()) - timedelta(days=settings.DIGEST_ARCHIVE_DAYS)


class DigestItem(models.Model):
    """A paper carried by a digest. Unique per (subscriber, paper): no paper is ever
    sent twice to the same subscriber.

    ``reason`` is text of any length: its wording, not the column, keeps it short, so a
    long reason can never fail the insert of a whole chunk. Planning still cuts it at a
    word boundary at :attr:`REASON_MAX_CHARS` characters to bound the row.
    """

    REASON_MAX_CHARS = 1000

    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="items")
    subscriber = models.ForeignKey(
        "subscriptions.Subscriber", on_delete=models.CASCADE, related_name="+"
    )
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField()
    reason = models.TextField(blank=True)
    # A "you may also like" paper no filter or topic matched (docs/relevance.md): shown in
    # a section of its own after the matches.
    suggested = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "paper"], name="paper_once_per_subscriber"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.paper_id} in digest {self.digest_id}"


class Feedback(models.Model):
    """A subscriber's relevance feedback on one paper: "more like this" (``+1``) or "less
    like this" (``-1``). One row per (subscriber, paper): a second vote replaces the first.

    ``source`` says where it came from: a digest's link (``email``), or a paper the
    subscriber added by hand on the settings page (``picked``).
    """

    MORE, LESS = 1, -1
    VOTES = [(MORE, "More like this"), (LESS, "Less like this")]
    EMAIL, PICKED = "email", "picked"
    SOURCES = [(EMAIL, "From a digest"), (PICKED, "Picked on the settings page")]

    subscriber = models.ForeignKey(
        "subscriptions.Subscriber", on_delete=models.CASCADE, related_name="feedback"
    )
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="feedback")
    vote = models.SmallIntegerField(choices=VOTES)
    source = models.CharField(max_length=8, choices=SOURCES, default=EMAIL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "paper"], name="feedback_once_per_paper"),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber_id} {self.get_vote_display()} {self.paper_id}"


class PaperEmbedding(models.Model):
    """A paper's embedding: ``dimensions`` float32 values, little-endian, L2-normalised,
    made by the model named ``model`` (:mod:`digest.relevance`)."""

    paper = models.OneToOneField(
        Paper, on_delete=models.CASCADE, primary_key=True, related_name="embedding"
    )
    model = models.CharField(max_length=100)
    vector = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.paper_id} ({self.model})"


class BlockedTerm(models.Model):
    """A word or phrase subscribers may not use in their filters.

    Compared as :func:`digest.matching.blocked.blocked_terms_in` says: folded, token by
    token, singular and plural alike. The admin flags the existing filters that contain a
    term it saves for review (:func:`digest.matching.blocked.flag_filters_containing`).
    """

    term = models.CharField(max_length=100, unique=True)
    note = models.CharField(max_length=200, blank=True, help_text="Why it is blocked.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["term"]

    def __str__(self) -> str:
        return self.term


class DeliveryEvent(models.Model):
    """What the ESP reported about a message: delivered, bounced, complained…

    Stored from anymail's normalised ``tracking`` signal (see :mod:`digest.delivery.tracking`),
    once per ESP event id. ``event_type`` and ``reject_reason`` are anymail's values
    (https://anymail.dev/en/stable/sending/tracking/#anymail.signals.AnymailTrackingEvent).
    """

    esp_name = models.CharField(max_length=32)
    event_id = models.CharField(
        max_length=255, blank=True, help_text="Blank when the ESP gives none."
    )
    event_type = models.CharField(max_length=32, db_index=True)
    reject_reason = models.CharField(max_length=32, blank=True)
    description = models.TextField(blank=True)
    mta_response = models.TextField(blank=True)
    recipient = models.CharField(max_length=254, blank=True)
    message_id = models.CharField(max_length=255, blank=True, help_text="As the ESP reports it.")
    timestamp = models.DateTimeField(null=True, blank=True)
    digest = models.ForeignKey(
        Digest, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    subscriber = models.ForeignKey(
        "subscriptions.Subscriber",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="delivery_events",
    )
    raw = models.JSONField(default=dict, blank=True, help_text="The ESP's payload for the event.")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["esp_name", "event_id"],
                condition=~models.Q(event_id=""),
                name="delivery_event_once_per_esp_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.esp_name} {self.event_type} {self.recipient}"
