"""How much a paper is trending: one formula, higher is better (only its order within an
edition matters)::

    trend = ln(1 + upvotes) + 2 · ln(1 + gained) − age_days / 7

``upvotes`` is the count last seen, ``gained`` the upvotes won between the paper's last
two sightings (:func:`upvote_growth`), ``age_days`` the days since it was published (or
first seen, when the page gave no date). So a week of age costs as much as e ≈ 2.7
times fewer upvotes, and a paper gaining votes now climbs.

Papers Hugging Face never listed (seen only on arXiv sources, ``Paper.origins``) have no
upvotes and gain none, so the same formula falls back to recency: their trend is
``−age_days / 7``, the newest first (``age_days`` counts from the first version's date
in the API and OAI-PMH, from the announcement day in the RSS feed). Any upvote lifts a
listed paper above an unlisted one of the same age, and an edition of a thousand
announced papers still ranks the few trending ones first among equal matches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime

from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from digest.models import Sighting

__all__ = ["trend_score", "upvote_growth"]


def trend_score(upvotes: int, gained: int, published: date | None, now: datetime) -> float:
    """The trend of a paper (see the module docstring). ``published`` is the publication
    date, or the first-seen date when unknown; a date in the future counts as today."""
    age_days = max((now.date() - published).days, 0) if published else 0
    return math.log1p(max(upvotes, 0)) + 2 * math.log1p(max(gained, 0)) - age_days / 7


def upvote_growth(paper_ids: Iterable[int], *, since: datetime | None = None) -> dict[int, int]:
    """Upvotes each paper gained, by paper id, for ranking what is trending.

    Without ``since``: the difference between the paper's latest two sightings that show
    a count (a sighting from a page that shows none, like the saved text pages for a
    paper without votes, is skipped). With ``since`` (an aware datetime): the latest
    count minus the count at ``since``, i.e. of its last sighting at or before
    ``since``, or of its first one after when it was first seen later.

    Every id asked for is in the result; a paper with fewer than two counted sightings
    gained 0. The difference may be negative (votes withdrawn). Runs two to four
    queries whatever the number of papers.
    """
    ids = list(set(paper_ids))
    growth = dict.fromkeys(ids, 0)
    if not ids:
        return growth
    counted = Sighting.objects.filter(paper_id__any=ids, upvotes__isnull=False)

    def ranked(queryset: QuerySet[Sighting], *, newest_first: bool) -> QuerySet[Sighting]:
        if newest_first:
            order = [F("seen_at").desc(), F("id").desc()]
        else:
            order = [F("seen_at").asc(), F("id").asc()]
        return queryset.annotate(
            rank=Window(RowNumber(), partition_by=[F("paper_id")], order_by=order)
        )

    latest: dict[int, int] = {}
    baseline: dict[int, int] = {}
    # ``rank`` is the annotation ranked() adds, which the type checker does not follow.
    rows = ranked(counted, newest_first=True).filter(rank__lte=2)  # type: ignore[misc]
    for paper_id, rank, upvotes in rows.values_list("paper_id", "rank", "upvotes"):  # type: ignore[misc]
        if upvotes is not None:  # never: only counted sightings are ranked
            (latest if rank == 1 else baseline)[paper_id] = upvotes
    if since is not None:
        before = ranked(counted.filter(seen_at__lte=since), newest_first=True).filter(
            rank=1  # type: ignore[misc]
        )
        baseline = {pk: n for pk, n in before.values_list("paper_id", "upvotes") if n is not None}
        later = [paper_id for paper_id in latest if paper_id not in baseline]
        if later:
            first = ranked(
                counted.filter(paper_id__any=later, seen_at__gt=since), newest_first=False
            ).filter(rank=1)  # type: ignore[misc]
            baseline.update(
                (pk, n) for pk, n in first.values_list("paper_id", "upvotes") if n is not None
            )
    for paper_id, upvotes in latest.items():
        if paper_id in baseline:
            growth[paper_id] = upvotes - baseline[paper_id]
    return growth
