"""Blocked terms: words moderators do not allow in filters.

A term is found in a filter the way the filter language compares words
(:func:`digest.matching.query.fold`, :func:`~digest.matching.query.tokens`,
:func:`~digest.matching.query.word_key`), so "NSFW", "nsfw" and "Nsfws" are one term.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from digest.matching.query import fold, tokens, word_key
from digest.models import BlockedTerm
from subscriptions.models import Filter

log = logging.getLogger(__name__)

__all__ = ["blocked_terms_in", "flag_filters_containing"]


def _keys(text: str) -> list[str]:
    # The same folding as the filter language (digest.matching.query), so "NSFW", "nsfw" and
    # "Nsfws" are one term, and "state-space" is "state space".
    return [word_key(t) for t in tokens(fold(text))]


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n > 0 and any(
        list(haystack[i : i + n]) == list(needle) for i in range(len(haystack) - n + 1)
    )


def blocked_terms_in(query_text: str, terms: Sequence[str] | None = None) -> list[str]:
    """The blocked terms that ``query_text`` contains, as the moderators wrote them.

    A term is contained when its words appear consecutively among the query's words,
    compared as the filter language compares words (:func:`digest.matching.query.fold`,
    :func:`~digest.matching.query.tokens`, :func:`~digest.matching.query.word_key`: case, accents,
    punctuation and a plural ending do not matter). Operators and field names are words
    like any other here, and a term is found even under a ``-``: a filter may not
    mention it at all. ``terms`` defaults to every :class:`BlockedTerm`.
    """
    words = _keys(query_text)
    if terms is None:
        terms = list(BlockedTerm.objects.values_list("term", flat=True))
    return [term for term in terms if _contains(words, _keys(term))]


def flag_filters_containing(term: str) -> int:
    """Flag every subscriber filter that contains ``term`` for review; returns how many
    were newly flagged. Reads the filters in chunks (a term is blocked rarely)."""
    needle = _keys(term)
    if not needle:
        return 0
    hits = [
        pk
        for pk, query in Filter.objects.filter(flagged_for_review=False)
        .values_list("pk", "query")
        .iterator(chunk_size=2000)
        if _contains(_keys(query), needle)
    ]
    flagged = 0
    for start in range(0, len(hits), 1000):
        flagged += Filter.objects.filter(pk__in=hits[start : start + 1000]).update(
            flagged_for_review=True
        )
    if flagged:
        log.info("blocked_term term=%r filters_flagged=%s", term, flagged)
    return flagged
