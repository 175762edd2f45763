"""Which papers each subscriber gets, in what order, and why.

The matching itself is :mod:`digest.matching.engine` (the filter language of
:mod:`digest.matching.query`,
evaluated for a whole batch of subscribers at once). This module turns stored papers into
the engine's input, computes each paper's ``trend``, puts papers pinned by moderators
first, and words the reasons shown in the email.

Each paper's ``trend`` is :func:`digest.matching.trend.trend_score`.

Ranking per subscriber (:mod:`digest.matching.engine`): pinned papers first (newest pin first),
then by points — 2 for each of the subscriber's filters and topics that matches with a
term in the title or authors, 1 for an abstract-only match — then by trend, then by paper
id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from digest.matching.engine import Match, PaperText, match_edition

__all__ = [
    "Candidate",
    "Selection",
    "SubscriberSpec",
    "reason_text",
    "select_for_subscribers",
]

PINNED_REASON = "pinned by the editors"


@dataclass(frozen=True)
class Candidate:
    """A paper as matching sees it. ``trend`` from :func:`trend_score`."""

    id: int
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    trend: float = 0.0
    last_seen_at: datetime | None = None
    pinned_at: datetime | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubscriberSpec:
    """What matching needs of a subscriber: filter queries and chosen topic ids."""

    id: int
    filters: tuple[str, ...]
    topic_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Selection:
    """A paper chosen for a digest and the sentence that says why."""

    paper_id: int
    reason: str
    score: float = 0.0


def reason_text(match: Match, topic_names: Mapping[int, str]) -> str:
    """``matched your filter "diffusion video" (diffusion in title); topic "Vision"``."""
    parts = []
    for reason in match.reasons:
        what = (
            f'your filter "{reason.filter}"'
            if reason.filter is not None
            else f'topic "{topic_names.get(reason.topic_id or 0, reason.topic_id)}"'
        )
        found = ", ".join(str(h) for h in reason.hits)
        parts.append(f"matched {what} ({found})" if found else f"matched {what}")
    return "; ".join(parts)


def select_for_subscribers(
    subscribers: Sequence[SubscriberSpec],
    papers: Sequence[Candidate],
    *,
    limit: int,
    excluded: Mapping[int, set[int]],
    topics: Mapping[int, tuple[str, str]],
) -> dict[int, list[Selection]]:
    """Each subscriber's top ``limit`` papers, best first: pinned papers not sent to them
    yet, then matches. A subscriber nothing matches gets an empty list, pins or not.

    ``excluded[subscriber id]`` holds paper ids already sent to them; ``topics`` maps a
    topic id to ``(name, query)``. A filter that no longer parses matches nothing (the
    engine logs it). Returns subscriber id → selections (an empty list: nothing matched).
    """
    pinned = sorted(
        (p for p in papers if p.pinned_at is not None),
        key=lambda p: (p.pinned_at, p.id),
        reverse=True,
    )
    texts = [PaperText(p.id, p.title, p.abstract, p.authors, p.trend, p.categories) for p in papers]
    matches = match_edition(
        texts,
        [(s.id, s.filters, s.topic_ids) for s in subscribers],
        {tid: query for tid, (_, query) in topics.items()},
        excluded=excluded,
        top_n=limit,
    )
    names = {tid: name for tid, (name, _) in topics.items()}
    result: dict[int, list[Selection]] = {}
    for spec in subscribers:
        found = matches.get(spec.id, [])
        if not found:  # pinned papers lead a digest; they never make one on their own
            result[spec.id] = []
            continue
        skip = excluded.get(spec.id, set())
        chosen = [Selection(p.id, PINNED_REASON) for p in pinned if p.id not in skip]
        taken = {s.paper_id for s in chosen}
        for match in found:
            if match.paper_id not in taken:
                chosen.append(Selection(match.paper_id, reason_text(match, names), match.score))
        result[spec.id] = chosen[:limit]
    return result
