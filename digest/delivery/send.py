"""Sending: claim a planned digest, send it, mark it sent — one commit per digest.

See :mod:`digest.delivery` for the guarantees (claim-then-send, the lease, the
double-send window) and how errors are retried.
"""

from __future__ import annotations

import logging
import queue
import random
import smtplib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db import connection as db
from django.db.models import F, Q
from django.utils import timezone

from digest.delivery.compose import new_message_id
from digest.delivery.message import digest_message, load_cards, shared_renderer
from digest.delivery.plan import error_text
from digest.delivery.render import PaperCard, Renderer
from digest.models import Digest, DigestItem
from subscriptions.models import State

log = logging.getLogger(__name__)

__all__ = [
    "RenderFailed",
    "SendOutcome",
    "is_transient",
    "resend_digest",
    "retry_countdown",
    "send_digest",
    "send_planned",
    "claim_stale_digests",
    "stale_digest_ids",
]

# The statements every digest runs, written once in SQL: through the ORM, compiling them
# cost more than executing them (about 1 ms each at hundreds of digests a second).
_TABLE = Digest._meta.db_table
_CLAIM_SQL = (
    f"UPDATE {_TABLE} SET status = %s, attempts = attempts + 1, attempted_at = %s "
    f"WHERE id = %s AND (status = %s OR (status = %s AND attempted_at < %s))"
)
_SENT_ONE_SQL = f"UPDATE {_TABLE} SET status = %s, sent_at = %s, last_error = '' WHERE id = %s"
_SENT_SQL = (  # PostgreSQL: every digest of a list
    f"UPDATE {_TABLE} SET status = %s, sent_at = %s, last_error = '' WHERE id = ANY(%s)"
)
# PostgreSQL runs both in one statement: the sent mark of the digest sent last, then the
# claim of the next (a data-modifying WITH runs whatever the outer statement updates).
_SENT_AND_CLAIM_SQL = f"WITH sent AS ({_SENT_SQL}) {_CLAIM_SQL}"


@dataclass
class SendOutcome:
    """Digest ids by what :func:`send_planned` did with them. ``retry`` are the digests
    to try again after ``retry_in`` seconds (those that met a transient error and those
    the batch did not reach); ``errors`` holds the last error of each failed or retried
    digest. ``published`` are the digests of subscribers who read the feed only: marked
    sent with no email."""

    sent: list[int] = field(default_factory=list)
    published: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    retry_in: float = 0.0
    errors: dict[int, str] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)


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


def _claim(digest_id: int, now: datetime, *, sent: Sequence[int] = ()) -> bool:
    """Claim a digest to send it: one UPDATE of a row that is ``pending``, or ``sending``
    past the lease (the worker that claimed it died), to ``sending``, counting the
    attempt. True when this caller won the row.

    ``sent`` are digests this caller sent and has not marked yet: they are marked
    ``sent`` in the same commit, whether or not the claim is won, so a batch pays one
    commit per digest.

    When the database connection is lost, or the statement is cancelled (a failover, a
    restart, a statement timeout), nobody knows whether it committed. The marks are
    recorded again on a fresh connection (they are idempotent) and the claim is tried
    again; a claim that had committed is recognised as this caller's by its
    ``attempted_at``, which is ``now`` to the microsecond (:func:`_reconnecting`).
    """
    try:
        return _claim_once(digest_id, now, sent)
    except (OperationalError, InterfaceError) as exc:
        if db.in_atomic_block:
            raise
        _connection_lost(exc, "claim")
    if sent:
        _reconnecting(lambda: _mark_sent(sent, now), "sent mark")

    def claim_or_recognise() -> bool:
        if _claim_once(digest_id, now, ()):
            return True
        row = Digest.objects.filter(pk=digest_id).values_list("status", "attempted_at").first()
        return row == (Digest.SENDING, now)

    return _reconnecting(claim_or_recognise, "claim")


def _claim_once(digest_id: int, now: datetime, sent: Sequence[int]) -> bool:
    claim: list[str | int | datetime] = [
        *(Digest.SENDING, now, digest_id, Digest.PENDING, Digest.SENDING, _lease_start())
    ]
    if not sent:
        with db.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, claim)
            return cursor.rowcount == 1
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute(_SENT_AND_CLAIM_SQL, [Digest.SENT, now, list(sent), *claim])
            return cursor.rowcount == 1
    with transaction.atomic(), db.cursor() as cursor:
        cursor.executemany(_SENT_ONE_SQL, [(Digest.SENT, now, pk) for pk in sent])
        cursor.execute(_CLAIM_SQL, claim)
        return cursor.rowcount == 1


