"""Exactly once through database faults: a connection lost, or a statement cancelled,
while a digest's ``sent`` mark is pending records the mark on a fresh connection and
sends nothing twice.

On PostgreSQL, with real faults: ``pg_terminate_backend`` on the sending connection (as
a failover or a restart does) and a statement timeout behind a row lock; the last test
terminates a real Celery worker's connection several times in the middle of its chunks.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.mail import EmailMessage
from django.db import connection
from django.utils import timezone

from digest.delivery.plan import plan_digest
from digest.delivery.send import send_planned, stale_digest_ids
from digest.ingest.store import ingest_source
from digest.mail import SmtpEmailBackend
from digest.models import Digest
from subscriptions.models import Subscriber
from tests.support.smtp import SmtpSink
from tests.support.workers import broker, celery_worker, purge_broker, wait_for

from .conftest import PAGE_004, make_subscriber

FILTERS = ["transformer", "model", "neural", "brain", "mamba"]

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the faults are PostgreSQL's"
)


def side_connection() -> psycopg.Connection:
    """A connection of the test's own to the test database, outside Django's."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"],
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
        autocommit=True,
    )


@pytest.fixture
def side() -> Iterator[psycopg.Connection]:
    with side_connection() as conn:
        yield conn


def terminate(side: psycopg.Connection, pids: Sequence[int]) -> None:
    """``pg_terminate_backend`` each pid and wait until its backend is gone."""
    for pid in pids:
        side.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = side.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)]
        ).fetchone()
        if alive == (0,):
            return
        time.sleep(0.01)
    raise AssertionError(f"backends {pids} still alive")


