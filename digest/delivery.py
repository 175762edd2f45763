"""Plan, render and send each subscriber's digest — claim first, then send.

The database records what was sent; the broker and the workers only carry ids.

* **Planning** inserts the :class:`Digest` row of each subscriber's edition if absent
  (unique per (subscriber, period)), then, holding the row lock, chooses its papers —
  :class:`DigestItem` rows, unique per (subscriber, paper), so a paper never goes to the
  same subscriber twice — and its Message-ID. Planning again changes nothing.
* **Sending** moves each digest ``pending → sending`` with a conditional UPDATE (the row
  count says who won), sends it over the batch's one mail connection, then marks it
  ``sent`` — in a batch, in the same statement and commit as the claim of the next
  digest, so each digest costs one commit. Two workers handed the same digest send one
  message.
* **Errors.** A transient error (:func:`is_transient`: the ESP's API, SMTP, the network)
  puts the digest back to ``pending`` and the batch is retried with exponential backoff
  and jitter (:func:`retry_countdown`); after ``DIGEST_MAX_ATTEMPTS`` attempts, or at
  once for an address the server refuses, it is ``failed`` and its papers are released
  so a later digest can carry them.
* **A worker killed while sending** leaves its digest ``sending``. Once
  ``DIGEST_SENDING_LEASE`` has passed since the attempt began, the digest may be claimed
  again and is re-sent with the Message-ID stored at planning, so no digest goes missing.
  The price is a window of one message: if the worker died after the server accepted
  the message but before the ``sent`` UPDATE committed (a millisecond or so), the
  recipient gets that message twice, with the same Message-ID.
"""

from __future__ import annotations

import logging
import random
import smtplib
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection as db
from django.db import transaction
from django.db.models import Count, F, Q
from django.urls import reverse
from django.utils import timezone

from subscriptions.models import Filter, Subscriber
from subscriptions.schedule import WEEKLY
from subscriptions.tokens import digest_web_url, manage_url_for, unsubscribe_url

from .emails import make_email, new_message_id
from .ingest import upvote_growth
from .matching import Candidate, Selection, SubscriberSpec, select_for_subscribers, trend_score
from .models import Digest, DigestItem, Paper, Topic, paper_url
from .render import PaperCard, Recipient, Renderer, render_digest, render_nothing

log = logging.getLogger(__name__)

# The statements every digest runs, written once in SQL: through the ORM, compiling them
# cost more than executing them (about 1 ms each at hundreds of digests a second).
_TABLE = Digest._meta.db_table
_CLAIM_SQL = (
    f"UPDATE {_TABLE} SET status = %s, attempts = attempts + 1, attempted_at = %s "
    f"WHERE id = %s AND (status = %s OR (status = %s AND attempted_at < %s))"
)
_SENT_SQL = f"UPDATE {_TABLE} SET status = %s, sent_at = %s, last_error = '' WHERE id = %s"
_ITEM_COLUMNS = "(digest_id, subscriber_id, paper_id, rank, reason)"
_ITEM_SQL = (
    f"INSERT INTO {DigestItem._meta.db_table} {_ITEM_COLUMNS} VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
_ITEMS_SQL = (
    f"INSERT INTO {DigestItem._meta.db_table} {_ITEM_COLUMNS} "
    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::int[], %s::text[]) "
    "ON CONFLICT DO NOTHING"
)
# PostgreSQL runs both in one statement: the sent mark of the digest sent last, then the
# claim of the next (a data-modifying WITH runs whatever the outer statement updates).
_SENT_AND_CLAIM_SQL = f"WITH sent AS ({_SENT_SQL}) {_CLAIM_SQL}"

__all__ = [
    "DeliveryResult",
    "SendOutcome",
    "deliver",
    "digest_message",
    "due_subscriber_ids",
    "is_transient",
    "plan_digest",
    "plan_digests",
    "retry_countdown",
    "send_digest",
    "send_planned",
    "shared_renderer",
    "stale_digest_ids",
]


