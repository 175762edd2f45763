"""Each subscriber's learned profile: a Rocchio centroid over paper embeddings.

The rule (docs/relevance.md; Rocchio, *Relevance feedback in information retrieval*,
1971, as in Manning et al., *Introduction to Information Retrieval*, §9.1.1)::

    u = normalise(ALPHA · mean(liked) − BETA · mean(disliked))   once they have voted
    u = normalise(mean(matched))                                 before any vote

``liked`` are the papers voted "more like this" or picked on the settings page,
``disliked`` those voted "less like this", ``matched`` the latest :data:`IMPLICIT_PAPERS`
papers the subscriber's filters and topics brought them (what they asked for, the only
evidence before a vote; once they vote, their votes say it better). A term with no
papers is left out; with no papers at all there is no profile.

Stored in ``Subscriber.profile`` as :data:`~digest.relevance.embed.DIMENSIONS` float32
values (1,536 bytes), with ``profile_updated_at``. Rebuilt when the subscriber's feedback
changes (:mod:`digest.relevance.signals` enqueues :func:`digest.tasks.rebuild_profile`)
and by ``manage.py rebuild_profiles``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.utils import timezone

from digest.relevance.embed import load_vectors
from digest.relevance.vectors import Matrix, normalise, to_bytes

__all__ = ["ALPHA", "BETA", "IMPLICIT_PAPERS", "Evidence", "centroid", "rebuild_profile"]

ALPHA, BETA = 1.0, 0.5
IMPLICIT_PAPERS = 50


@dataclass(frozen=True)
class Evidence:
    """What a profile is built from: ``(k, DIMENSIONS)`` matrices of unit rows."""

    liked: Matrix
    disliked: Matrix
    matched: Matrix


def centroid(evidence: Evidence) -> Matrix | None:
    """The profile ``u`` of the module's rule, a unit ``(d,)`` vector (``d`` the width of
    the evidence's rows), or None when there is no evidence (or it cancels out exactly)."""
    width = max(evidence.liked.shape[1], evidence.disliked.shape[1], evidence.matched.shape[1])
    total = np.zeros(width, dtype=np.float32)
    voted = len(evidence.liked) or len(evidence.disliked)
    terms = (
        ((ALPHA, evidence.liked), (-BETA, evidence.disliked))
        if voted
        else ((1.0, evidence.matched),)
    )
    for weight, rows in terms:
        if len(rows):
            total += weight * rows.mean(axis=0)
    if not np.any(total):
        return None
    return normalise(total)


def evidence_of(subscriber_id: int) -> Evidence:
    """The subscriber's votes and the latest papers their digests carried, as vectors
    (papers without an embedding are left out)."""
    from digest.models import DigestItem, Feedback

    votes = dict(Feedback.objects.filter(subscriber_id=subscriber_id).values_list("paper", "vote"))
    matched = [
        pk
        for pk in DigestItem.objects.filter(subscriber_id=subscriber_id)
        .order_by("-id")
        .values_list("paper_id", flat=True)[: IMPLICIT_PAPERS * 2]
        if pk not in votes
    ][:IMPLICIT_PAPERS]
    ids, vectors = load_vectors(list(votes) + matched)
    row = {pk: i for i, pk in enumerate(ids)}

    def rows(pks: list[int]) -> Matrix:
        return vectors[[row[pk] for pk in pks if pk in row]]

    return Evidence(
        liked=rows([pk for pk, vote in votes.items() if vote > 0]),
        disliked=rows([pk for pk, vote in votes.items() if vote < 0]),
        matched=rows(matched),
    )


def rebuild_profile(subscriber_id: int) -> bool:
    """Compute and store the subscriber's profile now (empty bytes when there is no
    evidence). Idempotent. Returns False when the subscriber no longer exists."""
    from subscriptions.models import Subscriber

    vector = centroid(evidence_of(subscriber_id))
    updated = Subscriber.objects.filter(pk=subscriber_id).update(
        profile=b"" if vector is None else to_bytes(vector), profile_updated_at=timezone.now()
    )
    return bool(updated)