def _mark_sent(digest_ids: Sequence[int], now: datetime) -> None:
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute(_SENT_SQL, [Digest.SENT, now, list(digest_ids)])
        else:
            cursor.executemany(_SENT_ONE_SQL, [(Digest.SENT, now, pk) for pk in digest_ids])


_T = TypeVar("_T")


def _connection_lost(exc: BaseException, during: str) -> None:
    """Log a lost connection and drop it: Django opens a fresh one for the next query."""
    log.warning("db_connection_lost during=%s error=%s", during, error_text(exc)[:300])
    try:
        db.close()
    except Exception:  # the connection is already gone; closing it cannot fail worse
        log.debug("closing the database connection failed", exc_info=True)


def _reconnecting(action: Callable[[], _T], during: str) -> _T:
    """``action()``, run again on a fresh database connection while the connection is
    lost or the statement cancelled (``OperationalError``, ``InterfaceError``: a
    failover, a restart, a pooler dropping it, a statement timeout), waiting 0.05 s
    doubling to 2 s between tries, for at most ``DIGEST_DB_RETRY_SECONDS``; then the
    error propagates. ``action`` must be safe to repeat. Inside a transaction nothing can
    be retried (the transaction is lost): the error propagates at once."""
    deadline = time.monotonic() + settings.DIGEST_DB_RETRY_SECONDS
    wait = 0.05
    while True:
        try:
            return action()
        except (OperationalError, InterfaceError) as exc:
            if db.in_atomic_block or time.monotonic() + wait > deadline:
                raise
            _connection_lost(exc, during)
            time.sleep(wait)
            wait = min(wait * 2, 2.0)


class RenderFailed(Exception):
    """A digest's email could not be rendered or composed; the cause is ``__cause__``.
    Nothing was sent. Trying again cannot help: :func:`send_planned` marks the digest
    ``failed`` at once."""


def send_digest(digest: Digest, connection: BaseEmailBackend) -> bool:
    """Send a planned digest once. Returns True when this call sent it.

    The ``pending → sending`` UPDATE is the claim (it also takes a ``sending`` digest
    whose lease ran out); a second caller updates no row and returns False. On a send
    error the digest goes back to ``pending`` with the error recorded, and the exception
    propagates: the caller decides whether to retry (:func:`send_planned` does).
    """
    mark = _SentMark()
    if not _claim_and_send(digest, connection, mark, renderer=None, papers=None):
        return False
    mark.flush()
    return True


class _SentMark:
    """The digests a batch sent whose ``sent`` mark has not committed yet: the next
    claim commits them (:func:`_claim`), or :meth:`flush`. That commit ends the
    double-send window of each (see the module docstring)."""

    def __init__(self) -> None:
        self.digest_ids: list[int] = []

    def flush(self) -> None:
        """Record the pending marks, on a fresh connection if the current one is lost.
        When even that fails (the database is away longer than
        ``DIGEST_DB_RETRY_SECONDS``), logs ``digest_sent_unmarked`` with the ids — those
        digests are sent again once their lease passes — and raises."""
        if not self.digest_ids:
            return
        try:
            _reconnecting(lambda: _mark_sent(self.digest_ids, timezone.now()), "sent mark")
        except Exception:
            log.error("digest_sent_unmarked digest_ids=%s", self.digest_ids)
            raise
        self.digest_ids = []


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
    won = _claim(digest.pk, timezone.now(), sent=mark.digest_ids)
    mark.digest_ids = []
    if not won:
        return False
    digest.attempts += 1
    try:
        try:
            message = digest_message(digest, renderer=renderer, papers=papers)
        except DatabaseError:
            raise
        except Exception as exc:
            raise RenderFailed(error_text(exc)) from exc
        connection.send_messages([message])
    except Exception as exc:
        _release(digest, str(exc) if isinstance(exc, RenderFailed) else error_text(exc))
        raise
    log.info(
        "digest_sent digest_id=%s subscriber_id=%s attempts=%s",
        digest.pk,
        digest.subscriber_id,
        digest.attempts,
    )
    mark.digest_ids = [digest.pk]
    return True