@dataclass
class DeliveryResult:
    """What happened to one digest of a subscriber: ``sent``, ``empty`` (nothing
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


@dataclass
class SendOutcome:
    """Digest ids by what :func:`send_planned` did with them. ``retry`` are the digests
    to try again after ``retry_in`` seconds (those that met a transient error and those
    the batch did not reach); ``errors`` holds the last error of each failed or retried
    digest."""

    sent: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    retry_in: float = 0.0
    errors: dict[int, str] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)


def window(frequency: str) -> timedelta:
    """How far back a digest looks for papers seen on the papers pages."""
    return timedelta(days=8) if frequency == WEEKLY else timedelta(days=2)


# --- Planning ---------------------------------------------------------------------------


def _candidates(subscribers: Sequence[Subscriber], now: datetime) -> list[Candidate]:
    """Visible papers seen on the pages within the widest window of ``subscribers``,
    each with its trend (:func:`digest.matching.trend_score`)."""
    widest = max(window(s.frequency) for s in subscribers)
    rows = list(
        Paper.objects.visible()
        .filter(last_seen_at__gte=now - widest)
        .values_list(
            "id",
            "title",
            "abstract",
            "authors",
            "upvotes",
            "published_on",
            "first_seen_at",
            "last_seen_at",
            "pinned_at",
        )
    )
    gained = upvote_growth([row[0] for row in rows])
    return [
        Candidate(
            id=pk,
            title=title,
            abstract=abstract,
            authors=tuple(authors or ()),
            trend=trend_score(upvotes, gained.get(pk, 0), published_on or first_seen.date(), now),
            last_seen_at=last_seen,
            pinned_at=pinned,
        )
        for (
            pk,
            title,
            abstract,
            authors,
            upvotes,
            published_on,
            first_seen,
            last_seen,
            pinned,
        ) in (rows)
    ]


def _select(subscribers: Sequence[Subscriber], now: datetime) -> dict[int, list[Selection]]:
    """Each subscriber's papers for the edition at ``now``: one matching pass per
    frequency over the papers of its window, skipping papers already sent to them."""
    candidates = _candidates(subscribers, now)
    candidate_ids = [c.id for c in candidates]
    ids = [s.pk for s in subscribers]
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
    topics = {
        pk: (name, query)
        for pk, name, query in Topic.objects.filter(pk__in=wanted_topics).values_list(
            "pk", "name", "query"
        )
    }
    filters: dict[int, list[str]] = defaultdict(list)
    for sid, query in Filter.objects.filter(subscriber_id__in=ids).values_list(
        "subscriber_id", "query"
    ):
        filters[sid].append(query)

    selections: dict[int, list[Selection]] = {}
    for frequency in {s.frequency for s in subscribers}:
        group = [s for s in subscribers if s.frequency == frequency]
        since = now - window(frequency)
        selections.update(
            select_for_subscribers(
                [SubscriberSpec(s.pk, tuple(filters[s.pk]), tuple(topic_ids[s.pk])) for s in group],
                [c for c in candidates if c.last_seen_at is None or c.last_seen_at >= since],
                limit=settings.DIGEST_MAX_PAPERS,
                excluded=excluded,
                topics=topics,
            )
        )
    return selections


def plan_digests(subscribers: Sequence[Subscriber], now: datetime) -> dict[int, Digest]:
    """Claim this period's digest of each subscriber and choose its papers, once.

    The rows are inserted if absent in one statement; matching runs once for the batch,
    outside any lock; the choices are recorded under the row locks, skipping rows another
    worker is planning. Returns subscriber id → digest. A digest with nothing matched is
    ``empty`` — or ``pending`` with no papers when ``DIGEST_SEND_EMPTY`` is on, and then
    sends the "nothing matched" note. Planning again in the same period changes nothing.
    """
    if not subscribers:
        return {}
    periods = {s.pk: s.period_key(now) for s in subscribers}
    Digest.objects.bulk_create(
        [Digest(subscriber_id=pk, period=period) for pk, period in periods.items()],
        ignore_conflicts=True,
    )
    digests = {
        d.subscriber_id: d
        for d in Digest.objects.filter(
            subscriber_id__in=list(periods), period__in=set(periods.values())
        )
        if d.period == periods[d.subscriber_id]
    }
    unplanned = [
        s
        for s in subscribers
        if digests[s.pk].status == Digest.PENDING and digests[s.pk].planned_at is None
    ]
    if unplanned:
        digests.update(_record_plans(unplanned, digests, _select(unplanned, now), now))
    return digests


def _record_plans(
    subscribers: Sequence[Subscriber],
    digests: dict[int, Digest],
    selections: dict[int, list[Selection]],
    now: datetime,
) -> dict[int, Digest]:
    with transaction.atomic():
        locked = list(
            Digest.objects.select_for_update(skip_locked=True).filter(
                pk__in=[digests[s.pk].pk for s in subscribers],
                status=Digest.PENDING,
                planned_at__isnull=True,
            )
        )
        # Rows planned before ``planned_at`` existed already have their papers.
        with_items = set(
            DigestItem.objects.filter(digest__in=locked).values_list("digest_id", flat=True)
        )
        items: list[tuple[int, int, int, int, str]] = []
        for digest in locked:
            digest.planned_at = now
            if digest.pk in with_items:
                continue
            digest.message_id = new_message_id()
            chosen = selections.get(digest.subscriber_id, [])
            if not chosen and not settings.DIGEST_SEND_EMPTY:
                digest.status = Digest.EMPTY
            items.extend(
                (digest.pk, digest.subscriber_id, s.paper_id, rank, s.reason)
                for rank, s in enumerate(chosen, 1)
            )
        # Plain rows, not models: ten per digest, where the ORM cost ~0.25 ms a digest. A
        # paper recorded meanwhile in another edition of the same subscriber is skipped.
        if items:
            with db.cursor() as cursor:
                if db.vendor == "postgresql":  # one statement of five arrays
                    cursor.execute(
                        _ITEMS_SQL, [list(column) for column in zip(*items, strict=True)]
                    )
                else:
                    cursor.executemany(_ITEM_SQL, items)
        with db.cursor() as cursor:  # bulk_update's CASE per row costs ~1 ms a digest
            cursor.executemany(
                f"UPDATE {_TABLE} SET planned_at = %s, message_id = %s, status = %s WHERE id = %s",
                [(d.planned_at, d.message_id, d.status, d.pk) for d in locked],
            )
    return {d.subscriber_id: d for d in locked}


def plan_digest(subscriber: Subscriber, now: datetime) -> Digest:
    """:func:`plan_digests` for one subscriber."""
    return plan_digests([subscriber], now)[subscriber.pk]


# --- Rendering --------------------------------------------------------------------------

_RENDERERS = threading.local()


def shared_renderer() -> Renderer:
    """This thread's :class:`~digest.render.Renderer` (a renderer is not thread-safe;
    a prefork worker process has one thread): each paper card and layout is inlined once
    per worker, not once per batch (premailer costs ~3 ms a card run alone, ~60 new
    cards a batch of 500)."""
    renderer = getattr(_RENDERERS, "renderer", None)
    if renderer is None:
        renderer = _RENDERERS.renderer = Renderer()
    return renderer


def _cards(digest_ids: Iterable[int]) -> dict[int, list[tuple[PaperCard, str]]]:
    """Digest id → its papers, in rank order, with the reason each was chosen. A paper
    carried by several digests is one :class:`PaperCard` object. Two queries of plain
    rows, whatever the number of digests."""
    items = list(
        DigestItem.objects.filter(digest_id__in=list(digest_ids))
        .order_by("digest_id", "rank")
        .values_list("digest_id", "paper_id", "reason")
    )
    cards = {
        pk: PaperCard(
            id=pk,
            title=title,
            url=paper_url(arxiv_id, title),
            abstract=abstract,
            upvotes=upvotes,
            published_on=published_on,
            authors_count=authors_count,
        )
        for pk, title, arxiv_id, abstract, upvotes, published_on, authors_count in (
            Paper.objects.filter(pk__in={paper_id for _, paper_id, _ in items}).values_list(
                "pk", "title", "arxiv_id", "abstract", "upvotes", "published_on", "authors_count"
            )
        )
    }
    out: dict[int, list[tuple[PaperCard, str]]] = defaultdict(list)
    for digest_id, paper_id, reason in items:
        out[digest_id].append((cards[paper_id], reason))
    return out


def digest_message(
    digest: Digest,
    *,
    renderer: Renderer | None = None,
    papers: Sequence[tuple[PaperCard, str]] | None = None,
    personal_links: bool = True,
) -> EmailMultiAlternatives:
    """The email for ``digest``: multipart text + HTML (the "nothing matched" note when
    it has no papers), with its stored Message-ID, the digest id in ``X-Digest-ID`` and
    as anymail metadata and tag, and the one-click unsubscribe headers of RFC 2369 and
    RFC 8058.

    Without ``renderer`` the email is rendered and inlined on its own; delivery passes
    the batch's :class:`~digest.render.Renderer` (same HTML, much faster) and the
    ``papers`` it loaded for the batch. Without ``personal_links`` the body's
    unsubscribe and settings links lead to the "email me my link" page instead of
    carrying the subscriber's tokens (the settings link signs them in): the copy shown
    to whoever holds the "view in browser" address.
    """
    subscriber = digest.subscriber
    if papers is None:
        papers = _cards([digest.pk]).get(digest.pk, [])
    unsubscribe = unsubscribe_url(subscriber.uuid)
    if personal_links:
        body_unsubscribe, body_manage = unsubscribe, manage_url_for(subscriber)
    else:
        body_unsubscribe = body_manage = settings.SITE_URL + reverse("email_link")
    common = {
        "recipient": Recipient(
            email=subscriber.email,
            unsubscribe_url=body_unsubscribe,
            manage_url=body_manage,
            web_url=digest_web_url(digest),
        ),
        "frequency": subscriber.get_frequency_display().lower(),
        "edition": digest.period,
    }
    if papers:
        cards, reasons = [p for p, _ in papers], [r for _, r in papers]
        render = renderer.digest if renderer else render_digest
        kind, parts = "digest", render(cards, reasons, **common)
    else:
        kind, parts = "nothing", (renderer.nothing if renderer else render_nothing)(**common)
    headers = {
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Digest-ID": str(digest.pk),
    }
    if digest.message_id:
        headers["Message-ID"] = digest.message_id
    message = make_email(kind, {}, subscriber.email, headers=headers, parts=parts)
    # django-anymail sends these to the ESP, which returns them in tracking webhooks
    # (digest.webhooks); other backends ignore them.
    message.metadata = {"digest_id": str(digest.pk), "subscriber_id": str(subscriber.pk)}  # type: ignore[attr-defined]
    message.tags = ["digest"]  # type: ignore[attr-defined]
    return message


# --- Sending ----------------------------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """Whether a send error may pass if tried again later: errors of the ESP's API
    (anymail's ``AnymailAPIError`` family: outages, rate limits, timeouts), of SMTP
    (``smtplib.SMTPException``) and of the network (``OSError``, which includes
    ``ConnectionError``) — except an address the server refuses for good (5xx reply to
    RCPT TO, RFC 5321 section 4.2.1; anymail's ``AnymailRecipientsRefused`` and
    ``AnymailInvalidAddress``)."""
    if isinstance(exc, AnymailRecipientsRefused | AnymailInvalidAddress):
        return False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(400 <= code < 500 for code, _ in exc.recipients.values())
    return isinstance(exc, AnymailAPIError | smtplib.SMTPException | OSError)


def retry_countdown(attempts: int) -> float:
    """Seconds to wait before the next try after ``attempts`` failed ones: exponential
    (``DIGEST_RETRY_BACKOFF`` × 2^(attempts−1), at most ``DIGEST_RETRY_BACKOFF_MAX``)
    with "equal jitter" (a random point in the upper half), so batches that failed
    together do not return together. The settings keep the maximum far below the
    broker's visibility timeout, after which Redis would hand the waiting task to another
    worker."""
    ceiling = min(
        settings.DIGEST_RETRY_BACKOFF_MAX,
        settings.DIGEST_RETRY_BACKOFF * 2 ** max(attempts - 1, 0),
    )
    return random.uniform(ceiling / 2, ceiling)


def _refused(exc: BaseException) -> bool:
    """The server refused the address for good: trying again cannot help."""
    refusal = AnymailRecipientsRefused | AnymailInvalidAddress | smtplib.SMTPRecipientsRefused
    return isinstance(exc, refusal) and not is_transient(exc)


def _lease_start() -> datetime:
    return timezone.now() - timedelta(seconds=settings.DIGEST_SENDING_LEASE)


def _claim(digest_id: int, now: datetime, *, sent: int | None = None) -> bool:
    """Claim a digest to send it: one UPDATE of a row that is ``pending``, or ``sending``
    past the lease (the worker that claimed it died), to ``sending``, counting the
    attempt. True when this caller won the row.

    ``sent`` is a digest this caller sent just before and has not marked yet: it is
    marked ``sent`` in the same commit, whether or not the claim is won, so a batch pays
    one commit per digest.
    """
    claim = [Digest.SENDING, now, digest_id, Digest.PENDING, Digest.SENDING, _lease_start()]
    if sent is None:
        with db.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, claim)
            return cursor.rowcount == 1
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute(_SENT_AND_CLAIM_SQL, [Digest.SENT, now, sent, *claim])
            return cursor.rowcount == 1
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(_SENT_SQL, [Digest.SENT, now, sent])
        cursor.execute(_CLAIM_SQL, claim)
        return cursor.rowcount == 1


def _mark_sent(digest_id: int, now: datetime) -> None:
    with db.cursor() as cursor:
        cursor.execute(_SENT_SQL, [Digest.SENT, now, digest_id])


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def send_digest(
    digest: Digest,
    connection: BaseEmailBackend,
    now: datetime | None = None,
    *,
    renderer: Renderer | None = None,
    papers: Sequence[tuple[PaperCard, str]] | None = None,
) -> bool:
    """Send a planned digest once. Returns True when this call sent it.

    The ``pending → sending`` UPDATE is the claim (it also takes a ``sending`` digest
    whose lease ran out); a second caller updates no row and returns False. On a send
    error the digest goes back to ``pending`` with the error recorded, and the exception
    propagates: the caller decides whether to retry (:func:`send_planned` does).
    ``now`` is kept for callers; the claim and ``sent_at`` use the clock.
    """
    mark = _SentMark()
    if not _claim_and_send(digest, connection, mark, renderer=renderer, papers=papers):
        return False
    mark.flush()
    return True


class _SentMark:
    """The digest a batch sent last whose ``sent`` mark has not committed yet: the next
    claim commits it (:func:`_claim`), or :meth:`flush`. That commit ends the
    double-send window of the digest (see the module docstring)."""

    def __init__(self) -> None:
        self.digest_id: int | None = None

    def flush(self) -> None:
        if self.digest_id is not None:
            _mark_sent(self.digest_id, timezone.now())
            self.digest_id = None


def _claim_and_send(
    digest: Digest,
    connection: BaseEmailBackend,
    mark: _SentMark,
    *,
    renderer: Renderer | None,
    papers: Sequence[tuple[PaperCard, str]] | None,
) -> bool:
    """:func:`send_digest`, leaving the digest's sent mark to ``mark``; the claim
    commits the mark ``mark`` held before."""
    won = _claim(digest.pk, timezone.now(), sent=mark.digest_id)
    mark.digest_id = None
    if not won:
        return False
    digest.attempts += 1
    if not digest.message_id:
        # Digests planned before Message-IDs were chosen at planning get one now, kept
        # for every later attempt.
        Digest.objects.filter(pk=digest.pk, message_id="").update(message_id=new_message_id())
        digest.refresh_from_db(fields=["message_id"])
    try:
        message = digest_message(digest, renderer=renderer, papers=papers)
        connection.send_messages([message])
    except Exception as exc:
        Digest.objects.filter(pk=digest.pk, status=Digest.SENDING).update(
            status=Digest.PENDING, last_error=_error_text(exc)
        )
        raise
    log.info(
        "digest_sent digest_id=%s subscriber_id=%s attempts=%s",
        digest.pk,
        digest.subscriber_id,
        digest.attempts,
    )
    mark.digest_id = digest.pk
    return True


def _give_up(digest_ids: Sequence[int], error: str) -> None:
    """Mark digests ``failed`` and release their papers for a later digest."""
    with transaction.atomic():
        Digest.objects.filter(pk__in=digest_ids).exclude(status=Digest.SENT).update(
            status=Digest.FAILED, last_error=error[:2000]
        )
        DigestItem.objects.filter(digest_id__in=digest_ids, digest__status=Digest.FAILED).delete()
    log.warning("digests_failed digest_ids=%s error=%s", list(digest_ids), error[:200])


def _close_quietly(connection: BaseEmailBackend) -> None:
    try:
        connection.close()
    except Exception:  # the connection is already broken; nothing was lost with it
        log.debug("closing the mail connection failed", exc_info=True)


def send_planned(
    digest_ids: Iterable[int],
    *,
    connection: BaseEmailBackend | None = None,
    renderer: Renderer | None = None,
) -> SendOutcome:
    """Send the planned, unsent digests among ``digest_ids`` over one mail connection.

    Digests already sent, or being sent by a live worker, are left alone (``already``).
    A transient error stops the batch: the digest that met it and every digest not yet
    reached go into ``retry`` (a connection that cannot be opened counts as an attempt
    of each). A digest is ``failed`` and its papers released after
    ``DIGEST_MAX_ATTEMPTS`` attempts, at once when its address is refused, and when its
    subscriber is no longer active. Any other error is recorded on its digest (back to
    ``pending``, retried by the beat once the lease passed) and the batch goes on.
    """
    outcome = SendOutcome()
    digests = list(
        Digest.objects.filter(
            pk__in=list(digest_ids),
            status__in=[Digest.PENDING, Digest.SENDING],
            planned_at__isnull=False,
        )
        .select_related("subscriber")
        .order_by("pk")
    )
    if not digests:
        return outcome
    gone = [d for d in digests if d.subscriber.state != "active"]
    if gone:
        _give_up([d.pk for d in gone], "the subscriber is no longer active")
        outcome.failed += [d.pk for d in gone]
        digests = [d for d in digests if d.subscriber.state == "active"]
    papers = _cards(d.pk for d in digests)
    renderer = renderer or shared_renderer()
    renderer.prepare(card for cards in papers.values() for card, _ in cards)
    connection = connection or get_connection()
    try:
        connection.open()
    except Exception as exc:
        if not is_transient(exc):
            raise
        _charge_attempt(digests, exc, outcome)
        return outcome
    mark = _SentMark()
    try:
        for index, digest in enumerate(digests):
            try:
                sent = _claim_and_send(
                    digest, connection, mark, renderer=renderer, papers=papers[digest.pk]
                )
            except Exception as exc:
                error = _error_text(exc)
                outcome.errors[digest.pk] = error
                outcome.attempts[digest.pk] = digest.attempts
                if _refused(exc) or digest.attempts >= settings.DIGEST_MAX_ATTEMPTS:
                    _give_up([digest.pk], error)
                    outcome.failed.append(digest.pk)
                elif is_transient(exc):
                    # The connection is likely broken: retry this one and the rest later.
                    outcome.retry = [d.pk for d in digests[index:]]
                    outcome.retry_in = retry_countdown(digest.attempts)
                    log.warning(
                        "digest_send_retry digest_id=%s attempts=%s error=%s retry_in=%.1f",
                        digest.pk,
                        digest.attempts,
                        error,
                        outcome.retry_in,
                    )
                    break
                else:
                    log.exception("digest_send_error digest_id=%s", digest.pk)
                continue
            (outcome.sent if sent else outcome.already).append(digest.pk)
    finally:
        try:
            mark.flush()
        finally:
            _close_quietly(connection)
    return outcome


def _charge_attempt(digests: Sequence[Digest], exc: BaseException, outcome: SendOutcome) -> None:
    """Count a failed connection as an attempt of every digest that waited on it."""
    error = _error_text(exc)
    ids = [d.pk for d in digests]
    Digest.objects.filter(pk__in=ids, status=Digest.PENDING).update(
        attempts=F("attempts") + 1, attempted_at=timezone.now(), last_error=error
    )
    attempts = dict(Digest.objects.filter(pk__in=ids).values_list("pk", "attempts"))
    spent = [pk for pk in ids if attempts.get(pk, 0) >= settings.DIGEST_MAX_ATTEMPTS]
    if spent:
        _give_up(spent, error)
        outcome.failed += spent
    outcome.retry = [pk for pk in ids if pk not in spent]
    outcome.errors.update(dict.fromkeys(ids, error))
    outcome.attempts.update(attempts)
    if outcome.retry:
        outcome.retry_in = retry_countdown(max(attempts[pk] for pk in outcome.retry))
    log.warning(
        "mail_connection_failed digests=%s error=%s retry_in=%.1f",
        len(ids),
        error,
        outcome.retry_in,
    )


# --- The pipeline -----------------------------------------------------------------------


def deliver(
    subscriber_ids: Iterable[int],
    *,
    now: datetime | None = None,
    force: bool = False,
    connection: BaseEmailBackend | None = None,
) -> list[DeliveryResult]:
    """Plan and send the digests of ``subscriber_ids`` over one mail connection.

    Only deliverable subscribers whose ``next_digest_at`` has come are planned unless
    ``force`` (the demo and a moderator's "send now" ignore the schedule, never the
    deliverable state); each one's ``next_digest_at`` then moves to the next slot after
    ``now``. Planned digests of these subscribers still unsent — from this call or an
    earlier one that was interrupted — are sent too, so running it again finishes what
    a killed worker left. Returns a result per digest handled, in subscriber order, and
    ``skipped`` for a subscriber with none.
    """
    now = now or timezone.now()
    subscribers = list(Subscriber.objects.filter(pk__in=list(subscriber_ids)).order_by("pk"))
    active = [s for s in subscribers if s.state == "active"]
    served = [
        s for s in active if force or (s.next_digest_at is not None and s.next_digest_at <= now)
    ]
    planned = plan_digests(served, now)
    for subscriber in served:
        subscriber.next_digest_at = subscriber.compute_next_digest_at(now)
    Subscriber.objects.bulk_update(served, ["next_digest_at"])

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
            digest_id__in=[d.pk for d in planned.values()] + [pk for pk, _ in unsent]
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


def _result(
    subscriber: Subscriber, digest: Digest, outcome: SendOutcome, counts: dict[int, int]
) -> DeliveryResult:
    result = DeliveryResult(subscriber.pk, subscriber.email, "already", digest_id=digest.pk)
    result.papers = counts.get(digest.pk, 0)
    result.error = outcome.errors.get(digest.pk, "")
    result.attempts = outcome.attempts.get(digest.pk, 0)
    if digest.pk in outcome.sent:
        result.status = "sent"
    elif digest.pk in outcome.failed:
        result.status = "failed"
    elif digest.pk in outcome.retry:
        result.status = "retrying"
    elif digest.status == Digest.EMPTY:
        result.status = "empty"
    elif digest.pk in outcome.errors:
        result.status = "failed"
    return result


def due_subscriber_ids(now: datetime) -> Sequence[int]:
    """Ids of the subscribers whose digest is due at ``now``, oldest due first."""
    return list(
        Subscriber.objects.due(now).order_by("next_digest_at", "pk").values_list("pk", flat=True)
    )


def stale_digest_ids() -> list[int]:
    """Planned digests that no worker is looking after: ``sending`` past the lease (its
    worker died) or ``pending`` with no attempt within the lease (its task was lost).
    The beat hands them to :func:`send_planned` again."""
    cutoff = _lease_start()
    return list(
        Digest.objects.filter(planned_at__isnull=False)
        .filter(
            Q(status=Digest.SENDING, attempted_at__lt=cutoff)
            | Q(status=Digest.PENDING, attempted_at__lt=cutoff)
            | Q(status=Digest.PENDING, attempted_at__isnull=True, planned_at__lt=cutoff)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
