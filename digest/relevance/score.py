"""Scoring an edition for subscribers with a profile, and their suggestions.

Pure functions over numpy arrays (the planner loads the rows:
:mod:`digest.delivery.plan`). The formula, documented in docs/relevance.md::

    learned(p) = cos(u, p) − LESS_WEIGHT · max(0, max_d cos(d, p) − LESS_FLOOR)

``u`` is the subscriber's profile (:mod:`digest.relevance.profile`), ``d`` runs over the
papers they voted "less like this". Papers their filters or topics matched are ordered
by ``points + trend fraction + MIX · learned(p)``
(:func:`digest.matching.ranking.select_for_subscribers`). Suggestions are the edition's
papers no filter or topic matched, not sent before and not voted on, with
``learned(p) ≥ SUGGEST_MIN``, closer to a liked paper than to any disliked one and
below ``LESS_BLOCK`` cosine to every disliked one, best first, at most
``Subscriber.suggestions`` of them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from digest.relevance.vectors import Matrix

__all__ = [
    "LESS_BLOCK",
    "LESS_FLOOR",
    "LESS_WEIGHT",
    "MIX",
    "SUGGEST_MIN",
    "EditionVectors",
    "Learner",
    "Suggestion",
    "learned_scores",
    "suggest",
    "suggestion_reason",
]

MIX = 1.0
LESS_FLOOR, LESS_WEIGHT = 0.4, 2.0
LESS_BLOCK = 0.5
SUGGEST_MIN = 0.3
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
        scores = scores - LESS_WEIGHT * np.maximum(0.0, less - LESS_FLOOR)
    return scores.astype(np.float32, copy=False)


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
) -> list[Suggestion]:
    """At most ``k`` suggestions from ``edition`` (``scores`` from
    :func:`learned_scores`), leaving out ``skip`` (matched, sent or pinned papers) and the
    papers voted on; see the module docstring for the rule. Suggestions need a liked
    paper to name in their reason: with none, there are none."""
    if k <= 0 or not len(learner.liked) or not len(edition.ids):
        return []
    order = np.argsort(-scores, kind="stable")
    out: list[Suggestion] = []
    for i in order.tolist():
        if scores[i] < SUGGEST_MIN:
            break
        pk = edition.ids[i]
        if pk in skip or pk in learner.voted:
            continue
        vector = edition.matrix[i]
        to_liked = learner.liked @ vector
        best = int(np.argmax(to_liked))
        if len(learner.disliked):
            less = float((learner.disliked @ vector).max())
            if less >= LESS_BLOCK or less >= float(to_liked[best]):
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
