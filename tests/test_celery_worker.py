"""The pipeline through a real Celery worker process and the local Redis."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from digest.models import Digest, IngestRun, Paper
from tests.support.workers import broker, celery_worker, purge_broker, wait_for

from .conftest import PAGE_004, make_subscriber

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_worker_ingests_a_page_and_sends_due_digests(outbox: Path, tmp_path: Path) -> None:
    purge_broker()
    now = timezone.now()
    ada = make_subscriber("ada@example.org", ["mamba"], next_digest_at=now - timedelta(minutes=1))
    grace = make_subscriber(
        "grace@example.org", ["vision transformer"], next_digest_at=now - timedelta(minutes=1)
    )
    make_subscriber("later@example.org", ["mamba"], next_digest_at=now + timedelta(days=1))
    app = broker()
    with celery_worker(outbox, log=tmp_path / "worker.log"):
        app.send_task("digest.tasks.ingest_page", args=[str(PAGE_004)])
        wait_for(
            lambda: IngestRun.objects.filter(status=IngestRun.OK).exists(), what="the ingest run"
        )
        assert Paper.objects.count() == 53
        app.send_task("digest.tasks.send_due_digests")
        wait_for(lambda: Digest.objects.filter(status=Digest.SENT).count() == 2, what="two digests")
    assert sorted(Digest.objects.values_list("subscriber__email", flat=True)) == [
        ada.email,
        grace.email,
    ]
    assert len(list(outbox.glob("digest-*.eml"))) == 2


def test_a_worker_sends_the_welcome_digest_once_beside_the_scheduled_one(
    outbox: Path, tmp_path: Path
) -> None:
    purge_broker()
    for n in range(6):
        title = f"Mamba state spaces {n}"
        Paper.objects.create(title=title, title_key=title.lower(), abstract="mamba", upvotes=n)
    ada = make_subscriber(
        "ada@example.org",
        ["mamba"],
        max_papers=2,
        next_digest_at=timezone.now() - timedelta(minutes=1),
    )
    app = broker()
    with celery_worker(outbox, log=tmp_path / "worker.log"):
        # The welcome task twice (a redelivery) while the beat's tick sends the scheduled one.
        app.send_task("digest.tasks.send_extra_digest", args=[ada.pk, Digest.WELCOME])
        app.send_task("digest.tasks.send_due_digests")
        app.send_task("digest.tasks.send_extra_digest", args=[ada.pk, Digest.WELCOME])
        wait_for(
            lambda: Digest.objects.filter(subscriber=ada, status=Digest.SENT).count() == 2,
            what="the welcome and the scheduled digest",
        )
    digests = {d.period: d for d in Digest.objects.filter(subscriber=ada)}
    assert set(digests) == {Digest.WELCOME, ada.period_key(timezone.now())}
    emails = sorted(outbox.glob("digest-*.eml"))
    assert [p.name for p in emails] == sorted(f"digest-{d.pk}.eml" for d in digests.values())
    papers = [set(d.items.values_list("paper_id", flat=True)) for d in digests.values()]
    # At most two papers each (planned at the same time, a paper taken by one is
    # skipped by the other), none in both.
    assert all(1 <= len(p) <= 2 for p in papers) and not papers[0] & papers[1]
