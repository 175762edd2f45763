"""Papers and where they were seen; digests and the papers each one carried."""

from __future__ import annotations

from urllib.parse import quote_plus

from django.db import models
from django.utils import timezone

HF_PAPERS_URL = "https://huggingface.co/papers"


class IngestRun(models.Model):
    """One page ingested from a file or URL: what it held, what changed, what failed."""

    RUNNING, OK, FAILED = "running", "ok", "failed"
    STATUSES = [(RUNNING, "Running"), (OK, "OK"), (FAILED, "Failed")]

    source = models.CharField(max_length=2000, help_text="File path or URL.")
    format = models.CharField(max_length=8, blank=True)
    status = models.CharField(max_length=8, choices=STATUSES, default=RUNNING)
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
    query = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PaperQuerySet(models.QuerySet["Paper"]):
    def visible(self) -> PaperQuerySet:
        """Papers that may go out in digests (not hidden by a moderator)."""
        return self.filter(hidden_at__isnull=True)


class Paper(models.Model):
    """A paper, stored once however many pages show it.

    Identity is the arXiv id (version dropped) when a source gives one, else
    ``title_key``, the normalised title (:func:`digest.parsers.normalise_title`).
    """

    arxiv_id = models.CharField(max_length=32, null=True, blank=True, unique=True)
    title = models.CharField(max_length=1000)
    title_key = models.CharField(max_length=1000, db_index=True, editable=False)
    abstract = models.TextField()
    authors = models.JSONField(default=list, blank=True, help_text="Author names, when known.")
    authors_count = models.PositiveIntegerField(null=True, blank=True)
    published_on = models.DateField(null=True, blank=True)
    upvotes = models.IntegerField(default=0)
    first_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    hidden_at = models.DateTimeField(null=True, blank=True)
    hidden_reason = models.CharField(max_length=200, blank=True)
    topics = models.ManyToManyField(Topic, blank=True, related_name="papers")

    objects = PaperQuerySet.as_manager()

    class Meta:
        ordering = ["-first_seen_at", "-id"]

    def __str__(self) -> str:
        return self.title

    @property
    def url(self) -> str:
        """The paper's Hugging Face page, or a Hugging Face search for its title."""
        if self.arxiv_id:
            return f"{HF_PAPERS_URL}/{self.arxiv_id}"
        return f"{HF_PAPERS_URL}?q={quote_plus(self.title)}"


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
    """One subscriber's edition for one period (a local day, or an ISO week).

    Unique per (subscriber, period): the row is claimed before anything is sent, and
    its status moves ``pending → sending → sent`` (or ``failed``, or ``empty`` when
    nothing matched).
    """

    PENDING, SENDING, SENT, FAILED, EMPTY = "pending", "sending", "sent", "failed", "empty"
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
    message_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "period"], name="digest_once_per_period"),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber} {self.period}"


class DigestItem(models.Model):
    """A paper carried by a digest. Unique per (subscriber, paper): no paper is ever
    sent twice to the same subscriber."""

    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="items")
    subscriber = models.ForeignKey(
        "subscriptions.Subscriber", on_delete=models.CASCADE, related_name="+"
    )
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField()
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "paper"], name="paper_once_per_subscriber"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.paper_id} in digest {self.digest_id}"