class FaultAfterSend(SmtpEmailBackend):
    """The SMTP backend, running ``fault(n)`` after the server accepted the n-th message
    (from 1) of this connection: the moment a digest's ``sent`` mark is pending."""

    def __init__(self, fault, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.fault = fault
        self.count = 0

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = super().send_messages(email_messages)
        self.count += 1
        self.fault(self.count)
        return sent


def planned_digests(n: int) -> list[Digest]:
    ingest_source(str(PAGE_004))
    now = timezone.now()
    return [
        plan_digest(make_subscriber(f"r{i}@example.org", [FILTERS[i % 5]]), now) for i in range(n)
    ]


def smtp(sink: SmtpSink, settings) -> dict[str, object]:  # type: ignore[no-untyped-def]
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", sink.port, 5
    return {"host": "127.0.0.1", "port": sink.port, "timeout": 5}


def assert_each_sent_once(sink: SmtpSink, digests: Sequence[Digest]) -> None:
    assert sorted(sink.copies_by_digest().items()) == sorted((str(d.pk), 1) for d in digests)
    rows = Counter(Digest.objects.filter(pk__in=[d.pk for d in digests]).values_list("status"))
    assert rows == Counter({(Digest.SENT,): len(digests)})


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_while_a_sent_mark_is_pending_sends_nothing_twice(
    settings,  # type: ignore[no-untyped-def]
    side: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    digests = planned_digests(8)

    def drop(n: int) -> None:
        if n in (2, 5, 8):  # the last one: the mark flushed at the end of the batch
            terminate(side, [connection.connection.info.backend_pid])

    with SmtpSink() as sink:
        backend = FaultAfterSend(drop, **smtp(sink, settings))
        outcome = send_planned([d.pk for d in digests], connection=backend)
    assert outcome.sent == [d.pk for d in digests]
    assert caplog.text.count("db_connection_lost") >= 3
    assert_each_sent_once(sink, digests)
    assert all(d.attempts == 1 for d in Digest.objects.filter(pk__in=[d.pk for d in digests]))

    # Nothing is left for the beat to send again, whatever the lease.
    settings.DIGEST_SENDING_LEASE = 0.001
    time.sleep(0.01)
    assert stale_digest_ids() == []
    with SmtpSink() as again:
        smtp(again, settings)
        assert send_planned([d.pk for d in digests]).sent == []
    assert len(again) == 0


@pytest.mark.django_db(transaction=True)
def test_a_statement_timeout_on_the_sent_mark_is_retried_and_sends_nothing_twice(
    settings,  # type: ignore[no-untyped-def]
    side: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    digests = planned_digests(5)
    ids = [d.pk for d in digests]
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 200")

    def hold_the_row(n: int) -> None:
        if n != 2:
            return
        # Another session locks the digest just sent for a second: the statement that
        # carries its mark (the next claim) waits and is cancelled by the timeout.
        side.execute("BEGIN")
        side.execute("SELECT 1 FROM digest_digest WHERE id = %s FOR UPDATE", [ids[1]])
        threading.Timer(1.0, side.execute, ["ROLLBACK"]).start()

    with SmtpSink() as sink:
        backend = FaultAfterSend(hold_the_row, **smtp(sink, settings))
        outcome = send_planned(ids, connection=backend)
    assert outcome.sent == ids
    assert "statement timeout" in caplog.text and "db_connection_lost during=claim" in caplog.text
    assert_each_sent_once(sink, digests)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_database_connection_is_terminated_mid_chunk_sends_each_digest_once(
    outbox: Path, tmp_path: Path, side: psycopg.Connection
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
        for n in range(200)
    ]
    app = broker()
    with SmtpSink(delay=0.01) as sink:
        env = {
            "EMAIL_BACKEND": "digest.mail.SmtpEmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(sink.port),
            "EMAIL_TIMEOUT": "1",
            "DIGEST_CHUNK_SIZE": "50",
            "DIGEST_SENDING_LEASE": "3",
            "DIGEST_DB_RETRY_SECONDS": "1.5",
            "CELERY_VISIBILITY_TIMEOUT": "8",
            "DIGEST_RETRY_BACKOFF": "0.2",
            "DIGEST_RETRY_BACKOFF_MAX": "1",
        }
        mine = side.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        own = connection.connection.info.backend_pid if connection.connection else 0
        with celery_worker(outbox, log=tmp_path / "worker.log", **env):
            app.send_task("digest.tasks.send_due_digests")
            terminated = 0
            for count in (30, 80, 120, 170):
                wait_for(lambda c=count: len(sink) >= c, timeout=60, what=f"{count} messages")
                # Every backend of the test database but the test's own: the worker's.
                # Between two chunks the worker may hold none: wait a little for one (near
                # the end it may have finished: then there is nothing to terminate).
                pids: list[int] = []

                def worker_backends(pids: list[int] = pids) -> bool:
                    pids[:] = [
                        pid
                        for (pid,) in side.execute(
                            "SELECT pid FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> ALL(%s)",
                            [[mine, own]],
                        ).fetchall()
                    ]
                    return bool(pids)

                deadline = time.monotonic() + 5
                while not worker_backends() and time.monotonic() < deadline:
                    time.sleep(0.05)
                terminate(side, pids)
                terminated += len(pids)
            wait_for(
                lambda: Digest.objects.filter(status=Digest.SENT).count() == 200,
                timeout=90,
                what="all 200 digests sent",
            )
            # Past the lease, the beat ticks: nothing is stale, nothing goes out again.
            time.sleep(3.5)
            app.send_task("digest.tasks.send_due_digests")
            time.sleep(2.0)
        received = sink.message_ids_by_recipient()
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert terminated >= 3 and "db_connection_lost" in log

    assert set(received) == {r.email for r in readers}, "a due subscriber got nothing"
    stored = dict(Digest.objects.values_list("subscriber__email", "message_id"))
    assert {address: ids for address, ids in received.items()} == {
        address: [stored[address]] for address in received
    }, "a subscriber got two messages"
    assert not Digest.objects.exclude(status=Digest.SENT).exists()
    assert not Subscriber.objects.filter(next_digest_at__lte=now).exists()
