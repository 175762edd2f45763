"""Embeddings and profiles through a real Celery worker process and the local Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import transaction

from digest.models import Feedback, IngestRun, Paper, PaperEmbedding
from digest.relevance.embed import MODEL_NAME
from subscriptions.models import Subscriber
from tests.support import TEST_BROKER_URL
from tests.support.workers import broker, celery_worker, purge_broker, wait_for

from .conftest import PAGE_004, make_subscriber

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_worker_embeds_an_ingested_page_and_rebuilds_a_profile_after_a_vote(
    outbox: Path, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    from digest.celery import app as product_app

    purge_broker()
    app = broker()
    with celery_worker(outbox, log=tmp_path / "worker.log", HF_HUB_OFFLINE="1"):
        app.send_task("digest.tasks.ingest_page", args=[str(PAGE_004)])
        wait_for(
            lambda: IngestRun.objects.filter(status=IngestRun.OK).exists(), what="the ingest run"
        )
        wait_for(
            lambda: PaperEmbedding.objects.filter(model=MODEL_NAME).count() == 53,
            timeout=180,
            what="the embeddings of the page's 53 papers",
        )
        assert Paper.objects.count() == 53
        ada = make_subscriber("ada@example.org", ["mamba"])
        # The vote's signal enqueues the rebuild on the worker's broker, as a web process
        # would, not in this process (the suite runs the product's tasks eagerly).
        saved = product_app.conf.task_always_eager, product_app.conf.broker_url
        product_app.conf.task_always_eager, product_app.conf.broker_url = False, TEST_BROKER_URL
        product_app.close()  # drop a pool connected elsewhere; the next send opens one
        try:
            with transaction.atomic():
                Feedback.objects.create(
                    subscriber=ada, paper=Paper.objects.order_by("id").first(), vote=1
                )
        finally:
            product_app.conf.task_always_eager, product_app.conf.broker_url = saved
            product_app.close()
        wait_for(
            lambda: Subscriber.objects.get(pk=ada.pk).profile_updated_at is not None,
            what="the profile rebuilt by the worker",
        )
    assert len(Subscriber.objects.get(pk=ada.pk).profile) == 4 * 384
