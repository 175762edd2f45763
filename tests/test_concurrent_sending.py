"""A slow mail provider does not throttle sending: a worker keeps
``DIGEST_SEND_CONCURRENCY`` messages in flight, each digest still claimed before it is
sent and marked after, exactly once."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from digest.delivery.plan import plan_digests
from digest.delivery.send import send_planned
from digest.ingest.store import ingest_source
from digest.models import Digest
from subscriptions.models import Subscriber
from tests.support.smtp import SmtpSink
from tests.support.workers import broker, celery_worker, purge_broker, wait_for

from .conftest import PAGE_004, make_subscriber

FILTERS = ["transformer", "model", "neural", "brain", "mamba"]
LATENCY = 0.2  # seconds the server takes to accept each message, as a slow ESP does


def planned(n: int) -> list[int]:
    ingest_source(str(PAGE_004))
    readers = [make_subscriber(f"r{i:03d}@example.org", [FILTERS[i % 5]]) for i in range(n)]
    return sorted(d.pk for d in plan_digests(readers, timezone.now()).values())


@pytest.mark.django_db
def test_a_slow_mail_server_does_not_throttle_sending(settings) -> None:  # type: ignore[no-untyped-def]
    ids = planned(64)
    settings.EMAIL_BACKEND = "digest.mail.SmtpEmailBackend"
    settings.DIGEST_SEND_CONCURRENCY = 16
    with SmtpSink(delay=LATENCY) as sink:
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", sink.port, 5
        started = time.monotonic()
        outcome = send_planned(ids)
        elapsed = time.monotonic() - started
    one_at_a_time = len(ids) * LATENCY
    print(f"{len(ids)} digests at {LATENCY * 1000:.0f} ms a message: {elapsed:.2f} s")
    assert outcome.sent == ids
    assert elapsed < one_at_a_time / 3, (elapsed, one_at_a_time)
    assert sorted(sink.copies_by_digest().items()) == sorted((str(pk), 1) for pk in ids)
    assert Digest.objects.filter(pk__in=ids, status=Digest.SENT).count() == len(ids)
    assert Digest.objects.filter(pk__in=ids, attempts=1).count() == len(ids)


@pytest.mark.django_db
def test_refused_and_failing_sends_in_flight_are_settled_one_by_one(settings) -> None:  # type: ignore[no-untyped-def]
    ids = planned(20)
    refused = {f"r{i:03d}@example.org" for i in (3, 11)}
    settings.EMAIL_BACKEND = "digest.mail.SmtpEmailBackend"
    with SmtpSink(delay=0.02, refuse=tuple(refused)) as sink:
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", sink.port, 5
        outcome = send_planned(ids, concurrency=8)
    statuses = dict(Digest.objects.filter(pk__in=ids).values_list("subscriber__email", "status"))
    assert {a for a, s in statuses.items() if s == Digest.FAILED} == refused
    assert {a for a, s in statuses.items() if s == Digest.SENT} == set(statuses) - refused
    assert len(outcome.sent) == 18 and len(outcome.failed) == 2 and not outcome.retry
    assert len(sink) == 18


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_with_many_sends_in_flight_loses_none(outbox: Path, tmp_path: Path) -> None:
    purge_broker()
    ingest_source(str(PAGE_004))
    now = timezone.now()
    readers = [
        make_subscriber(
            f"reader{n:03d}@example.org",
            [FILTERS[n % 5]],
            next_digest_at=now - timedelta(minutes=1),
        )
        for n in range(200)
    ]
    app = broker()
    concurrency = 8
    with SmtpSink(delay=0.05) as sink:
        env = {
            "EMAIL_BACKEND": "digest.mail.SmtpEmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(sink.port),
            "EMAIL_TIMEOUT": "1",
            "DIGEST_CHUNK_SIZE": "100",
            "DIGEST_SENDING_LEASE": "3",
            "CELERY_VISIBILITY_TIMEOUT": "8",
            "DIGEST_RETRY_BACKOFF": "0.2",
            "DIGEST_RETRY_BACKOFF_MAX": "1",
            "DIGEST_SEND_CONCURRENCY": str(concurrency),
        }
        with celery_worker(outbox, log=tmp_path / "worker-1.log", **env) as first:
            app.send_task("digest.tasks.send_due_digests")
            wait_for(lambda: len(sink) >= 60, timeout=60, what="60 messages")
            time.sleep(random.uniform(0, 0.05))
            first.kill()
            first.wait()
        killed_at, at_kill = time.monotonic(), len(sink)
        assert at_kill < 200, "the worker finished before it was killed"
        time.sleep(max(0.0, killed_at + 8.5 - time.monotonic()))
        with celery_worker(outbox, log=tmp_path / "worker-2.log", **env):
            app.send_task("digest.tasks.send_due_digests")
            wait_for(
                lambda: Digest.objects.filter(status=Digest.SENT).count() == 200,
                timeout=90,
                what="all 200 digests sent",
            )
            time.sleep(0.5)
        received = sink.message_ids_by_recipient()

    assert set(received) == {r.email for r in readers}, "a due subscriber got nothing"
    stored = dict(Digest.objects.values_list("subscriber__email", "message_id"))
    assert all(set(ids) == {stored[address]} for address, ids in received.items())
    copies = Counter({address: len(ids) for address, ids in received.items()})
    doubled = [address for address, n in copies.items() if n > 1]
    print(f"killed after {at_kill} messages; {len(doubled)} sent twice")
    # At most the messages in flight when the worker died (accepted by the server, not
    # yet marked) went out twice, with the same Message-ID.
    assert len(doubled) <= concurrency and max(copies.values()) <= 2, copies.most_common(3)
    assert not Digest.objects.exclude(status=Digest.SENT).exists()
    assert not Subscriber.objects.filter(next_digest_at__lte=now).exists()