def _give_up(digest_ids: Sequence[int], error: str) -> None:
    """Mark digests ``failed`` and release their papers for a later digest."""

    def give_up() -> None:
        with transaction.atomic():
            Digest.objects.filter(pk__in=digest_ids).exclude(status=Digest.SENT).update(
                status=Digest.FAILED, last_error=error[:2000]
            )
            DigestItem.objects.filter(
                digest_id__in=digest_ids, digest__status=Digest.FAILED
            ).delete()

    _reconnecting(give_up, "give up")
    log.warning("digests_failed digest_ids=%s error=%s", list(digest_ids), error[:200])


def _close_quietly(connection: BaseEmailBackend) -> None:
    try:
        connection.close()
    except Exception:  # the connection is already broken; nothing was lost with it
        log.debug("closing the mail connection failed", exc_info=True)


class _Senders:
    """Up to ``size`` messages in flight: each sent by a thread with a mail connection of
    its own (a connection is not thread-safe), kept open for the batch. With ``size``
    1, or a ``connection`` given by the caller, each message is sent at once in the
    calling thread over that one connection.

    Only mail crosses threads: claims, marks and rendering stay in the calling thread,
    on its database connection. Finished sends come back from :meth:`finished` and
    :meth:`wait` as ``(digest, error or None)``.
    """

    def __init__(self, size: int, connection: BaseEmailBackend | None) -> None:
        self.size = 1 if connection is not None else max(1, size)
        self.first = connection or get_connection()
        self.in_flight = 0
        self._done: queue.SimpleQueue[tuple[Digest, BaseException | None]] = queue.SimpleQueue()
        self._opened: list[BaseEmailBackend] = []
        self._spare = [self.first]
        self._local = threading.local()
        self._pool = (
            ThreadPoolExecutor(self.size, thread_name_prefix="send") if self.size > 1 else None
        )

    def open(self) -> None:
        """Open the first connection here: a server that refuses it fails the batch
        before any digest is claimed."""
        self.first.open()
        self._opened.append(self.first)

    def submit(self, digest: Digest, message: EmailMultiAlternatives) -> None:
        self.in_flight += 1
        if self._pool is None:
            self._send(digest, message, self.first)
        else:
            self._pool.submit(self._send_in_thread, digest, message)

    def _send_in_thread(self, digest: Digest, message: EmailMultiAlternatives) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = self._spare.pop()  # the one opened by open()
            except IndexError:
                connection = get_connection()
                try:
                    connection.open()
                except BaseException as exc:
                    self._done.put((digest, exc))
                    return
                self._opened.append(connection)  # list.append is atomic
            self._local.connection = connection
        self._send(digest, message, connection)

    def _send(
        self, digest: Digest, message: EmailMultiAlternatives, connection: BaseEmailBackend
    ) -> None:
        try:
            connection.send_messages([message])
        except BaseException as exc:
            self._done.put((digest, exc))
        else:
            self._done.put((digest, None))

    def finished(self) -> list[tuple[Digest, BaseException | None]]:
        """The sends that finished since the last call, without waiting."""
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                break
        self.in_flight -= len(out)
        return out

    def wait(self) -> tuple[Digest, BaseException | None]:
        """The next send to finish, waiting for it."""
        result = self._done.get()
        self.in_flight -= 1
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for connection in self._opened:
            _close_quietly(connection)


