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
