"""Bounded storage: old digests' papers are pruned on a schedule, keeping what "never
send a paper twice" and the archive need."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.delivery.retention import prune_digest_items
from digest.models import Digest, DigestItem, Paper
from digest.tasks import prune_digest_items as prune_task
from subscriptions.tokens import digest_web_url

from .conftest import make_subscriber

pytestmark = pytest.mark.django_db


def paper(n: int, seen_days_ago: float) -> Paper:
    return Paper.objects.create(
        arxiv_id=f"2601.{n:05d}",
        title=f"Sparse mixture of experts, part {n}",
        abstract="About experts.",
        last_seen_at=timezone.now() - timedelta(days=seen_days_ago),
    )


def sent_digest(subscriber, days_ago: float, papers: list[Paper]) -> Digest:  # type: ignore[no-untyped-def]
    at = timezone.now() - timedelta(days=days_ago)
    digest = Digest.objects.create(
        subscriber=subscriber,
        period=f"old-{days_ago}",
        status=Digest.SENT,
        created_at=at,
        planned_at=at,
        sent_at=at,
    )
    DigestItem.objects.bulk_create(
        DigestItem(digest=digest, subscriber=subscriber, paper=p, rank=r, reason="r")
        for r, p in enumerate(papers, 1)
    )
    return digest


def test_old_digests_lose_their_papers_but_never_a_paper_still_on_the_pages(
    settings,  # type: ignore[no-untyped-def]
    outbox: Path,
) -> None:
    settings.DIGEST_ARCHIVE_DAYS = 90
    ada = make_subscriber("ada@example.org", ["experts"])
    gone, trending, recent = paper(1, 100), paper(2, 1), paper(3, 20)
    old = sent_digest(ada, 120, [gone, trending])  # past the archive
    kept = sent_digest(ada, 30, [recent])  # within it
    client = Client()

    assert prune_task.delay().get() == 1
    # The paper nobody will see again went; the one still on the pages stays, so it is
    # not sent again.
    assert list(DigestItem.objects.filter(digest=old).values_list("paper_id", flat=True)) == [
        trending.pk
    ]
    assert DigestItem.objects.filter(digest=kept).count() == 1
    assert prune_digest_items() == 0  # twice is harmless
    [result] = deliver([ada.pk], force=True)
    assert result.status == "empty"  # "experts" matches only papers already sent

    # The archive shows what it keeps, and says the rest is gone.
    assert client.get(digest_web_url(kept)).status_code == 200
    assert client.get(digest_web_url(old)).status_code == 404
    ada.reset_feed_secret()
    feed = client.get(f"/feed/{ada.feed_secret}/").content.decode()
    assert kept.period in feed and old.period not in feed


def test_nothing_in_the_archive_window_is_pruned(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DIGEST_ARCHIVE_DAYS = 90
    ada = make_subscriber("ada@example.org", ["experts"])
    papers = [paper(n, 60) for n in range(10)]
    sent_digest(ada, 80, papers)
    assert prune_digest_items() == 0
    with time_machine.travel(timezone.now() + timedelta(days=11)):
        assert prune_digest_items() == 10
    assert not DigestItem.objects.exists() and Digest.objects.count() == 1