def send_planned(
    digest_ids: Iterable[int],
    *,
    connection: BaseEmailBackend | None = None,
    renderer: Renderer | None = None,
    concurrency: int | None = None,
) -> SendOutcome:
    """Send the planned, unsent digests among ``digest_ids``, up to ``concurrency``
    (``DIGEST_SEND_CONCURRENCY``) messages in flight, each over a mail connection of
    its own thread; over ``connection`` alone, one at a time, when one is given.

    Each digest is claimed before its message is handed to a sender and marked ``sent``
    after the server accepted it (with the next claim, or at the end). Digests already
    sent, or being sent by a live worker, are left alone (``already``). A transient
    error stops the batch: no digest is claimed after it; the digests that met one and
    every digest not yet reached go into ``retry`` (a first connection that cannot be
    opened counts as an attempt of each); sends already in flight finish. A digest is
    ``failed`` and its papers released after ``DIGEST_MAX_ATTEMPTS`` attempts, at once
    when its address is refused, and when its subscriber is no longer active; at once
    too when its email cannot be rendered (:class:`RenderFailed`, logged as
    ``digest_render_failed``). Any other error is recorded on its digest (back to
    ``pending``, retried by the beat once the lease passed) and the batch goes on.
    """
    outcome = SendOutcome()
    digests = list(
        Digest.objects.filter(
            pk__any=list(digest_ids),
            status__in=[Digest.PENDING, Digest.SENDING],
            planned_at__isnull=False,
        )
        .select_related("subscriber")
        .order_by("pk")
    )
    if not digests:
        return outcome
    gone = [d for d in digests if d.subscriber.state != State.ACTIVE]
    if gone:
        _give_up([d.pk for d in gone], "the subscriber is no longer active")
        outcome.failed += [d.pk for d in gone]
        digests = [d for d in digests if d.subscriber.state == State.ACTIVE]
        if not digests:
            return outcome
    if any(d.subscriber.feed_only for d in digests):
        _publish([d for d in digests if d.subscriber.feed_only], outcome)
        digests = [d for d in digests if not d.subscriber.feed_only]
        if not digests:
            return outcome
    papers = load_cards(d.pk for d in digests)
    renderer = renderer or shared_renderer()
    renderer.prepare(card for cards in papers.values() for card, _ in cards)
    size = settings.DIGEST_SEND_CONCURRENCY if concurrency is None else concurrency
    senders = _Senders(min(size, len(digests)), connection)
    try:
        senders.open()
    except Exception as exc:
        senders.close()
        if not is_transient(exc):
            raise
        _charge_attempt(digests, exc, outcome)
        return outcome
    batch = _Batch(outcome)
    try:
        for index, digest in enumerate(digests):
            for done in senders.finished():
                batch.settle(*done)
            while senders.in_flight >= senders.size and not batch.stop:
                batch.settle(*senders.wait())
            if batch.stop:
                outcome.retry += [d.pk for d in digests[index:]]
                break
            won = _claim(digest.pk, timezone.now(), sent=batch.mark.digest_ids)
            batch.mark.digest_ids = []
            if not won:
                outcome.already.append(digest.pk)
                continue
            digest.attempts += 1
            try:
                message = digest_message(digest, renderer=renderer, papers=papers[digest.pk])
            except DatabaseError:
                raise
            except Exception as exc:
                batch.render_failed(digest, exc)
                continue
            senders.submit(digest, message)
    finally:
        try:
            while senders.in_flight:
                batch.settle(*senders.wait())
            batch.mark.flush()
        finally:
            senders.close()
    outcome.sent.sort()
    outcome.retry.sort()
    if outcome.retry:
        outcome.retry_in = retry_countdown(max(batch.retry_attempts, default=1))
    return outcome


def _publish(digests: Sequence[Digest], outcome: SendOutcome) -> None:
    """Mark the digests of feed-only subscribers sent, with no email: their private feed
    and the "view in browser" page carry them. Each is claimed by a conditional UPDATE
    from ``pending``, so two workers publish it once; one being sent by another worker
    (``sending``) is left to it (``already``)."""
    now = timezone.now()
    for digest in digests:
        won = Digest.objects.filter(pk=digest.pk, status=Digest.PENDING).update(
            status=Digest.SENT, sent_at=now
        )
        (outcome.published if won else outcome.already).append(digest.pk)


