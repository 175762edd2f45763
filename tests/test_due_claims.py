"""The beat's tick claims the due subscribers it enqueues, as it claims due sources: a
backlog longer than one tick is enqueued once, and a lost chunk is picked up again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from digest import tasks
from digest.delivery.pipeline import deliver
from digest.delivery.plan import plan_digest
from digest.ingest.store import ingest_source
from digest.models import Digest
from subscriptions.models import Subscriber

from .conftest import PAGE_004, make_subscriber


class Enqueued:
    """What a tick would have put on the broker: the id lists of each task, by task."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.chunks: list[list[int]] = []
        self.stale: list[list[int]] = []
        monkeypatch.setattr(tasks.send_digests, "delay_on_commit", self.chunks.append)
        monkeypatch.setattr(tasks.send_planned_digests, "delay_on_commit", self.stale.append)

    def take(self) -> tuple[list[list[int]], list[list[int]]]:
        chunks, stale = list(self.chunks), list(self.stale)
        self.chunks.clear()
        self.stale.clear()
        return chunks, stale


@pytest.mark.django_db
def test_a_backlog_longer_than_a_tick_is_enqueued_once_and_a_lost_chunk_again(
    settings,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    outbox: Path,
) -> None:
    settings.DIGEST_CHUNK_SIZE = 3
    ingest_source(str(PAGE_004))
    now = timezone.now()
    due = [
        make_subscriber(f"r{n}@example.org", ["model"], next_digest_at=now - timedelta(minutes=n))
        for n in range(7)
    ]
    make_subscriber("later@example.org", ["model"], next_digest_at=now + timedelta(hours=3))
    enqueued = Enqueued(monkeypatch)

    assert tasks.send_due_digests() == 7
    chunks, _ = enqueued.take()
    assert [len(c) for c in chunks] == [3, 3, 1]
    # Oldest due first, each subscriber in one chunk.
    assert [pk for c in chunks for pk in c] == [s.pk for s in reversed(due)]

    # The chunks wait in the queue behind a backlog: the next ticks enqueue nothing.
    with time_machine.travel(now + timedelta(minutes=5)):
        assert tasks.send_due_digests() == 0
    assert enqueued.take() == ([], [])

    # The chunks were lost (a broker flushed): once the claim runs out, they come back.
    with time_machine.travel(now + timedelta(seconds=settings.DIGEST_DUE_LEASE + 1)):
        assert tasks.send_due_digests() == 7
        chunks, _ = enqueued.take()
        for chunk in chunks:
            deliver(chunk)
        assert tasks.send_due_digests() == 0
    assert Digest.objects.filter(status=Digest.SENT).count() == 7
    assert len(list(outbox.glob("*.eml"))) == 7


@pytest.mark.django_db
def test_a_digest_nobody_looks_after_is_handed_back_once_per_lease(
    settings,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest_source(str(PAGE_004))
    now = timezone.now()
    ada = make_subscriber("ada@example.org", ["model"], next_digest_at=now + timedelta(days=1))
    digest = plan_digest(ada, now)  # planned; its task was lost
    enqueued = Enqueued(monkeypatch)
    lease = timedelta(seconds=settings.DIGEST_SENDING_LEASE)

    with time_machine.travel(now + lease + timedelta(seconds=1)):
        tasks.send_due_digests()
        assert enqueued.take() == ([], [[digest.pk]])
        tasks.send_due_digests()
        assert enqueued.take() == ([], [])
    # Its worker died while sending: handed back once, as pending.
    Digest.objects.filter(pk=digest.pk).update(status=Digest.SENDING)
    with time_machine.travel(now + 2 * lease + timedelta(seconds=2)):
        tasks.send_due_digests()
        assert enqueued.take() == ([], [[digest.pk]])
        tasks.send_due_digests()
        assert enqueued.take() == ([], [])
    assert Digest.objects.get(pk=digest.pk).status == Digest.PENDING


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks of PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_subscriber_whose_digest_row_another_transaction_holds_stays_due(
    monkeypatch: pytest.MonkeyPatch, outbox: Path
) -> None:
    ingest_source(str(PAGE_004))
    now = timezone.now()
    ada = make_subscriber("ada@example.org", ["model"], next_digest_at=now - timedelta(minutes=1))
    make_subscriber("grace@example.org", ["model"], next_digest_at=now)
    # The row of Ada's edition exists and a moderator's preview holds it, planning it in
    # a transaction it will roll back.
    row = Digest.objects.create(subscriber=ada, period=ada.period_key(now))
    enqueued = Enqueued(monkeypatch)
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    ) as preview:
        preview.execute("SELECT 1 FROM digest_digest WHERE id = %s FOR UPDATE", [row.pk])
        assert tasks.send_due_digests() == 2
        [chunk], _ = enqueued.take()
        results = {r.email: r.status for r in deliver(chunk, now=now)}
        preview.rollback()
    assert results == {"ada@example.org": "already", "grace@example.org": "sent"}
    ada.refresh_from_db()
    # Not planned, so not moved on: Ada is due at the very next tick, not a day later.
    assert ada.next_digest_at <= now and ada.claimed_until is None
    assert tasks.send_due_digests() == 1
    [chunk], _ = enqueued.take()
    assert chunk == [ada.pk]
    assert [r.status for r in deliver(chunk, now=now)] == ["sent"]
    assert Subscriber.objects.filter(next_digest_at__lte=now).count() == 0
