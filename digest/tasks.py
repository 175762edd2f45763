"""Celery tasks. They take ids and plain values, never model instances, and are
idempotent: a task run twice does no harm (the database records what was done)."""

from __future__ import annotations

import logging
from collections import Counter

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from digest.delivery import extra, retention
from digest.delivery.bounces import read_mailbox
from digest.delivery.pipeline import DeliveryResult, claim_due_subscribers, deliver
from digest.delivery.send import claim_stale_digests, retry_countdown, send_planned
from digest.ingest import sources
from digest.ingest.store import ingest_source

log = logging.getLogger(__name__)


@shared_task
def ingest_page(source: str, format: str | None = None) -> dict[str, object]:
    """Ingest one file path or URL, then enqueue the embedding of its papers
    (:func:`ingest_embeddings`); returns the page summary of ``ingest --json``."""
    result = ingest_source(source, format=format)
    _embed_after(result.run_id, result.error)
    return result.as_dict()


def _embed_after(run_id: int | None, error: str | None) -> None:
    if run_id is not None and error is None:
        ingest_embeddings.delay_on_commit()


# Papers one task embeds at most (about a minute on one core); it enqueues itself again
# for the rest, so a backlog never holds the ingest queue for long.
EMBED_TASK_LIMIT = 1000


@shared_task
def ingest_embeddings() -> int:
    """Embed papers that have no embedding yet, oldest first, in batches
    (:func:`digest.relevance.embed.embed_papers`), at most :data:`EMBED_TASK_LIMIT`, and
    tag them with the topics they are similar enough to
    (:func:`digest.matching.topics.tag_semantic_topics`); then enqueue itself again when
    more are left. Runs on the ingest queue after each ingest.
    Idempotent. Returns how many were embedded."""
    from digest.matching.topics import tag_semantic_topics
    from digest.relevance.embed import embed_papers, missing_embeddings

    todo = missing_embeddings()
    done = embed_papers(todo[:EMBED_TASK_LIMIT])
    # Topics with a semantic part take in the new papers similar enough to them.
    tag_semantic_topics(todo[:EMBED_TASK_LIMIT])
    if len(todo) > EMBED_TASK_LIMIT:
        ingest_embeddings.delay()
    return done


@shared_task
def ingest_sources() -> int:
    """Enqueue an ingest of every path or URL in ``INGEST_SOURCES``; returns how many."""
    for source in settings.INGEST_SOURCES:
        ingest_page.delay(source)
    return len(settings.INGEST_SOURCES)


@shared_task
def rebuild_profile(subscriber_id: int) -> bool:
    """Rebuild one subscriber's relevance profile from their feedback
    (:func:`digest.relevance.profile.rebuild_profile`); False when they are gone."""
    from digest.relevance.profile import rebuild_profile as rebuild

    return rebuild(subscriber_id)


@shared_task
def fetch_due_sources() -> int:
    """Claim the sources due now and enqueue ``fetch_source`` for each, after the claims
    commit. Returns how many were due."""
    with transaction.atomic():
        ids = sources.claim_due_sources(timezone.now())
        for source_id in ids:
            transaction.on_commit(lambda source_id=source_id: fetch_source.delay(source_id))
    return len(ids)


@shared_task
def fetch_source(source_id: int) -> dict[str, object] | None:
    """Fetch one source (conditional GET) and ingest its page; returns the page summary
    of ``ingest --json``, or ``None`` when the source was deleted."""
    result = sources.fetch_source(source_id)
    if result is None:
        return None
    _embed_after(result.run_id, result.error)
    return result.as_dict()


@shared_task
def send_due_digests() -> int:
    """The beat's tick: claim the due subscribers in chunks of ``DIGEST_CHUNK_SIZE``
    (:func:`~digest.delivery.pipeline.claim_due_subscribers`) and enqueue one
    ``send_digests`` task per chunk (never one per subscriber) once its claim commits;
    claim the planned digests no worker is looking after
    (:func:`~digest.delivery.send.claim_stale_digests`) and hand them back to
    ``send_planned_digests``. Returns how many subscribers were claimed."""
    size = settings.DIGEST_CHUNK_SIZE
    now = timezone.now()
    claimed = 0
    while True:
        with transaction.atomic():
            chunk = claim_due_subscribers(now, size)
            if chunk:
                send_digests.delay_on_commit(chunk)
        claimed += len(chunk)
        if len(chunk) < size:
            break
    stale = claim_stale_digests(now)
    for start in range(0, len(stale), size):
        send_planned_digests.delay_on_commit(stale[start : start + size])
    if stale:
        log.warning("stale_digests_resent count=%s", len(stale))
    return claimed


