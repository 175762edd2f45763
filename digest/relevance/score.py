"""Scoring an edition for subscribers with a profile, and their suggestions.

Pure functions over numpy arrays (the planner loads the rows:
:mod:`digest.delivery.plan`). The formula, documented in docs/relevance.md::

    learned(p) = cos(u, p) − LESS_WEIGHT · max(0, max_d cos(d, p) − max_l cos(l, p))

``u`` is the subscriber's profile (:mod:`digest.relevance.profile`), ``d`` runs over the
papers they voted "less like this" and ``l`` over those they liked (0 when none): a
paper closer to a disliked paper than to every liked one is pushed down by the margin.
Papers their filters or topics matched are ordered by
``points + trend fraction + MIX · learned(p)``
(:func:`digest.matching.ranking.select_for_subscribers`). Suggestions are the edition's
papers no filter or topic matched, not sent before and not voted on, scoring at least
as high as the subscriber's matches do in the median (``learned(p) ≥ median of
learned(m)`` over the matches m ranked for this digest, the best ``2 × max_papers`` by
points: as close to their taste as what they asked for, whatever the scale of the
vectors' cosines) and closer to a liked paper than to any disliked one; best first, at
most ``Subscriber.suggestions``.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from digest.relevance.vectors import Matrix

__all__ = [
    "LESS_WEIGHT",
    "MIX",
    "SUGGEST_QUANTILE",
    "EditionVectors",
    "Learner",
    "Suggestion",
    "learned_scores",
    "learned_scores_many",
    "suggest",
    "suggestion_reason",
]

MIX = 2.0
LESS_WEIGHT = 2.0
SUGGEST_QUANTILE = 0.5
TITLE_CHARS = 60


@dataclass(frozen=True)
class EditionVectors:
    """An edition's papers that have an embedding: ``ids`` and the ``(n, d)`` matrix of
    their unit vectors, row ``i`` for ``ids[i]``."""

    ids: tuple[int, ...]
    matrix: Matrix
    row: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "row", {pk: i for i, pk in enumerate(self.ids)})


@dataclass(frozen=True)
class Learner:
    """What planning knows of one subscriber's taste: the ``profile`` (unit ``(d,)``),
    the papers they liked (``liked``: ``(k, d)`` with ``liked_titles`` and
    ``liked_how``, ``"liked"`` or ``"picked"``), the ``disliked`` ones (``(j, d)``) and
    the ids of every paper they voted on (never suggested again)."""

    profile: Matrix
    liked: Matrix
    liked_titles: tuple[str, ...]
    liked_how: tuple[str, ...]
    disliked: Matrix
    voted: frozenset[int]


@dataclass(frozen=True)
class Suggestion:
    """A "you may also like" paper, its ``learned`` score and the sentence saying why."""

    paper_id: int
    learned: float
    reason: str


def learned_scores(learner: Learner, edition: EditionVectors) -> npt.NDArray[np.float32]:
    """``learned(p)`` of the module's formula for every row of ``edition`` (shape
    ``(n,)``; the cost is one ``(n, d)`` product, plus one per disliked paper)."""
    scores = edition.matrix @ learner.profile
    if len(learner.disliked) and len(edition.ids):
        less = (edition.matrix @ learner.disliked.T).max(axis=1)
        more = (edition.matrix @ learner.liked.T).max(axis=1) if len(learner.liked) else 0.0
        scores = scores - LESS_WEIGHT * np.maximum(0.0, less - more)
    return scores.astype(np.float32, copy=False)


def learned_scores_many(
    learners: Mapping[int, Learner], edition: EditionVectors
) -> dict[int, npt.NDArray[np.float32]]:
    """:func:`learned_scores` of every learner (subscriber id → ``(n,)`` scores), in a few
    matrix products for all of them at once: what planning spends per subscriber is a
    few microseconds, not a product of its own (``make bench relevance``)."""
    if not learners or not len(edition.ids):
        return {sid: np.zeros(len(edition.ids), np.float32) for sid in learners}
    ids = list(learners)
    scores = np.asarray(np.vstack([learners[s].profile for s in ids]) @ edition.matrix.T)
    penalised = [i for i, s in enumerate(ids) if len(learners[s].disliked)]
    if penalised:
        less = _segment_max([learners[ids[i]].disliked for i in penalised], edition.matrix)
        more = _segment_max([learners[ids[i]].liked for i in penalised], edition.matrix)
        scores[penalised] -= LESS_WEIGHT * np.maximum(0.0, less - more)
    return {sid: scores[i].astype(np.float32, copy=False) for i, sid in enumerate(ids)}


def _segment_max(groups: list[Matrix], matrix: Matrix) -> npt.NDArray[np.float32]:
    """Row ``g``: the highest cosine of each of ``matrix``'s rows to the rows of
    ``groups[g]`` (0 for an empty group); shape ``(len(groups), len(matrix))``."""
    out = np.zeros((len(groups), len(matrix)), dtype=np.float32)
    sizes = [len(g) for g in groups]
    if not sum(sizes):
        return out
    products = np.vstack([g for g in groups if len(g)]) @ matrix.T
    starts = np.cumsum([0] + [n for n in sizes if n])[:-1]
    maxima = np.maximum.reduceat(products, starts, axis=0)
    out[[i for i, n in enumerate(sizes) if n]] = maxima
    return out


def _short(title: str) -> str:
    title = " ".join(title.split())
    if len(title) <= TITLE_CHARS:
        return title
    cut = title[: TITLE_CHARS - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > TITLE_CHARS // 2 else cut).rstrip(" ,;:") + "…"


def suggestion_reason(title: str, how: str) -> str:
    """``like "Mamba: Linear-Time Sequence Modeling…", which you liked`` (the title cut
    at a word boundary within 60 characters; ``how`` is ``liked`` or ``picked``)."""
    return f'like "{_short(title)}", which you {how}'


def suggest(
    learner: Learner,
    edition: EditionVectors,
    scores: npt.NDArray[np.float32],
    skip: Collection[int],
    k: int,
    matched: Collection[int] = (),
    matching: Container[int] = frozenset(),
) -> list[Suggestion]:
    """At most ``k`` suggestions from ``edition`` (``scores`` from
    :func:`learned_scores`), leaving out ``skip`` (sent or pinned papers), ``matched``
    (the matches ranked for this digest, whose scores set the bar), ``matching`` (every
    paper the subscriber's filters and topics match, however far down) and the papers
    voted on; see the module docstring for the rule. Suggestions need a liked paper to
    name in their reason and a match to compare with: without either, there are none."""
    rows = [edition.row[pk] for pk in matched if pk in edition.row]
    if k <= 0 or not len(learner.liked) or not rows:
        return []
    bar = float(np.quantile(scores[rows], SUGGEST_QUANTILE))
    order = np.argsort(-scores, kind="stable")
    out: list[Suggestion] = []
    for i in order.tolist():
        if scores[i] < bar:
            break
        pk = edition.ids[i]
        if pk in skip or pk in learner.voted or pk in matched or pk in matching:
            continue
        vector = edition.matrix[i]
        to_liked = learner.liked @ vector
        best = int(np.argmax(to_liked))
        if len(learner.disliked) and float((learner.disliked @ vector).max()) >= to_liked[best]:
            continue
        how = learner.liked_how[best]
        out.append(
            Suggestion(pk, float(scores[i]), suggestion_reason(learner.liked_titles[best], how))
        )
        if len(out) == k:
            break
    return out


def rank_matches(
    matches: Sequence[tuple[int, float]],
    learner: Learner,
    edition: EditionVectors,
    scores: npt.NDArray[np.float32],
) -> list[tuple[int, float]]:
    """``matches`` (``(paper id, engine score)`` pairs: points + trend fraction) ordered by
    ``engine score + MIX · learned(p)`` (0 for a paper without an embedding), best first,
    ties kept in their order. Returns ``(paper id, mixed score)`` pairs."""
    mixed = [
        (pk, score + (MIX * float(scores[edition.row[pk]]) if pk in edition.row else 0.0))
        for pk, score in matches
    ]
    return sorted(mixed, key=lambda item: -item[1])