class _Batch:
    """What :func:`send_planned` does with each finished send, in the calling thread."""

    def __init__(self, outcome: SendOutcome) -> None:
        self.outcome = outcome
        self.mark = _SentMark()
        self.stop = False  # a transient error: claim nothing more
        self.retry_attempts: list[int] = []

    def settle(self, digest: Digest, exc: BaseException | None) -> None:
        outcome = self.outcome
        if exc is None:
            log.info(
                "digest_sent digest_id=%s subscriber_id=%s attempts=%s",
                digest.pk,
                digest.subscriber_id,
                digest.attempts,
            )
            self.mark.digest_ids.append(digest.pk)
            outcome.sent.append(digest.pk)
            return
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit in a sender
            raise exc
        error = error_text(exc)
        _release(digest, error)
        outcome.errors[digest.pk] = error
        outcome.attempts[digest.pk] = digest.attempts
        if _refused(exc) or digest.attempts >= settings.DIGEST_MAX_ATTEMPTS:
            _give_up([digest.pk], error)
            outcome.failed.append(digest.pk)
        elif is_transient(exc):
            # The connection is likely broken: retry this one and the rest later.
            self.stop = True
            outcome.retry.append(digest.pk)
            self.retry_attempts.append(digest.attempts)
            log.warning(
                "digest_send_retry digest_id=%s attempts=%s error=%s",
                digest.pk,
                digest.attempts,
                error,
            )
        else:
            log.error("digest_send_error digest_id=%s", digest.pk, exc_info=exc)

    def render_failed(self, digest: Digest, exc: Exception) -> None:
        error = error_text(exc)
        _release(digest, error)
        self.outcome.errors[digest.pk] = error
        self.outcome.attempts[digest.pk] = digest.attempts
        log.error(
            "digest_render_failed digest_id=%s subscriber_id=%s error=%s",
            digest.pk,
            digest.subscriber_id,
            error[:500],
            exc_info=exc,
        )
        _give_up([digest.pk], error)
        self.outcome.failed.append(digest.pk)


def _release(digest: Digest, error: str) -> None:
    """Put a claimed digest that was not sent back to ``pending``, with its error."""
    _reconnecting(
        lambda: Digest.objects.filter(pk=digest.pk, status=Digest.SENDING).update(
            status=Digest.PENDING, last_error=error
        ),
        "release",
    )


def _charge_attempt(digests: Sequence[Digest], exc: BaseException, outcome: SendOutcome) -> None:
    """Count a failed connection as an attempt of every digest that waited on it."""
    error = error_text(exc)
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


def _stale(cutoff: datetime) -> Q:
    return (
        Q(status=Digest.SENDING, attempted_at__lt=cutoff)
        | Q(status=Digest.PENDING, attempted_at__lt=cutoff)
        | Q(status=Digest.PENDING, attempted_at__isnull=True, planned_at__lt=cutoff)
    )


def stale_digest_ids() -> list[int]:
    """Planned digests that no worker is looking after: ``sending`` past the lease (its
    worker died) or ``pending`` with no attempt within the lease (its task was lost)."""
    return list(
        Digest.objects.filter(planned_at__isnull=False)
        .filter(_stale(_lease_start()))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def claim_stale_digests(now: datetime) -> list[int]:
    """Claim the :func:`stale_digest_ids` for the beat to hand to :func:`send_planned`
    again: each goes (back) to ``pending`` with ``attempted_at`` = ``now``, so it is not
    stale again for a lease and the next tick does not enqueue it twice; its claim to
    send is still :func:`_claim`'s. Returns their ids."""
    with transaction.atomic():
        ids = list(
            Digest.objects.filter(planned_at__isnull=False)
            .filter(_stale(_lease_start()))
            .order_by("pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        Digest.objects.filter(pk__in=ids).update(status=Digest.PENDING, attempted_at=now)
    return ids


def resend_digest(digest: Digest, *, connection: BaseEmailBackend | None = None) -> bool:
    """Send an already sent digest again, through :func:`send_digest`.

    The digest goes ``sent → pending`` with a conditional UPDATE (so two moderators
    clicking at once send it once), then the normal send path claims and sends it, with
    a new Message-ID. Only to an active subscriber. Returns False when nothing was sent:
    the digest is not ``sent`` or the subscriber is not active. On a send error the
    digest is marked ``sent`` again (it was, once), and the exception propagates.
    """
    if digest.subscriber.state != State.ACTIVE:
        return False
    # A new Message-ID: mail services drop a message whose Message-ID they already
    # delivered.
    message_id = new_message_id()
    reopened = Digest.objects.filter(pk=digest.pk, status=Digest.SENT).update(
        status=Digest.PENDING, message_id=message_id
    )
    if not reopened:
        return False
    digest.message_id = message_id
    connection = connection or get_connection()
    try:
        with connection:
            return send_digest(digest, connection)
    except Exception:
        Digest.objects.filter(pk=digest.pk, status=Digest.PENDING).update(status=Digest.SENT)
        raise
