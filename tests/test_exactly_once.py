"""Exactly once: a digest is claimed before it is sent, and a killed worker loses none.

The last test runs real Celery worker processes against the local Redis and sends a few
hundred digests to an SMTP server on loopback, killing the worker (SIGKILL) halfway.
"""

from __future__ import annotations

import email
import random
import re
import time
from collections import Counter
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
from django.core.mail import get_connection
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.delivery.plan import plan_digest
from digest.delivery.send import send_digest, send_planned
from digest.ingest.store import ingest_source
from digest.models import Digest
from subscriptions.models import Subscriber
from tests.support.smtp import SmtpSink
from tests.support.workers import broker, celery_worker, purge_broker, wait_for

from .conftest import PAGE_004, make_subscriber

# Filters that each match at least three papers of PAGE_004, so no digest is empty.
FILTERS = ["transformer", "model", "neural", "brain", "mamba"]


def read(path: Path) -> str:
    return path.read_text(errors="replace")


def unfinished_task(log: Path) -> str:
    """The id of the task a worker received and never finished."""
    text = read(log)
    received = re.findall(r"Task digest\.tasks\.send_digests\[([0-9a-f-]+)\] received", text)
    unfinished = [t for t in received if f"[{t}] succeeded" not in text]
    assert len(unfinished) == 1, unfinished
    return unfinished[0]