def _counts(results: list[DeliveryResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts


def _schedule_retry(digest_ids: list[int], countdown: float) -> None:
    send_planned_digests.apply_async_on_commit((digest_ids,), countdown=countdown)


# A chunk whose database connection is lost for longer than DIGEST_DB_RETRY_SECONDS runs
# again a little later on a fresh one (the Celery Django fixup drops the broken one).
_DB_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": int(settings.DIGEST_RETRY_BACKOFF_MAX),
    "max_retries": 12,
}


@shared_task(acks_late=True, reject_on_worker_lost=True, **_DB_RETRY)
def send_digests(subscriber_ids: list[int]) -> dict[str, int]:
    """Plan and send the due digests of ``subscriber_ids``, many in flight
    (:func:`~digest.delivery.pipeline.deliver`); digests that met a transient error are retried by
    ``send_planned_digests`` after a backoff. Returns counts by outcome (``sent``,
    ``empty``, ``skipped``, ``already``, ``retrying``, ``failed``).

    Acknowledged only after it ran, and requeued if its worker dies: running it again
    sends what is still unsent and nothing twice. Run again after a backoff when the
    database stays unreachable past ``DIGEST_DB_RETRY_SECONDS``.
    """
    results = deliver(subscriber_ids)
    retry = [r for r in results if r.status == "retrying"]
    if retry:
        countdown = retry_countdown(max(r.attempts for r in retry))
        _schedule_retry([r.digest_id for r in retry if r.digest_id is not None], countdown)
    return _counts(results)


@shared_task(acks_late=True, reject_on_worker_lost=True, **_DB_RETRY)
def send_extra_digest(subscriber_id: int, period: str) -> str:
    """The welcome digest, or one asked for (:func:`~digest.delivery.extra.send_extra`);
    a transient error schedules ``send_planned_digests``. Returns what happened
    (``sent``, ``feed``, ``empty``, ``already``, ``retrying``, ``failed``, ``skipped``).
    Safe to run twice: the edition is planned and sent once."""
    result, outcome = extra.send_extra(subscriber_id, period)
    if outcome.retry:
        _schedule_retry(outcome.retry, outcome.retry_in)
    return result.status


@shared_task(acks_late=True, reject_on_worker_lost=True, **_DB_RETRY)
def send_planned_digests(digest_ids: list[int]) -> dict[str, int]:
    """Send planned digests by id (a retry, or digests a dead worker left); schedules
    its own retry for those that meet a transient error. Returns counts by outcome."""
    outcome = send_planned(digest_ids)
    if outcome.retry:
        _schedule_retry(outcome.retry, outcome.retry_in)
    return {
        "sent": len(outcome.sent),
        "already": len(outcome.already),
        "failed": len(outcome.failed),
        "retrying": len(outcome.retry),
    }


@shared_task
def prune_digest_items() -> int:
    """The nightly pruning of old digests' papers
    (:func:`~digest.delivery.retention.prune_digest_items`); returns how many went."""
    return retention.prune_digest_items()


@shared_task
def read_bounces() -> dict[str, int]:
    """Read the bounce mailbox ``BOUNCE_MAILBOX_URL``
    (:func:`digest.delivery.bounces.read_mailbox`): each report handled, then deleted.
    Returns how many messages were bounces, complaints or ignored. Idempotent: a
    report read twice is stored once."""
    counts: Counter[str] = Counter()
    if settings.BOUNCE_MAILBOX_URL:
        for _, outcome in read_mailbox(settings.BOUNCE_MAILBOX_URL):
            counts[outcome.kind] += 1
    log.info("bounces_read %s", " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return dict(counts)
