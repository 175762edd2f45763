"""Which papers each subscriber gets, in what order, and why.

The matching itself is :mod:`digest.matching.engine` (the filter language of
:mod:`digest.matching.query`,
evaluated for a whole batch of subscribers at once). This module turns stored papers into
the engine's input, computes each paper's ``trend``, puts papers pinned by moderators
first, and words the reasons shown in the email.

Each paper's ``trend`` is :func:`digest.matching.trend.trend_score`.

Ranking per subscriber (:mod:`digest.matching.engine`): pinned papers first (newest pin first),
then by points — 2 for each of the subscriber's filters and topics that matches with a
term in the title or authors, 1 for an abstract-only match, ½ more for a filter of plain
words that stand together in the paper — then by trend, then by paper id. For a
subscriber with a learned profile the matches are ordered by points + trend
fraction + the learned score, and up to ``Subscriber.suggestions`` "you may also like"
papers follow them (:mod:`digest.relevance.score`, docs/relevance.md).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from digest.matching.engine import Edition, Match, PaperText, index_papers, rank_subscribers
from digest.matching.query import Hit
from digest.relevance.score import (
    EditionVectors,
    Learner,
    learned_scores_many,
    rank_matches,
    suggest,
)

__all__ = [
    "Candidate",
    "PreparedEdition",
    "Selection",
    "SubscriberSpec",
    "prepare_edition",
    "reason_part",
    "reason_text",
    "select_for_subscribers",
]

PINNED_REASON = "pinned by the editors"
SEMANTIC_POINTS = 1.0
"""What a paper that joined one of the subscriber's topics by similarity alone scores
(docs/relevance.md): as an abstract-only match, below it once trends count."""


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


class Selection(NamedTuple):
    """A paper chosen for a digest and the sentence that says why; ``strong`` when one of
    the subscriber's filters or topics has a term in its title or authors (a pinned
    paper is not); ``suggested``: a "you may also like" paper that no filter or topic
    matched. (A named tuple: a daily run makes ten per subscriber.)"""

    paper_id: int
    reason: str
    score: float = 0.0
    strong: bool = False
    suggested: bool = False


def reason_part(filter_text: str | None, topic_name: str, hits: Sequence[Hit]) -> str:
    """One filter's or topic's part of a reason: ``matched your filter "diffusion video"
    (diffusion in title)``, ``matched your filter "state space models" ("state space
    models" in title)`` (its plain words stand together:
    :func:`digest.matching.engine.together_hits`) or ``matched topic "Vision" (vision in
    abstract)``."""
    what = f'your filter "{filter_text}"' if filter_text is not None else f'topic "{topic_name}"'
    if not hits:
        return f"matched {what}"
    return f"matched {what} ({', '.join([f'{h.term} in {h.where}' for h in hits])})"


def reason_text(match: Match, topic_names: Mapping[int, str]) -> str:
    """``matched your filter "diffusion video" (diffusion in title); topic "Vision"``: the
    parts of :func:`reason_part`, one per reason, joined by ``"; "``."""
    return "; ".join(
        reason_part(
            reason.filter,
            str(topic_names.get(reason.topic_id or 0, reason.topic_id)),
            reason.hits,
        )
        for reason in match.reasons
    )


@dataclass(frozen=True)
class PreparedEdition:
    """An edition's papers made ready for matching once, to share between chunks of
    subscribers: the engine's index (:class:`~digest.matching.engine.Edition`, which also
    remembers each distinct query evaluated and each paper explained) and the pinned
    papers, newest pin first. Built by :func:`prepare_edition`."""

    papers: tuple[Candidate, ...]
    edition: Edition
    pinned: tuple[Candidate, ...]
    # Topic names -> the reason wording the edition remembers texts by (Ranking.reason_parts).
    wordings: dict[tuple[tuple[int, str], ...], Callable[..., str]] = field(
        default_factory=dict, compare=False, repr=False
    )


def prepare_edition(papers: Sequence[Candidate]) -> PreparedEdition:
    """Index ``papers`` for :func:`select_for_subscribers`. Raises ``ValueError`` for
    repeated paper ids or a trend that is not a finite number."""
    pinned = sorted(
        (p for p in papers if p.pinned_at is not None),
        key=lambda p: (p.pinned_at, p.id),
        reverse=True,
    )
    texts = [PaperText(p.id, p.title, p.abstract, p.authors, p.trend, p.categories) for p in papers]
    return PreparedEdition(tuple(papers), index_papers(texts), tuple(pinned))


def select_for_subscribers(
    subscribers: Sequence[SubscriberSpec],
    papers: Sequence[Candidate] | PreparedEdition,
    *,
    limit: int,
    excluded: Mapping[int, set[int]],
    topics: Mapping[int, tuple[str, str]],
    learners: Mapping[int, Learner] | None = None,
    vectors: EditionVectors | None = None,
    suggestions: Mapping[int, int] | None = None,
    semantic: Mapping[int, Collection[int]] | None = None,
) -> dict[int, list[Selection]]:
    """Each subscriber's top ``limit`` papers, best first: pinned papers not sent to them
    yet, then matches. A subscriber nothing matches gets an empty list, pins or not.

    A subscriber with a :class:`~digest.relevance.score.Learner` in ``learners`` (and
    ``vectors``, the edition's embeddings) has their matches — the best ``2 × limit`` by
    points — ordered with the learned score mixed in, and then up to
    ``suggestions[subscriber id]`` suggested papers (``suggested=True``), none of which
    any of their filters or topics matches, after the ``limit`` matches.

    ``semantic`` maps a topic id to the papers that joined it by similarity
    (:mod:`digest.matching.topics`): for a subscriber following the topic they are
    matches of :data:`SEMANTIC_POINTS` points, with the reason ``matched topic "Name"
    (similar to its description and examples)``.

    ``papers`` is the edition, or the edition already prepared by
    :func:`prepare_edition` (indexed once for every chunk). ``excluded[subscriber id]``
    holds paper ids already sent to them; ``topics`` maps a topic id to ``(name,
    query)``. A filter that no longer parses matches nothing (the engine logs it).
    Reasons are worked out only for the matches that make the digest. Returns
    subscriber id → selections (an empty list: nothing matched).
    """
    # The loop below allocates a few small acyclic objects per paper chosen while the
    # caller's heap may hold millions (subscribers, the edition's queries): each full
    # collection would walk them all, for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _select(
            subscribers,
            papers,
            limit=limit,
            excluded=excluded,
            topics=topics,
            learners=learners,
            vectors=vectors,
            suggestions=suggestions,
            semantic=semantic,
        )
    finally:
        if collecting:
            gc.enable()


def _select(
    subscribers: Sequence[SubscriberSpec],
    papers: Sequence[Candidate] | PreparedEdition,
    *,
    limit: int,
    excluded: Mapping[int, set[int]],
    topics: Mapping[int, tuple[str, str]],
    learners: Mapping[int, Learner] | None,
    vectors: EditionVectors | None,
    suggestions: Mapping[int, int] | None,
    semantic: Mapping[int, Collection[int]] | None,
) -> dict[int, list[Selection]]:
    prepared = papers if isinstance(papers, PreparedEdition) else prepare_edition(papers)
    # A topic with only a semantic part has no query for the engine.
    queries = {tid: query for tid, (_, query) in topics.items() if query.strip()}
    learning = bool(learners) and vectors is not None
    ranking = rank_subscribers(
        prepared.edition,
        [(s.id, s.filters, s.topic_ids) for s in subscribers],
        queries,
        excluded=excluded,
        # Room for the learned score to lift a match that has fewer points.
        top_n=2 * limit if learning else limit,
    )
    names = {tid: name for tid, (name, _) in topics.items()}

    def word(filter_text: str | None, topic_id: int | None, hits: tuple[Hit, ...]) -> str:
        return reason_part(filter_text, str(names.get(topic_id or 0, topic_id)), hits)

    # One wording per edition and topic names: a chunk's names are those of the tick.
    word = prepared.wordings.setdefault(tuple(sorted(names.items())), word)
    pinned = prepared.pinned
    chunk_learners = {s.id: learners[s.id] for s in subscribers if learners and s.id in learners}
    all_learned = learned_scores_many(chunk_learners, vectors) if learning and vectors else {}
    result: dict[int, list[Selection]] = {}
    paper_rows, score_rows = ranking.paper_ids.tolist(), ranking.scores.tolist()
    edition_ids = {p.id for p in prepared.papers} if semantic else set()
    for row, (spec, paper_ids, scores) in enumerate(
        zip(subscribers, paper_rows, score_rows, strict=True)
    ):
        joined: dict[int, int] = {}  # paper id → a topic it joined by similarity
        for tid in spec.topic_ids if semantic else ():
            for pk in semantic.get(tid, ()):  # type: ignore[union-attr]
                if pk in edition_ids and pk not in excluded.get(spec.id, ()):
                    joined.setdefault(pk, tid)
        if paper_ids[0] < 0 and not joined:
            # Pinned papers lead a digest; they never make one on their own.
            result[spec.id] = []
            continue
        learner = chunk_learners.get(spec.id) if vectors is not None else None
        if not pinned and not joined and learner is None:
            # Most subscribers: the ranking's row as it stands, best first.
            count = min(paper_ids.index(-1) if -1 in paper_ids else len(paper_ids), limit)
            row_parts = ranking.reason_parts(
                row, range(count), spec.filters, spec.topic_ids, queries, word
            )
            result[spec.id] = [
                Selection(paper_id, "; ".join(parts), score, strong)
                for paper_id, score, (parts, strong) in zip(
                    paper_ids[:count], scores[:count], row_parts, strict=True
                )
            ]
            continue
        chosen = []
        if pinned:
            skip = excluded.get(spec.id, set())
            chosen = [Selection(p.id, PINNED_REASON) for p in pinned if p.id not in skip]
            chosen = chosen[:limit]
        taken = {s.paper_id for s in chosen}
        slot_of = {}  # paper id → its slot in the ranking's row (a semantic join has none)
        sent = []
        for slot, (paper_id, score) in enumerate(zip(paper_ids, scores, strict=True)):
            if paper_id >= 0 and paper_id not in taken:
                slot_of[paper_id] = slot
                sent.append((paper_id, score))
        if joined:
            sent += [
                (pk, SEMANTIC_POINTS)
                for pk in sorted(joined)
                if pk not in slot_of and pk not in taken
            ]
            sent.sort(key=lambda item: -item[1])
        if learner is not None and vectors is not None:
            learned = all_learned[spec.id]
            sent = rank_matches(sent, learner, vectors, learned)
        sent = sent[: limit - len(chosen)]
        slots = sorted(slot_of[pk] for pk, _ in sent if pk in slot_of)
        worded = dict(
            zip(
                slots,
                ranking.reason_parts(row, slots, spec.filters, spec.topic_ids, queries, word),
                strict=True,
            )
        )
        for paper_id, score in sent:
            at = slot_of.get(paper_id)
            if at is not None:
                parts, strong = worded[at]
                chosen.append(Selection(paper_id, "; ".join(parts), score, strong))
            else:
                name = names.get(joined[paper_id], joined[paper_id])
                reason = f'matched topic "{name}" (similar to its description and examples)'
                chosen.append(Selection(paper_id, reason, score))
        if learner is not None and vectors is not None and suggestions:
            skip = set(excluded.get(spec.id, ())) | {p.id for p in pinned}
            matched = {p for p in paper_ids if p >= 0} | set(joined)
            k = suggestions.get(spec.id, 0)
            # Every paper a filter or topic matches stays out, not only the matches ranked
            # above (whose scores set the bar).
            matching = ranking.matching(spec.filters, spec.topic_ids, queries)
            chosen.extend(
                Selection(s.paper_id, s.reason, s.learned, suggested=True)
                for s in suggest(learner, vectors, learned, skip, k, matched, matching)
            )
        result[spec.id] = chosen
    return result
