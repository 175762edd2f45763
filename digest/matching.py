"""Which papers a subscriber's filters select, and in what order.

A filter is a word or a phrase. It matches a paper when its words appear, in order and
at word boundaries, in the title or the abstract: case-insensitive, singular and plural
alike (``transformer`` matches ``Transformers``). The selected papers are ranked by
upvotes, then recency (publication date, then first seen), then id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Candidate",
    "Selection",
    "SubscriberSpec",
    "filter_matches",
    "fold_word",
    "select_for_subscribers",
    "select_papers",
    "words",
]

_WORD = re.compile(r"[^\W_]+")


def fold_word(word: str) -> str:
    """Lower-case ``word`` and drop a plural ``s`` (not ``ss``): ``Transformers`` →
    ``transformer``, ``attentions`` → ``attention``, ``loss`` → ``loss``."""
    word = word.lower()
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """The folded words of ``text``, in order."""
    return [fold_word(w) for w in _WORD.findall(text)]


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    first = needle[0]
    return any(
        haystack[i] == first and list(haystack[i : i + n]) == list(needle)
        for i in range(len(haystack) - n + 1)
    )


def filter_matches(query: str, title: str, abstract: str) -> str | None:
    """Where ``query`` matches: ``"title"``, ``"abstract"`` or ``None`` for no match.
    A query with no words matches nothing."""
    needle = words(query)
    if not needle:
        return None
    if _contains(words(title), needle):
        return "title"
    if _contains(words(abstract), needle):
        return "abstract"
    return None


@dataclass(frozen=True)
class Candidate:
    """A paper as matching sees it. ``recency`` is any sortable value, larger is newer."""

    id: int
    title: str
    abstract: str
    upvotes: int
    recency: tuple[object, ...]
    last_seen_at: object = None


@dataclass(frozen=True)
class Selection:
    paper_id: int
    reason: str


@dataclass(frozen=True)
class SubscriberSpec:
    """What matching needs of a subscriber: filter queries and chosen topic ids."""

    id: int
    filters: tuple[str, ...]
    topic_ids: tuple[int, ...] = ()


def select_papers(
    filters: Sequence[str],
    papers: Iterable[Candidate],
    *,
    limit: int,
    topics: Mapping[int, str] | None = None,
    topic_papers: Mapping[int, set[int]] | None = None,
) -> list[Selection]:
    """The top ``limit`` papers any of ``filters`` or ``topics`` (id → name, with
    ``topic_papers`` giving each topic's paper ids) selects, best first, each with the
    reason it was chosen (``matched "diffusion" in title``, ``topic "Vision"``)."""
    topics = topics or {}
    topic_papers = topic_papers or {}
    chosen: list[tuple[Candidate, str]] = []
    for paper in papers:
        reasons = []
        for query in filters:
            where = filter_matches(query, paper.title, paper.abstract)
            if where:
                reasons.append(f'matched "{query}" in {where}')
        for topic_id, name in topics.items():
            if paper.id in topic_papers.get(topic_id, ()):
                reasons.append(f'topic "{name}"')
        if reasons:
            chosen.append((paper, "; ".join(reasons)))
    chosen.sort(key=lambda pr: (-pr[0].upvotes, _negate(pr[0].recency), pr[0].id))
    return [Selection(paper.id, reason) for paper, reason in chosen[:limit]]


def _negate(recency: tuple[object, ...]) -> tuple[object, ...]:
    # Newest first: invert each component's order (ordinals and timestamps are numbers).
    return tuple(-v if isinstance(v, int | float) else v for v in recency)


def select_for_subscribers(
    subscribers: Sequence[SubscriberSpec],
    papers: Sequence[Candidate],
    *,
    limit: int,
    excluded: Mapping[int, set[int]],
    topic_names: Mapping[int, str],
    topic_papers: Mapping[int, set[int]],
) -> dict[int, list[Selection]]:
    """Each subscriber's top ``limit`` papers, skipping the paper ids in
    ``excluded[subscriber id]`` (already sent to them). Returns subscriber id → selections.
    """
    result: dict[int, list[Selection]] = {}
    for spec in subscribers:
        skip = excluded.get(spec.id, set())
        result[spec.id] = select_papers(
            spec.filters,
            (p for p in papers if p.id not in skip),
            limit=limit,
            topics={t: topic_names[t] for t in spec.topic_ids if t in topic_names},
            topic_papers=topic_papers,
        )
    return result
