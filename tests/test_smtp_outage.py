"""The mail server goes away: digests wait and retry, none lost, none doubled."""

from __future__ import annotations

import smtplib
import time
from datetime import timedelta
from pathlib import Path

import pytest
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.delivery.send import is_transient, retry_countdown, send_planned
from digest.ingest.store import ingest_source
from digest.models import Digest, DigestItem
from tests.support.net import free_port
from tests.support.smtp import SmtpSink
from tests.support.workers import broker, celery_worker, purge_broker, wait_for

from .conftest import PAGE_004, make_subscriber
from .test_exactly_once import FILTERS


def use_smtp(settings, port: int) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "digest.mail.SmtpEmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError("timed out"), True),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), True),
        (smtplib.SMTPDataError(451, b"4.3.0 Try again later"), True),
        (smtplib.SMTPRecipientsRefused({"a@example.org": (450, b"4.2.1 Greylisted")}), True),
        (smtplib.SMTPRecipientsRefused({"a@example.org": (550, b"5.1.1 No such user")}), False),
        (AnymailAPIError("Postmark API response 503"), True),
        (AnymailRecipientsRefused("All recipients refused"), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_send_errors_are_worth_retrying(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_retry_countdowns_grow_with_jitter_and_stay_under_the_cap(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DIGEST_RETRY_BACKOFF, settings.DIGEST_RETRY_BACKOFF_MAX = 30.0, 600.0
    for attempts, ceiling in [(1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (40, 600)]:
        waits = [retry_countdown(attempts) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), attempts
        assert len(set(waits)) > 1  # jitter
    assert settings.DIGEST_RETRY_BACKOFF_MAX * 4 <= settings.CELERY_VISIBILITY_TIMEOUT


@pytest.mark.django_db
def test_a_refused_connection_keeps_the_digests_for_a_retry(settings) -> None:  # type: ignore[no-untyped-def]
    ingest_source(str(PAGE_004))
    readers = [make_subscriber(f"r{n}@example.org", [FILTERS[n % 5]]) for n in range(4)]
    sink = SmtpSink()  # not listening yet
    use_smtp(settings, sink.port)
    results = deliver([r.pk for r in readers])
    assert [r.status for r in results] == ["retrying"] * 4
    assert {r.attempts for r in results} == {1}
    assert all(r.error.startswith("ConnectionRefusedError") for r in results)
    assert set(Digest.objects.values_list("status", flat=True)) == {Digest.PENDING}
    with sink:
        outcome = send_planned([r.digest_id for r in results if r.digest_id])
    assert sorted(outcome.sent) == sorted(r.digest_id for r in results)
    assert sorted(sink.copies_by_digest().values()) == [1] * 4
    assert set(Digest.objects.values_list("status", "attempts", "last_error")) == {
        (Digest.SENT, 2, "")
    }


@pytest.mark.django_db
def test_after_the_last_attempt_a_digest_fails_and_its_papers_wait_for_the_next(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DIGEST_MAX_ATTEMPTS = 3
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    now = timezone.now()
    sink = SmtpSink()
    use_smtp(settings, sink.port)
    [result] = deliver([ada.pk], now=now)
    papers = set(DigestItem.objects.values_list("paper_id", flat=True))
    assert result.status == "retrying" and len(papers) == 3
    assert send_planned([result.digest_id]).retry == [result.digest_id]  # attempt 2
    outcome = send_planned([result.digest_id])  # attempt 3: the last
    assert (outcome.failed, outcome.retry) == ([result.digest_id], [])
    failed = Digest.objects.get(pk=result.digest_id)
    assert (failed.status, failed.attempts) == (Digest.FAILED, 3)
    assert failed.last_error.startswith("ConnectionRefusedError")
    assert not failed.items.exists()
    # The next edition carries the papers the failed one could not.
    with sink:
        [later] = deliver([ada.pk], now=now + timedelta(days=1))
    assert later.status == "sent"
    assert set(DigestItem.objects.values_list("paper_id", flat=True)) == papers
    assert len(sink) == 1


@pytest.mark.django_db
def test_a_refused_address_fails_at_once_and_the_batch_goes_on(settings) -> None:  # type: ignore[no-untyped-def]
    ingest_source(str(PAGE_004))
    gone = make_subscriber("gone@example.org", ["mamba"])
    ada = make_subscriber("ada@example.org", ["brain"])
    with SmtpSink(refuse=("gone@example.org",)) as sink:
        use_smtp(settings, sink.port)
        results = {r.email: r for r in deliver([gone.pk, ada.pk])}
    assert results["gone@example.org"].status == "failed"
    assert "No such user" in results["gone@example.org"].error
    assert results["ada@example.org"].status == "sent"
    assert Digest.objects.get(subscriber=gone).status == Digest.FAILED
    assert [m.to for m in sink.received] == [("ada@example.org",)]


WORKER_ENV = {
    "EMAIL_BACKEND": "digest.mail.SmtpEmailBackend",
    "EMAIL_HOST": "127.0.0.1",
    "EMAIL_TIMEOUT": "1",
    "DIGEST_CHUNK_SIZE": "40",
    "DIGEST_SENDING_LEASE": "3",
    "CELERY_VISIBILITY_TIMEOUT": "8",
    "DIGEST_RETRY_BACKOFF": "0.25",
    "DIGEST_RETRY_BACKOFF_MAX": "1",
    "DIGEST_MAX_ATTEMPTS": "50",
}


def due_readers(count: int) -> list[str]:
    now = timezone.now()
    return [
        make_subscriber(
            f"reader{n:03d}@example.org",
            [FILTERS[n % 5]],
            next_digest_at=now - timedelta(minutes=1),
        ).email
        for n in range(count)
    ]


def assert_each_got_one(sink: SmtpSink, addresses: list[str]) -> None:
    received = sink.message_ids_by_recipient()
    assert sorted(received) == sorted(addresses), "a subscriber got nothing"
    stored = dict(Digest.objects.values_list("subscriber__email", "message_id"))
    assert {a: ids for a, ids in received.items()} == {a: [stored[a]] for a in addresses}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_digests_wait_for_a_mail_server_that_is_down(outbox: Path, tmp_path: Path) -> None:
    purge_broker()
    ingest_source(str(PAGE_004))
    addresses = due_readers(120)
    port = free_port()
    sink = SmtpSink(port)
    with celery_worker(outbox, log=tmp_path / "worker.log", EMAIL_PORT=str(port), **WORKER_ENV):
        broker().send_task("digest.tasks.send_due_digests")
        # Refused, again and again: every digest waits, with its error recorded.
        wait_for(
            lambda: Digest.objects.filter(status=Digest.PENDING, attempts__gte=3).count() == 120,
            timeout=60,
            what="three refused attempts of every digest",
        )
        assert not Digest.objects.exclude(status=Digest.PENDING).exists()
        assert len(sink) == 0
        with sink:  # the server is back, on the same port
            wait_for(
                lambda: Digest.objects.filter(status=Digest.SENT).count() == 120,
                timeout=60,
                what="all digests sent",
            )
            time.sleep(1.5)  # retries still scheduled find nothing left
    assert_each_got_one(sink, addresses)
    assert "ConnectionRefusedError" in (tmp_path / "worker.log").read_text()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_mail_server_that_goes_away_mid_send_loses_nothing(outbox: Path, tmp_path: Path) -> None:
    purge_broker()
    ingest_source(str(PAGE_004))
    addresses = due_readers(160)
    sink = SmtpSink(delay=0.003).start()
    try:
        env = {**WORKER_ENV, "DIGEST_CHUNK_SIZE": "100", "EMAIL_PORT": str(sink.port)}
        with celery_worker(outbox, log=tmp_path / "worker.log", **env):
            broker().send_task("digest.tasks.send_due_digests")
            deadline = time.monotonic() + 60
            while len(sink) < 50 and time.monotonic() < deadline:
                time.sleep(0.002)
            sink.stop()  # in the middle of the first chunk, connection and all
            down = len(sink)
            wait_for(
                lambda: Digest.objects.filter(status=Digest.PENDING, attempts__gte=2).exists(),
                timeout=30,
                what="a refused retry",
            )
            assert len(sink) == down
            sink.start()
            wait_for(
                lambda: Digest.objects.filter(status=Digest.SENT).count() == 160,
                timeout=60,
                what="all digests sent",
            )
            time.sleep(1.5)
    finally:
        sink.stop()
    assert down < 160
    assert_each_got_one(sink, addresses)
