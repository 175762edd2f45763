"""Embeddings and profiles through a real Celery worker process and the local Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from digest.models import IngestRun, Paper, PaperEmbedding
from digest.relevance.embed import MODEL_NAME
from subscriptions.models import Subscriber
from tests.support import ROOT
from tests.support.workers import broker, celery_worker, purge_broker, wait_for, worker_env

from .conftest import PAGE_004, make_subscriber

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_worker_embeds_an_ingested_page_and_rebuilds_a_profile_after_a_vote(
    outbox: Path, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
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
        # The vote comes from another process configured as a web process is (its tasks
        # go to the broker; this suite runs the product's tasks eagerly): the model's
        # signal enqueues the rebuild there, and the worker runs it.
        paper = Paper.objects.order_by("id").first()
        assert paper is not None
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                "from digest.models import Feedback; "
                f"Feedback.objects.create(subscriber_id={ada.pk}, paper_id={paper.pk}, vote=1)",
            ],
            cwd=ROOT,
            env=worker_env(outbox),
            check=True,
            timeout=120,
        )
        wait_for(
            lambda: Subscriber.objects.get(pk=ada.pk).profile_updated_at is not None,
            what="the profile rebuilt by the worker",
        )
    assert len(Subscriber.objects.get(pk=ada.pk).profile) == 4 * 384
