"""Bounded storage: the papers of old digests are pruned on a schedule.

:class:`~digest.models.DigestItem` grows by about ten rows per subscriber per edition.
Two things read them: "never send a paper twice" (planning skips a subscriber's papers
already sent among the edition's candidates, papers seen on the pages within the widest
window, :func:`subscriptions.schedule.window`: eight days) and the archive (the "view in
browser" page and the Atom feed). An item is kept while its digest was created within
``DIGEST_ARCHIVE_DAYS``, or while its paper is still a candidate (seen within the
window); any other is deleted. The :class:`~digest.models.Digest` rows stay (one per
edition: the history, the counts).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from digest.models import Digest, DigestItem, archive_cutoff
from subscriptions.schedule import WEEKLY, window

log = logging.getLogger(__name__)

__all__ = ["BATCH", "prune_digest_items"]

BATCH = 10_000
"""Items deleted per statement: short statements, short row locks."""


def prune_digest_items(now: datetime | None = None) -> int:
    """Delete the items of digests created before :func:`~digest.models.archive_cutoff`
    whose paper was last seen before the widest candidate window, ``BATCH`` rows a
    statement; returns how many. Safe to run at any time and twice: planning reads only
    items of candidate papers, which are never deleted."""
    now = now or timezone.now()
    # Digest ids grow with created_at: "created before the cutoff" is "id below the first
    # digest created since", which the items' digest_id index answers.
    first_kept = (
        Digest.objects.filter(created_at__gte=archive_cutoff(now))
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    old = DigestItem.objects.filter(paper__last_seen_at__lt=now - window(WEEKLY))
    if first_kept is not None:  # else every digest is older than the cutoff
        old = old.filter(digest_id__lt=first_kept)
    deleted = 0
    while True:
        ids = list(old.order_by().values_list("pk", flat=True)[:BATCH])
        if not ids:
            break
        deleted += DigestItem.objects.filter(pk__in=ids).delete()[0]
    log.info("digest_items_pruned count=%s", deleted)
    return deleted