def smtp_settings(settings, sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "digest.mail.SmtpEmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", sink.port, 5


@pytest.mark.django_db
def test_the_message_id_is_chosen_when_the_digest_is_planned(settings) -> None:  # type: ignore[no-untyped-def]
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    digest = plan_digest(ada, timezone.now())
    assert digest.status == Digest.PENDING and digest.planned_at is not None
    assert digest.message_id.startswith("<") and digest.message_id.endswith("@papers.example.org>")
    # Planning again in the same period changes nothing, Message-ID included.
    again = plan_digest(ada, timezone.now())
    assert (again.pk, again.message_id, again.planned_at) == (
        digest.pk,
        digest.message_id,
        digest.planned_at,
    )


@pytest.mark.django_db
def test_two_senders_of_one_digest_send_one_message(settings) -> None:  # type: ignore[no-untyped-def]
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    digest = plan_digest(ada, timezone.now())
    with SmtpSink() as sink:
        smtp_settings(settings, sink)
        with get_connection() as first, get_connection() as second:
            stale_copy = Digest.objects.get(pk=digest.pk)
            assert send_digest(digest, first) is True
            assert send_digest(stale_copy, second) is False
    assert len(sink) == 1
    assert sink.received[0].message_id == digest.message_id
    assert Digest.objects.get(pk=digest.pk).status == Digest.SENT


@pytest.mark.django_db
def test_a_digest_left_sending_past_the_lease_is_sent_again_with_its_message_id(
    settings,  # type: ignore[no-untyped-def]
) -> None:
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    digest = plan_digest(ada, timezone.now())
    # A worker claimed it and died: the row says "sending", nothing was recorded as sent.
    Digest.objects.filter(pk=digest.pk).update(
        status=Digest.SENDING, attempts=1, attempted_at=timezone.now()
    )
    with SmtpSink() as sink:
        smtp_settings(settings, sink)
        assert send_planned([digest.pk]).already == [digest.pk]  # its worker may be alive
        assert len(sink) == 0
        Digest.objects.filter(pk=digest.pk).update(
            attempted_at=timezone.now() - timedelta(seconds=settings.DIGEST_SENDING_LEASE + 1)
        )
        assert send_planned([digest.pk]).sent == [digest.pk]
    [message] = sink.received
    assert message.message_id == digest.message_id
    digest.refresh_from_db()
    assert (digest.status, digest.attempts) == (Digest.SENT, 2)


@pytest.mark.django_db
@pytest.mark.parametrize("vendor", ["postgresql", "other"])
def test_each_sent_mark_commits_with_the_next_claim_or_at_the_end(
    settings,
    monkeypatch,
    vendor: str,  # type: ignore[no-untyped-def]
) -> None:
    from django.db import connection

    if vendor == "other":  # the two-statement transaction other databases run
        monkeypatch.setattr(connection, "vendor", "sqlite")
    ingest_source(str(PAGE_004))
    now = timezone.now()
    digests = [
        plan_digest(make_subscriber(f"r{n}@example.org", [FILTERS[n % 5]]), now) for n in range(4)
    ]
    ids = [d.pk for d in digests]
    # Another live worker holds the third: its claim fails, the second's mark still lands.
    Digest.objects.filter(pk=ids[2]).update(status=Digest.SENDING, attempted_at=timezone.now())
    with SmtpSink() as sink:
        smtp_settings(settings, sink)
        outcome = send_planned(ids)
    assert (outcome.sent, outcome.already) == ([ids[0], ids[1], ids[3]], [ids[2]])
    rows = dict(Digest.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert rows == {
        ids[0]: Digest.SENT,
        ids[1]: Digest.SENT,
        ids[2]: Digest.SENDING,
        ids[3]: Digest.SENT,  # the last one, marked at the end of the batch
    }
    assert all(
        d.sent_at is not None and d.attempts == 1
        for d in Digest.objects.filter(pk__in=[ids[0], ids[1], ids[3]])
    )
    assert sorted(sink.copies_by_digest()) == sorted(str(pk) for pk in outcome.sent)


@pytest.mark.django_db
def test_a_failed_send_keeps_the_previous_digests_sent_mark(settings) -> None:  # type: ignore[no-untyped-def]
    ingest_source(str(PAGE_004))
    now = timezone.now()
    first, second = (
        plan_digest(make_subscriber(address, ["mamba"]), now)
        for address in ("ada@example.org", "gone@example.org")
    )
    with SmtpSink(refuse=("gone@example.org",)) as sink:
        smtp_settings(settings, sink)
        outcome = send_planned([first.pk, second.pk])
    assert (outcome.sent, outcome.failed) == ([first.pk], [second.pk])
    assert Digest.objects.get(pk=first.pk).status == Digest.SENT
    assert Digest.objects.get(pk=second.pk).status == Digest.FAILED
    assert len(sink) == 1


@pytest.mark.django_db
def test_an_interrupted_run_is_finished_by_running_it_again(settings) -> None:  # type: ignore[no-untyped-def]
    ingest_source(str(PAGE_004))
    now = timezone.now()
    readers = [make_subscriber(f"r{n}@example.org", [FILTERS[n % 5]]) for n in range(6)]
    ids = [s.pk for s in readers]
    # The first run planned every digest and moved the schedules, then died before sending.
    for subscriber in readers:
        plan_digest(subscriber, now)
    Subscriber.objects.filter(pk__in=ids).update(next_digest_at=now + timedelta(days=1))
    with SmtpSink() as sink:
        smtp_settings(settings, sink)
        results = deliver(ids, now=now)
        assert sorted(r.status for r in results) == ["sent"] * 6
        assert {r.status for r in deliver(ids, now=now)} == {"skipped"}
    assert sorted(sink.copies_by_digest().values()) == [1] * 6


@pytest.mark.django_db
def test_an_empty_edition_sends_nothing_unless_asked(settings, outbox: Path) -> None:  # type: ignore[no-untyped-def]
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["protein folding"])
    grace = make_subscriber("grace@example.org", ["protein folding"])
    [result] = deliver([ada.pk])
    assert result.status == "empty" and not list(outbox.glob("*.eml"))

    settings.DIGEST_SEND_EMPTY = True
    [result] = deliver([grace.pk])
    assert result.status == "sent"
    eml = email.message_from_bytes(
        (outbox / f"digest-{result.digest_id}.eml").read_bytes(), policy=policy.default
    )
    assert eml["Subject"].startswith("No new papers matched your filters")
    assert eml["X-Email-Kind"] == "nothing"
    assert eml["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = eml.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = eml.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "No new paper matched your filters" in text and "Unsubscribe: https://" in text
    assert "No new paper matched your filters" in html and "Unsubscribe</a>" in html


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_loses_no_digest_and_doubles_none(
    outbox: Path, tmp_path: Path
) -> None:
    purge_broker()
    ingest_source(str(PAGE_004))
    now = timezone.now()
    readers = [
        make_subscriber(
            f"reader{n:03d}@example.org",
            [FILTERS[n % 5]],
            next_digest_at=now - timedelta(minutes=1),
        )
        for n in range(300)
    ]
    make_subscriber("later@example.org", ["model"], next_digest_at=now + timedelta(hours=2))
    make_subscriber("paused@example.org", ["model"], paused_at=now)
    app = broker()
    with SmtpSink(delay=0.004) as sink:
        env = {
            "EMAIL_BACKEND": "digest.mail.SmtpEmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(sink.port),
            "EMAIL_TIMEOUT": "1",
            "DIGEST_CHUNK_SIZE": "50",
            "DIGEST_SENDING_LEASE": "3",
            "CELERY_VISIBILITY_TIMEOUT": "8",
            "DIGEST_RETRY_BACKOFF": "0.2",
            "DIGEST_RETRY_BACKOFF_MAX": "1",
            # One message in flight: the window this test bounds is one message per
            # killed worker (test_concurrent_sending.py kills one with many in flight).
            "DIGEST_SEND_CONCURRENCY": "1",
        }
        with celery_worker(outbox, log=tmp_path / "worker-1.log", **env) as first:
            app.send_task("digest.tasks.send_due_digests")
            # Halfway through the third chunk of 50.
            wait_for(lambda: len(sink) >= 120, timeout=60, what="120 messages")
            time.sleep(random.uniform(0, 0.01))  # anywhere in a message's send
            first.kill()
            first.wait()
        at_kill = len(sink)
        assert at_kill < 300, "the worker finished before it was killed"
        assert Digest.objects.filter(status=Digest.SENT).count() < 300

        killed_at = time.monotonic()
        killed = unfinished_task(tmp_path / "worker-1.log")
        # Redis hands the killed worker's unacknowledged task out again once the
        # visibility timeout has passed; a worker starting then picks it up at once.
        time.sleep(max(0.0, killed_at + 8.5 - time.monotonic()))
        with celery_worker(outbox, log=tmp_path / "worker-2.log", **env):
            app.send_task("digest.tasks.send_due_digests")  # and the beat ticks
            wait_for(
                lambda: Digest.objects.filter(status=Digest.SENT).count() == 300,
                timeout=90,
                what="all 300 digests sent",
            )
            wait_for(
                lambda: f"send_digests[{killed}] succeeded" in read(tmp_path / "worker-2.log"),
                timeout=30,
                what="the killed task to run again",
            )
            time.sleep(0.5)  # anything still in flight arrives
        received = sink.message_ids_by_recipient()

    assert set(received) == {r.email for r in readers}, "a due subscriber got nothing"
    # Each subscriber got one message: one Message-ID, the one stored on their digest.
    stored = dict(Digest.objects.values_list("subscriber__email", "message_id"))
    assert {address: set(ids) for address, ids in received.items()} == {
        address: {stored[address]} for address in received
    }
    copies = Counter({address: len(ids) for address, ids in received.items()})
    doubled = [address for address, n in copies.items() if n > 1]
    # The one message in flight when the worker died may have been accepted by the server
    # before the "sent" UPDATE committed; it is sent again with the same Message-ID.
    assert len(doubled) <= 1 and max(copies.values()) <= 2, copies.most_common(3)
    if doubled:
        assert Digest.objects.get(subscriber__email=doubled[0]).attempts == 2
    assert not Digest.objects.exclude(status=Digest.SENT).exists()
    assert Digest.objects.filter(attempts__gt=1).count() <= 1
