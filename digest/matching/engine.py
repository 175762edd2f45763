"""The matching engine: every subscriber's filters and topics against one edition's papers.

Pure Python and numpy; no Django. The steps, each done once however many subscribers
share the work:

1. :func:`index_papers` tokenises each paper once (:func:`digest.matching.query.fold`,
   :func:`~digest.matching.query.tokens`, :func:`~digest.matching.query.word_key`) and keeps,
   per field, an
   inverted index from each key and each folded token to the set of papers holding it.
   Sets of papers are bitsets: bit ``r`` stands for the paper at rank ``r``, where rank 0
   is the paper with the highest ``trend`` (ties: lower paper id first). A phrase or
   words standing together are checked paper by paper where few papers hold all their
   words, else for every paper at once from where each key stands (``_KeyPlaces``).
2. Each distinct query text is parsed once, each distinct canonical query and each
   distinct sub-expression is evaluated once, with set algebra on those bitsets. The
   :class:`Edition` keeps them (:meth:`Edition.queries`), so every batch ranked on the
   same edition -- the chunks of a daily run in one worker -- shares them.
3. Per subscriber, the bitsets of their filters and topics are added up bit-sliced (64
   papers per machine word, numpy, thousands of subscribers of similar width -- number
   of filters and topics -- per step) and the top N are read off in rank order.
4. Reasons (:meth:`Ranking.reasons`) are read from the same index, for the papers that
   are sent only: which filters and topics match the paper, and the hits
   :func:`digest.matching.query.explain` would list.

Ranking -- one score per (subscriber, paper)::

    points  = sum, over the subscriber's filters and topics that match the paper, of
              2 when the match is strong, 1 otherwise,
              + 1/2 when it is a filter of plain words that stand together in the paper
    score   = points + (P - 1 - rank) / (2 P)      (P papers in the edition)

A match is *strong* when one of the query's terms that helps it match (under an even
number of negations, see :func:`digest.matching.query.explain`) is found in the paper's title or
author list, and *weak* when such terms are found only in the abstract or its arXiv
categories (a category says what area a paper is in, not what it is about).

A filter (or topic) of two or more plain words (:func:`digest.matching.query.together_phrase`:
no quotes, operators, fields or prefixes) matches wherever each word is, but its words
*stand together* in a paper when its title or its abstract holds them as the phrase, or
all within ``N + 2`` consecutive words in any order (N words;
:func:`digest.matching.query.reference_together`); such a match earns
:data:`TOGETHER_POINTS` more. The half point is less than what a title hit adds, so the
order is: strong and together, strong, weak and together, weak -- a tie-breaker within
one strength that never lifts an abstract match above a title match.

So a title hit beats an abstract-only hit, two matching filters beat one, and between
equal points the paper with the higher ``trend`` wins, then the lower paper id. The
trend fraction is below 1/2, the smallest step of points, so points always dominate;
papers with no points are never selected. Each filter and each topic counts
separately, even when two of them are the same query.

``trend`` is computed by the caller: any finite float, higher is better, of which only the
order within the edition matters (delivery uses :func:`digest.matching.trend.trend_score`).

:func:`reference_top` is the same ranking computed naively from
:func:`digest.matching.query.reference_match`; it is the specification the engine is tested and
benchmarked against.
"""

from __future__ import annotations

import gc
import logging
import math
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, pairwise

import numpy as np

from digest.matching.query import (
    TOGETHER_SLACK,
    And,
    Category,
    Hit,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    QueryError,
    Term,
    category_matches,
    explain,
    fold,
    iter_leaves,
    parse_query,
    phrase_spellings,
    reference_match,
    reference_together,
    together_phrase,
    tokens_and_joins,
    word_key,
)

__all__ = [
    "STRONG_POINTS",
    "TOGETHER_POINTS",
    "WEAK_POINTS",
    "Edition",
    "Match",
    "PaperBits",
    "PaperText",
    "Ranking",
    "Reason",
    "index_papers",
    "match_edition",
    "query_bits",
    "rank_subscribers",
    "reference_hits",
    "reference_points",
    "reference_top",
    "tag_papers",
    "together_bits",
    "together_hits",
]

log = logging.getLogger(__name__)

STRONG_POINTS = 2
"""Points a matching filter or topic gives a paper when a term is in its title or authors."""
WEAK_POINTS = 1
"""Points a matching filter or topic gives a paper when its terms are only in the abstract."""
TOGETHER_POINTS = 0.5
"""Points a matching filter of plain words adds when its words stand together in the
paper (as the phrase, or within a few words): less than a title hit adds."""
# rank_subscribers adds points up in halves, with weights 1 (together), 2 (weak) and 4
# (strong) as bit planes 0, 1 and 2.
assert STRONG_POINTS == 2 * WEAK_POINTS == 4 * TOGETHER_POINTS

_FIELDS = ("title", "abstract", "author")
# Where a term of each field is looked for, in the order explain() lists the hits.
_PLACES = {
    "any": ("title", "abstract"),
    "title": ("title",),
    "abstract": ("abstract",),
    "author": ("author",),
    "category": ("category",),
}
MAX_REMEMBERED_QUERIES = 100_000
"""Distinct queries an :class:`Edition` keeps evaluated (about 1 KB each) before it
starts again; popular queries come back at once."""
# Marks the gap between two author names in the author token sequence; no key is empty,
# so a phrase can never run from one name into the next.
_NAME_GAP = ""


@dataclass(frozen=True, slots=True)
class PaperText:
    """A paper as matching sees it. ``trend``: finite float, higher is better (see module
    docstring); ``authors``: names when the source gave them, else empty;
    ``categories``: its arXiv categories (``cs.CL``), empty when unknown."""

    id: int
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    trend: float = 0.0
    categories: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------
# Indexing an edition


def _bits(x: int) -> Iterable[int]:
    while x:
        low = x & -x
        yield low.bit_length() - 1
        x ^= low


class Edition:
    """One edition's papers, tokenised and indexed (built by :func:`index_papers`).

    ``papers`` is in rank order (best trend first); ``paper_ids`` (int64, shape ``(P,)``)
    and ``fraction`` (float64, the ``(P - 1 - rank) / (2 P)`` part of the score) are
    indexed by rank; ``words`` is the number of 64-bit words in one bitset row.
    """

    phrase_papers_one_by_one = 24
    """:meth:`phrase_bits` checks this many candidate papers or fewer one by one (Python),
    more all at once (numpy, :class:`_KeyPlaces`): the two give the same answer; the
    crossover was measured on the match benchmark's edition."""
    window_papers_one_by_one = 8
    """The same for :meth:`together_bits`."""

    def __init__(self, papers: Sequence[PaperText]):
        ids = [p.id for p in papers]
        if len(set(ids)) != len(ids):
            raise ValueError("paper ids must be distinct")
        if any(not math.isfinite(p.trend) for p in papers):
            raise ValueError("paper trend must be a finite number")
        self.papers: list[PaperText] = sorted(papers, key=lambda p: (-p.trend, p.id))
        self.size = len(self.papers)
        self.rank_of = {p.id: r for r, p in enumerate(self.papers)}
        self.paper_ids = np.array([p.id for p in self.papers], dtype=np.int64)
        n = max(self.size, 1)
        self.fraction = (n - 1 - np.arange(self.size, dtype=np.float64)) / (2 * n)
        self.words = max(1, -(-self.size // 64))
        self.everything = (1 << self.size) - 1

        self._key_bits: dict[str, dict[str, int]] = {f: {} for f in _FIELDS}
        self._form_bits: dict[str, dict[str, int]] = {f: {} for f in _FIELDS}
        # Each paper's keys of each field joined by spaces, with a space at each end (names
        # of authors are separated by two): a phrase is a substring search.
        self._joined: dict[str, list[str]] = {f: [] for f in _FIELDS}
        # Per field, rank -> the paper's keys in order, for the few papers that have
        # compounds (their phrases are checked token by token).
        self._sequences: dict[str, dict[int, tuple[str, ...]]] = {f: {} for f in _FIELDS}
        # Per field, rank -> {position in the sequence: key of the compound that token
        # and the next form} (joined_tokens), for the few papers that have compounds.
        self._joins: dict[str, dict[int, dict[int, str]]] = {f: {} for f in _FIELDS}
        # Per field, key -> papers where it stands as a compound of two tokens.
        self._compound_bits: dict[str, dict[str, int]] = {f: {} for f in _FIELDS}
        self._category_bits: dict[str, int] = {}
        # Per field, where each key stands in every paper (_KeyPlaces), built the first
        # time a phrase or a filter of plain words has many papers to check.
        self._places: dict[str, _KeyPlaces] = {}
        keys = _KeyOf()
        for rank, paper in enumerate(self.papers):
            bit = 1 << rank
            for fld, texts in (
                ("title", (paper.title,)),
                ("abstract", (paper.abstract,)),
                ("author", paper.authors),
            ):
                sequence: list[str] = []
                joins: dict[int, str] = {}
                form_bits = self._form_bits[fld]
                for i, text in enumerate(texts):
                    if i:
                        sequence.append(_NAME_GAP)
                    forms, compounds = tokens_and_joins(fold(text))
                    offset = len(sequence)
                    sequence += map(keys.__getitem__, forms)
                    for form in set(forms):
                        form_bits[form] = form_bits.get(form, 0) | bit
                    for at, compound in compounds:
                        joins[offset + at] = keys[compound]
                self._joined[fld].append(f" {' '.join(sequence)} ")
                if joins:
                    self._sequences[fld][rank] = tuple(sequence)
                key_bits = self._key_bits[fld]
                present = set(sequence)
                if joins:
                    present.update(joins.values())
                for key in present:
                    key_bits[key] = key_bits.get(key, 0) | bit
                if joins:
                    self._joins[fld][rank] = joins
                    compound_bits = self._compound_bits[fld]
                    for key in set(joins.values()):
                        compound_bits[key] = compound_bits.get(key, 0) | bit
            for category in paper.categories:
                category = category.lower()
                self._category_bits[category] = self._category_bits.get(category, 0) | bit
        self._sorted_forms = {f: sorted(self._form_bits[f]) for f in _FIELDS}
        self._leaf_memo: dict[tuple[object, ...], int] = {}
        self._bank: _Bank | None = None

    def queries(self) -> _Bank:
        """The distinct queries evaluated on this edition so far, shared by every call of
        :func:`rank_subscribers` on it: a query text is parsed and evaluated once per
        edition however many chunks of subscribers use it. Past
        :data:`MAX_REMEMBERED_QUERIES` distinct queries everything remembered is dropped
        and rebuilt as needed, and past twice as many remembered reasons the reasons are,
        so memory stays bounded (~100-200 MB per worker process at most)."""
        if self._bank is None or len(self._bank.weak) > MAX_REMEMBERED_QUERIES:
            self._bank = _Bank(self)
            self._leaf_memo = {}
        else:  # reasons are cheap to rebuild, unlike the evaluated queries
            if len(self._bank.reasons) > 2 * MAX_REMEMBERED_QUERIES:
                self._bank.reasons.clear()
            if sum(map(len, self._bank.worded.values())) > 2 * MAX_REMEMBERED_QUERIES:
                self._bank.worded.clear()
        return self._bank

    def hit_bits(self, query: Query) -> tuple[tuple[Hit, int], ...]:
        """Each hit :func:`digest.matching.query.explain` may list for ``query`` (its terms
        under an even number of negations, in each place they are looked for, in
        canonical order, repeats merged) with the bitset of the papers where it is found.
        """
        found: dict[Hit, int] = {}
        for leaf, positive in iter_leaves(query.root):
            if positive:
                for place in _PLACES[leaf.field]:
                    hit = Hit(leaf.label, place)
                    found[hit] = found.get(hit, 0) | self.leaf_bits(leaf, place)
        return tuple(found.items())

    def hits(self, query: Query, rank: int) -> tuple[Hit, ...]:
        """:func:`digest.matching.query.explain` of ``query`` on the paper at ``rank``,
        read from the index instead of searching the text again (the property tests hold
        both equal)."""
        return tuple(hit for hit, bits in self.hit_bits(query) if bits >> rank & 1)

    def term_bits(self, key: str, fld: str) -> int:
        """Papers whose ``fld`` (``title``, ``abstract`` or ``author``) holds a token, or
        a compound of two (:func:`digest.matching.query.joined_tokens`), with this key."""
        return self._key_bits[fld].get(key, 0)

    def prefix_bits(self, stem: str, fld: str) -> int:
        """Papers whose ``fld`` holds a folded token starting with ``stem``."""
        memo_key = ("prefix", stem, fld)
        found = self._leaf_memo.get(memo_key)
        if found is None:
            forms = self._sorted_forms[fld]
            found = 0
            i = bisect_left(forms, stem)
            while i < len(forms) and forms[i].startswith(stem):
                found |= self._form_bits[fld][forms[i]]
                i += 1
            self._leaf_memo[memo_key] = found
        return found

    def phrase_bits(self, keys: tuple[str, ...], fld: str) -> int:
        """Papers whose ``fld`` holds tokens with these keys consecutively, in one of the
        phrase's spellings (:func:`digest.matching.query.phrase_spellings`), each key a
        token or a compound of two."""
        memo_key = ("phrase", keys, fld)
        found = self._leaf_memo.get(memo_key)
        if found is None:
            found = 0
            for spelling in self._spellings(keys, fld):
                # Most spellings join words no paper writes as one: skip them here.
                candidates = self._holding_all(spelling, fld, self.everything & ~found)
                if not candidates or len(spelling) == 1:  # one key stands in a row anywhere
                    found |= candidates
                    continue
                if candidates.bit_count() > self.phrase_papers_one_by_one:
                    ranks = self._places_of(fld).phrase(spelling)
                    found |= _bitset(ranks, self.size) & candidates
                else:
                    found |= self._spelling_bits(spelling, fld, candidates)
            self._leaf_memo[memo_key] = found
        return found

    def _spellings(self, keys: tuple[str, ...], fld: str) -> tuple[tuple[str, ...], ...]:
        # phrase_spellings(keys), or only the phrase itself when no two neighbouring keys
        # joined make a key that ``fld`` holds anywhere (every other spelling has one).
        key_bits = self._key_bits[fld]
        for first, second in pairwise(keys):
            if word_key(first + second) in key_bits:
                return phrase_spellings(keys)
        return (keys,)

    def _holding_all(self, keys: Iterable[str], fld: str, papers: int) -> int:
        # Those of ``papers`` (a bitset) whose ``fld`` holds every key, as a token or a
        # compound of two.
        key_bits = self._key_bits[fld]
        for key in keys:
            papers &= key_bits.get(key, 0)
            if not papers:
                break
        return papers

    def _places_of(self, fld: str) -> _KeyPlaces:
        places = self._places.get(fld)
        if places is None:
            places = self._places[fld] = _KeyPlaces(self._joined[fld], self._joins[fld])
        return places

    def _spelling_bits(self, keys: tuple[str, ...], fld: str, candidates: int) -> int:
        # Those of ``candidates`` (papers holding every key) where ``keys`` stand
        # consecutively.
        found = 0
        joined = self._joins[fld]
        texts = self._joined[fld]
        sequences = self._sequences[fld]
        compound_bits = self._compound_bits[fld]
        # Papers where some key stands as a compound: only they need the slow check.
        compounds = 0
        for key in keys:
            compounds |= compound_bits.get(key, 0)
        compounds &= candidates
        needle, first = f" {' '.join(keys)} ", keys[0]
        for rank in _bits(candidates):
            if needle in texts[rank]:  # the keys stand together as tokens
                found |= 1 << rank
                continue
            if not compounds >> rank & 1:
                continue
            joins, sequence = joined[rank], sequences[rank]
            # A key stands as a compound of two tokens (rare): try every start.
            starts = [p for p, key in joins.items() if key == first]
            starts += [p for p, key in enumerate(sequence) if key == first]
            if any(_aligned(sequence, joins, p, keys) for p in starts):
                found |= 1 << rank
        return found

    def together_bits(self, keys: tuple[str, ...], fld: str, candidates: int) -> int:
        """Those of ``candidates`` (a bitset) whose ``fld`` (``title`` or ``abstract``)
        holds the words with these keys together: for one of the phrase's spellings
        (:func:`digest.matching.query.phrase_spellings`), each of its keys within one
        window of ``len(spelling) + TOGETHER_SLACK`` consecutive tokens, in any order, as
        a token or a compound of two (which covers the spelling as a phrase)
        (:func:`digest.matching.query.reference_together` is the rule). Each paper is
        looked at once per edition and ``keys``, whichever queries ask: one by one when
        they are few (at most ``window_papers_one_by_one``), else all papers at once."""
        checked_key, found_key = ("together-checked", keys, fld), ("together", keys, fld)
        checked = self._leaf_memo.get(checked_key, 0)
        found = self._leaf_memo.get(found_key, 0)
        todo = candidates & ~checked
        if todo:
            # Each spelling's window holds that spelling as a phrase (its keys in a row),
            # so the window check of every spelling covers the phrase too.
            for spelling in self._spellings(keys, fld):
                wanted = frozenset(spelling)
                near = self._holding_all(wanted, fld, todo & ~found)
                if not near or len(wanted) == 1:  # one key is within any window it stands in
                    found |= near
                    continue
                width = len(spelling) + TOGETHER_SLACK
                if near.bit_count() > self.window_papers_one_by_one:
                    ranks = self._places_of(fld).together(spelling, width)
                    found |= _bitset(ranks, self.size) & near
                    continue
                for rank in _bits(near):
                    if _within(self._key_spans(fld, rank, wanted), wanted, width):
                        found |= 1 << rank
            self._leaf_memo[checked_key] = checked | todo
            self._leaf_memo[found_key] = found
        return found & candidates

    def _key_spans(self, fld: str, rank: int, keys: Iterable[str]) -> dict[str, list[int]]:
        # Where each of ``keys`` stands in the paper's field, ascending: 2 * position for
        # a token, 2 * position + 1 for a compound of that token and the next.
        # The field's keys joined by spaces, with one at each end: a token's position is
        # the number of spaces before it.
        text = self._joined[fld][rank]
        spans: dict[str, list[int]] = {}
        for key in keys:
            needle = f" {key} "
            at = text.find(needle)
            places = []
            while at != -1:
                places.append(2 * text.count(" ", 0, at))
                at = text.find(needle, at + len(needle) - 1)
            spans[key] = places
        joins = self._joins[fld].get(rank)
        if joins:
            compounds = [(key, 2 * at + 1) for at, key in joins.items() if key in spans]
            for key, code in compounds:
                spans[key].append(code)
            for key in {key for key, _ in compounds}:
                spans[key].sort()
        return spans

    def category_bits(self, pattern: str) -> int:
        """Papers listing a category that ``pattern`` names
        (:func:`digest.matching.query.category_matches`)."""
        memo_key = ("category", pattern)
        found = self._leaf_memo.get(memo_key)
        if found is None:
            found = 0
            # An edition lists a few hundred distinct categories at most.
            for category, bits in self._category_bits.items():
                if category_matches(pattern, category):
                    found |= bits
            self._leaf_memo[memo_key] = found
        return found

    def leaf_bits(self, leaf: Term | Phrase | Prefix | Category, fld: str) -> int:
        if isinstance(leaf, Category):
            return self.category_bits(leaf.pattern)
        if isinstance(leaf, Term):
            return self.term_bits(leaf.key, fld)
        if isinstance(leaf, Prefix):
            return self.prefix_bits(leaf.stem, fld)
        return self.phrase_bits(leaf.keys, fld)


class _KeyOf(dict[str, str]):
    # Token -> its word_key, worked out the first time the token is met.
    def __missing__(self, token: str) -> str:
        key = self[token] = word_key(token)
        return key


def _aligned(
    sequence: tuple[str, ...], joins: dict[int, str], at: int, keys: tuple[str, ...]
) -> bool:
    # Whether ``keys`` stand consecutively from position ``at``, each key one token or the
    # compound of two (joins).
    if not keys:
        return True
    key, rest = keys[0], keys[1:]
    if at < len(sequence) and sequence[at] == key and _aligned(sequence, joins, at + 1, rest):
        return True
    return joins.get(at) == key and _aligned(sequence, joins, at + 2, rest)


class _Numbering(dict[str, int]):
    # Key -> its number: 0, 1, 2... in the order keys are first met.
    def __missing__(self, key: str) -> int:
        number = self[key] = len(self)
        return number


class _KeyPlaces:
    """Where each key stands in one field of every paper of an edition, to find phrases
    and words standing together in all papers at once with numpy.

    A place is coded as one int64: ``2 * (rank << shift | position)`` for a token,
    ``+ 1`` for a compound of that token and the next (it ends one token later), so
    places in code order end in non-decreasing order. ``codes[offsets[n]:offsets[n + 1]]`` are the
    places of key number ``numbers[key]``, ascending.
    """

    def __init__(self, texts: Sequence[str], joins: Mapping[int, Mapping[int, str]]):
        # ``texts``: each paper's keys joined by spaces with a space at each end
        # (Edition._joined); ``joins``: rank -> {position: compound key} (Edition._joins).
        numbers = _Numbering()
        key_of: list[int] = []
        lengths: list[int] = []
        for text in texts:
            sequence = text[1:-1].split(" ") if len(text) > 2 else []
            key_of += map(numbers.__getitem__, sequence)
            lengths.append(len(sequence))
        self.shift = max(lengths, default=0).bit_length()
        counts = np.array(lengths, dtype=np.int64)
        total = int(counts.sum())
        rank = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
        position = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        joined_key, joined_code = [], []
        for r, at_key in joins.items():
            for at, key in at_key.items():
                joined_key.append(numbers[key])
                joined_code.append(2 * (r << self.shift | at) + 1)
        keys = np.array(key_of + joined_key, dtype=np.int64)
        codes = np.concatenate(
            [2 * (rank << self.shift | position), np.array(joined_code, dtype=np.int64)]
        )
        # By key, then code: one sort of both in one int64.
        span = 2 * (len(texts) << self.shift) + 2
        both = np.sort(keys * span + codes)
        self.numbers: dict[str, int] = numbers
        self.codes = both % span
        self.offsets = np.concatenate(
            [[0], np.cumsum(np.bincount(keys, minlength=len(numbers)))]
        ).astype(np.int64)

    def _lists(self, keys: Iterable[str]) -> list[np.ndarray] | None:
        # The places of each key, or None when some key stands nowhere.
        lists = []
        for key in keys:
            n = self.numbers.get(key)
            if n is None:
                return None
            lists.append(self.codes[self.offsets[n] : self.offsets[n + 1]])
        return lists

    def phrase(self, keys: tuple[str, ...]) -> np.ndarray:
        """Ranks (int64, possibly repeated) of the papers where ``keys`` stand in a row,
        each a token or a compound of two (as ``Edition._spelling_bits`` checks one paper
        at a time): from the places where the first key ends, each next key must start at
        the next token. Places never run from one paper into the next (rank blocks of
        ``1 << shift`` positions, each paper shorter)."""
        lists = self._lists(keys)
        if lists is None:
            return np.zeros(0, dtype=np.int64)
        first = lists[0]
        ends = (first >> 1) + (first & 1)
        for each in lists[1:]:
            token = (ends + 1) << 1  # the code of a token standing right after
            i = np.searchsorted(each, token)
            last = len(each) - 1
            is_token = each[np.minimum(i, last)] == token
            # A compound there has the next code: right after the token, if one is there.
            is_compound = each[np.minimum(i + is_token, last)] == token + 1
            ends = np.concatenate([ends[is_token] + 1, ends[is_compound] + 2])
            if not ends.size:
                break
        return ends >> self.shift

    def together(self, spelling: tuple[str, ...], width: int) -> np.ndarray:
        """Ranks (int64, possibly repeated) of the papers where one window of ``width``
        consecutive tokens holds a place of every key of ``spelling``. A shortest such
        window starts where some place starts, and from a start the first place of a key
        in code order ends earliest: each start is checked with one search per key."""
        lists = self._lists(set(spelling))
        if lists is None:
            return np.zeros(0, dtype=np.int64)
        if len(lists) == 2:
            anchors, others = sorted(lists, key=len)
            return self._together_pair(anchors, others, width)
        starts = np.concatenate(lists) >> 1
        paper = starts >> self.shift
        last = starts + (width - 1)
        ok = np.ones(starts.shape, dtype=bool)
        for each in lists:
            i = np.searchsorted(each, starts << 1)
            code = each[np.minimum(i, len(each) - 1)]
            end = (code >> 1) + (code & 1)
            ok &= (i < len(each)) & (end <= last) & (end >> self.shift == paper)
        return paper[ok]

    def _together_pair(self, anchors: np.ndarray, others: np.ndarray, width: int) -> np.ndarray:
        # together() for two keys, from the places of the rarer one: of the other key's
        # places, only the last one starting before an anchor and the first one starting
        # at or after it (in code order it ends earliest) can share a window with it.
        start = anchors >> 1
        end = start + (anchors & 1)
        paper = start >> self.shift
        i = np.searchsorted(others, anchors & ~1)
        last = len(others) - 1
        after = others[np.minimum(i, last)]
        after_start = after >> 1
        ok = (i <= last) & (after_start >> self.shift == paper)
        ok &= np.maximum(end, after_start + (after & 1)) - start < width
        before_start = others[np.maximum(i - 1, 0)] >> 1
        ok |= (i > 0) & (before_start >> self.shift == paper) & (end - before_start < width)
        return paper[ok]


def _within(spans: dict[str, list[int]], wanted: frozenset[str], width: int) -> bool:
    # Whether one window of ``width`` consecutive tokens holds a span of every wanted key
    # (spans as Edition._key_spans codes them: first token 2 * p, + 1 when it ends at p + 1).
    # A shortest such window starts where some span starts; from a start, the first span
    # in code order ends earliest.
    lists = []
    for key in wanted:
        each = spans.get(key)
        if not each:
            return False
        lists.append(each)
    if len(lists) == 2:  # as _KeyPlaces._together_pair, one paper
        anchors, others = sorted(lists, key=len)
        for code in anchors:
            start = code >> 1
            end = start + (code & 1)
            i = bisect_left(others, code & ~1)
            if i < len(others) and max(end, (others[i] >> 1) + (others[i] & 1)) - start < width:
                return True
            if i and end - (others[i - 1] >> 1) < width:
                return True
        return False
    for start in sorted({code >> 1 for each in lists for code in each}):
        end = start + width - 1
        for each in lists:
            i = bisect_left(each, 2 * start)
            if i == len(each) or (each[i] >> 1) + (each[i] & 1) > end:
                break
        else:
            return True
    return False


def _bitset(ranks: np.ndarray, size: int) -> int:
    # The bitset of papers at ``ranks`` (int64, any order, repeats allowed).
    if not ranks.size:
        return 0
    flags = np.zeros(size, dtype=bool)
    flags[ranks] = True
    return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")


def index_papers(papers: Sequence[PaperText]) -> Edition:
    """Tokenise and index one edition's papers. Raises ``ValueError`` for repeated paper
    ids or a trend that is not a finite number."""
    return Edition(papers)


# ---------------------------------------------------------------------------------------
# Evaluating distinct queries with set algebra


class _Bank:
    """The distinct queries met so far and their results on one edition.

    Entry 0 is the empty query (matches nothing): it pads short rows and stands in for
    texts that do not parse. ``weak[i]``/``strong[i]`` are bitsets of the papers query
    ``i`` matches weakly/strongly (disjoint); ``together[i]`` those of its matches where
    its plain words stand together (0 unless ``phrases[i]``, its
    :func:`~digest.matching.query.together_phrase`, is set). A text of plain words and
    one with the same canonical query written otherwise (``state-space models`` and
    ``"state space" models``) are separate entries.
    """

    def __init__(self, edition: Edition):
        self.edition = edition
        self.weak: list[int] = [0]
        self.strong: list[int] = [0]
        self.matched: list[int] = [0]  # weak | strong
        self.together: list[int] = [0]
        self.with_together: list[int] = []  # the entries whose ``together`` is not 0
        self.phrases: list[Phrase | None] = [None]
        self.queries: list[Query | None] = [None]
        # Filled on first use: the papers each hit of query i is found in (Edition.hit_bits).
        self._hit_bits: list[tuple[tuple[Hit, int], ...] | None] = [()]
        # (filter text, topic id, query, paper rank) -> its Reason, shared by subscribers.
        self.reasons: dict[tuple[str | None, int | None, int, int], Reason] = {}
        # Ranking.reason_parts: wording function -> (filter text or topic id, rank) -> text.
        self.worded: dict[Callable[..., str], dict[tuple[str | int, int], str]] = {}
        self.invalid: dict[str, QueryError] = {}
        # Query text -> {word as the first text of its canonical query wrote it: as this
        # text writes it}, when they differ ("KV caches" after "kv cache"): reasons show
        # each subscriber their own words.
        self.relabel: dict[str, dict[str, str]] = {}
        self._by_canonical: dict[str, int] = {}
        # canonical text of a node -> (matches, strong bits of helping terms, strong bits
        # of hindering terms); shared by every query the node appears in.
        self._memo: dict[str, tuple[int, int, int]] = {}
        bank = self

        class _ByText(dict[str, int]):
            def __missing__(self, text: str) -> int:
                index = self[text] = bank._add_text(text)
                return index

        self.by_text = _ByText()

    def _add_text(self, text: str) -> int:
        try:
            query = parse_query(text)
        except QueryError as error:
            # Kept for the edition's life: without its traceback, which would keep the
            # frames of the chunk that met it (its subscribers, arrays and ranking).
            self.invalid[text] = error.with_traceback(None)
            log.warning("query %r does not parse and matches nothing: %s", text, error)
            return 0
        index = self.add(query)
        first = self.queries[index]
        if first is not query and first is not None:
            labels = {
                a.label: b.label
                for (a, _), (b, _) in zip(
                    iter_leaves(first.root), iter_leaves(query.root), strict=True
                )
                if a.label != b.label
            }
            phrase, mine = self.phrases[index], query.together
            if phrase is not None and mine is not None and phrase.label != mine.label:
                labels[phrase.label] = mine.label
            if labels:
                self.relabel[text] = labels
        return index

    def add(self, query: Query) -> int:
        """The entry of ``query``, evaluated on the edition the first time it is met.
        Whether its words may stand together is ``query.together``."""
        phrase = query.together
        key = query.canonical if phrase is None else f"{query.canonical}\x00{phrase.text}"
        index = self._by_canonical.get(key)
        if index is None:
            matches, helping, _ = self._node(query.root, keep=False)
            strong = matches & helping
            index = self._by_canonical[key] = len(self.weak)
            self.weak.append(matches & ~strong)
            self.strong.append(strong)
            self.matched.append(matches)
            together = 0
            if phrase is not None and matches:
                edition = self.edition
                together = edition.together_bits(phrase.keys, "title", matches)
                together |= edition.together_bits(phrase.keys, "abstract", matches & ~together)
            if together:
                self.with_together.append(index)
            self.together.append(together)
            self.phrases.append(phrase)
            self.queries.append(query)
            self._hit_bits.append(None)
        return index

    def hits(self, index: int, rank: int) -> tuple[Hit, ...]:
        """The hits of query ``index`` in the paper at ``rank`` (Edition.hits), put as
        :func:`together_hits` words it when its plain words stand together there."""
        hit_bits = self._hit_bits[index]
        if hit_bits is None:
            query = self.queries[index]
            assert query is not None  # only entry 0 has no query, and it has its hit bits
            hit_bits = self._hit_bits[index] = self.edition.hit_bits(query)
        hits = tuple(hit for hit, bits in hit_bits if bits >> rank & 1)
        phrase = self.phrases[index]
        if phrase is not None and self.together[index] >> rank & 1:
            bit = 1 << rank
            places = [
                p for p in ("title", "abstract") if self.edition.together_bits(phrase.keys, p, bit)
            ]
            hits = together_hits(phrase.label, places, hits)
        return hits

    def _node(self, node: Node, keep: bool = True) -> tuple[int, int, int]:
        # ``keep=False`` for whole queries: _by_canonical already shares those, and most
        # are never a part of another query, so memoising them would only cost memory.
        found = self._memo.get(node.text)
        if found is not None:
            return found
        edition = self.edition
        if isinstance(node, Not):
            matches, helping, hindering = self._node(node.child)
            found = (edition.everything & ~matches, hindering, helping)
        elif isinstance(node, And | Or):
            parts = [self._node(c) for c in node.children]
            matches = parts[0][0]
            if isinstance(node, And):
                for part in parts[1:]:
                    matches &= part[0]
            else:
                for part in parts[1:]:
                    matches |= part[0]
            helping = hindering = 0
            for part in parts:
                helping |= part[1]
                hindering |= part[2]
            found = (matches, helping, hindering)
        elif node.field == "any":
            title = edition.leaf_bits(node, "title")
            found = (title | edition.leaf_bits(node, "abstract"), title, 0)
        else:
            matches = edition.leaf_bits(node, node.field)
            found = (matches, 0 if node.field in ("abstract", "category") else matches, 0)
        if keep:
            self._memo[node.text] = found
        return found

    def arrays(self, indexes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``weak`` and ``strong`` of the queries at ``indexes``, as uint64 arrays of
        shape ``(len(indexes), words)``."""
        words = self.edition.words
        weak, strong = self.weak, self.strong
        return _to_rows([weak[i] for i in indexes], words), _to_rows(
            [strong[i] for i in indexes], words
        )


def _to_rows(bitsets: Sequence[int], words: int) -> np.ndarray:
    # Little-endian bytes of each int are its 64-bit words, lowest papers first.
    data = b"".join(x.to_bytes(words * 8, "little") for x in bitsets)
    return np.frombuffer(data, dtype="<u8").reshape(len(bitsets), words)


def tag_papers(topics: Mapping[int, str], papers: Sequence[PaperText]) -> dict[int, set[int]]:
    """Topic id → ids of the papers its query matches, for tagging papers at ingest.

    A topic whose query does not parse is logged and tags nothing.
    """
    edition = index_papers(papers)
    bank = _Bank(edition)
    tagged = {}
    for topic_id, text in topics.items():
        i = bank.by_text[text]
        tagged[topic_id] = {edition.papers[r].id for r in _bits(bank.weak[i] | bank.strong[i])}
    return tagged


# ---------------------------------------------------------------------------------------
# Ranking every subscriber


class PaperBits:
    """Papers of an edition as a bitset (bit ``r``: the paper at rank ``r``, as
    :class:`Edition` ranks them), tested by paper id (``pk in bits``) without listing
    them: a paper not in the edition is not in it."""

    __slots__ = ("bits", "rank_of")

    def __init__(self, bits: int, rank_of: Mapping[int, int]):
        self.bits = bits
        self.rank_of = rank_of

    def __contains__(self, paper_id: object) -> bool:
        rank = self.rank_of.get(paper_id) if isinstance(paper_id, int) else None
        return rank is not None and bool(self.bits >> rank & 1)


@dataclass(frozen=True)
class Ranking:
    """Every subscriber's top N, as arrays (row ``i`` is ``subscriber_ids[i]``).

    ``paper_ids`` (int64) and ``points`` (float64, whole or half points) have shape
    ``(subscribers, N)``, best first, padded with -1 and 0 when fewer than N papers
    match; ``scores`` (float64) is
    ``points`` plus the paper's trend fraction (0 in padding). ``invalid`` maps query
    texts that did not parse (they matched nothing) to their error; ``distinct_queries``
    counts the queries evaluated after identical ones were merged.
    """

    subscriber_ids: np.ndarray
    paper_ids: np.ndarray
    points: np.ndarray
    scores: np.ndarray
    invalid: dict[str, QueryError]
    distinct_queries: int
    edition: Edition
    bank: _Bank = field(repr=False)
    # Row r: (slot, k, bank index, paper rank, strong) of each item k (filters, then
    # topics) of subscriber r that matches the paper in that slot of ``paper_ids``, by
    # slot then k; ``strong`` when it matches strongly.
    matched_items: list[list[tuple[int, int, int, int, bool]]] = field(
        default_factory=list, repr=False
    )

    def reasons(
        self,
        paper_ids: Sequence[int],
        filter_texts: Sequence[str],
        topic_ids: Sequence[int],
        topics: Mapping[int, str],
    ) -> list[tuple[Reason, ...]]:
        """Why a subscriber with these filters and topics matched each of ``paper_ids``:
        one :class:`Reason` per filter, then topic, that matches the paper, with the hits
        of :func:`digest.matching.query.explain` (read from the edition's index). Call it
        only for the papers that are sent. Raises ``KeyError`` for a paper not in the
        edition.
        """
        bank, rank_of = self.bank, self.edition.rank_of
        by_text, weak, strong = bank.by_text, bank.weak, bank.strong
        items: list[tuple[str | None, int | None, int]]
        items = [(t, None, by_text[t]) for t in filter_texts]
        items += [(None, tid, by_text[topics[tid]]) for tid in topic_ids if tid in topics]
        out = []
        memo = bank.reasons
        for paper_id in paper_ids:
            rank = rank_of[paper_id]
            reasons = []
            for text, tid, i in items:
                if (weak[i] | strong[i]) >> rank & 1:
                    # Popular filters select popular papers for many subscribers.
                    key = (text, tid, i, rank)
                    reason = memo.get(key)
                    if reason is None:
                        is_strong = bool(strong[i] >> rank & 1)
                        hits = bank.hits(i, rank)
                        labels = bank.relabel.get(text if text is not None else topics[tid or 0])
                        if labels:
                            hits = tuple(Hit(labels.get(h.term, h.term), h.where) for h in hits)
                        reason = memo[key] = Reason(text, tid, is_strong, hits)
                    reasons.append(reason)
            out.append(tuple(reasons))
        return out

    def matching(
        self, filter_texts: Sequence[str], topic_ids: Sequence[int], topics: Mapping[int, str]
    ) -> PaperBits:
        """Every paper of the edition that any of these filters and topics matches, not
        only the top N the ranking kept (papers ``excluded`` from the ranking included).
        Arguments as for :meth:`reasons`; a text that does not parse and an unknown topic
        id match nothing. A few big-integer ORs, whatever the number of papers matched."""
        bank = self.bank
        bits = 0
        for text in filter_texts:
            bits |= bank.matched[bank.by_text[text]]
        for tid in topic_ids:
            if tid in topics:
                bits |= bank.matched[bank.by_text[topics[tid]]]
        return PaperBits(bits, self.edition.rank_of)

    def reason_parts(
        self,
        row: int,
        slots: Sequence[int],
        filter_texts: Sequence[str],
        topic_ids: Sequence[int],
        topics: Mapping[int, str],
        word: Callable[[str | None, int | None, tuple[Hit, ...]], str],
    ) -> list[tuple[tuple[str, ...], bool]]:
        """:meth:`reasons` of the papers in ``slots`` (ascending) of row ``row``, each
        already worded: ``word(filter_text, topic_id, hits)`` of every :class:`Reason`, in
        the same order, and whether any of them is strong (:attr:`Reason.strong`).

        ``filter_texts`` and ``topic_ids`` are the row's subscriber's, as ranked, and
        ``topics`` maps topic ids to their query texts. Which filters and topics match
        which slot was found for the whole chunk at once by :func:`rank_subscribers`; a
        wording is remembered per (filter text or topic, paper) on the edition, so
        ``word`` must depend on nothing else (the edition keeps one memo per ``word``
        function)."""
        bank = self.bank
        relabel = bank.relabel
        memo = bank.worded.get(word)
        if memo is None:
            memo = bank.worded[word] = {}
        n_filters = len(filter_texts)
        width = slots[-1] + 1 if slots else 0
        parts: list[list[str] | None] = [None] * width
        for slot in slots:
            parts[slot] = []
        strong = [False] * width
        for slot, k, i, rank, is_strong in self.matched_items[row]:
            if slot >= width:  # items come by slot
                break
            found = parts[slot]
            if found is None:
                continue
            if is_strong:
                strong[slot] = True
            if k < n_filters:
                text, tid = filter_texts[k], None
                key: str | int = text
            else:
                text, tid = None, topic_ids[k - n_filters]
                key = tid
            part = memo.get((key, rank))
            if part is None:
                hits = bank.hits(i, rank)
                labels = relabel.get(text if text is not None else topics[tid or 0])
                if labels:  # the subscriber's own words (see _Bank.relabel)
                    hits = tuple(Hit(labels.get(h.term, h.term), h.where) for h in hits)
                part = memo[key, rank] = word(text, tid, hits)
            found.append(part)
        return [(tuple(parts[slot] or ()), strong[slot]) for slot in slots]


def _full_add(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # One carry-save step, bitwise: three bits of one weight in, a sum bit of that weight
    # and a carry bit of twice that weight out.
    t = a ^ b
    carry = a & b
    carry |= t & c
    t ^= c
    return t, carry


def _bit_planes(inputs: dict[int, list[np.ndarray]], n_planes: int, shape: tuple[int, int]):
    """Add bitsets bit-sliced. ``inputs[w]`` are bitsets of weight ``2**w``; returns
    ``n_planes`` bitsets where plane ``k`` holds bit ``k`` of each paper's sum."""
    planes = []
    for weight in range(n_planes):
        column = inputs.get(weight, [])
        while len(column) > 2:
            s, carry = _full_add(column.pop(), column.pop(), column.pop())
            column.append(s)
            inputs.setdefault(weight + 1, []).append(carry)
        if len(column) == 2:
            a, b = column
            inputs.setdefault(weight + 1, []).append(a & b)
            column = [a ^ b]
        planes.append(column[0] if column else np.zeros(shape, dtype=np.uint64))
    return planes


def _row_counts(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x).sum(axis=1, dtype=np.int64)


def _lowest_bits(words: np.ndarray, count: np.ndarray, limit: int) -> np.ndarray:
    # The lowest ``count[i]`` set bits of ``words[i]`` (count[i] <= limit).
    out = np.zeros_like(words)
    words = words.copy()
    for i in range(limit):
        low = words & (~words + np.uint64(1))
        out |= np.where(count > i, low, np.uint64(0))
        words ^= low
    return out


def _top_of_chunk(planes: list[np.ndarray], top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ranks and points of each row's top ``top_n`` papers, best first, from the bit
    planes of the points. Returns int64 ``(rows, top_n)`` ranks (-1 padding) and points.

    Radix selection from the highest plane down: rows whose papers with this bit set are
    fewer than still needed take them all and continue with the rest; other rows continue
    with those papers only. What is left at the end ties on points, and rank order (bit
    order) decides.
    """
    rows, words = planes[0].shape
    zero = np.uint64(0)
    candidates = planes[0].copy()
    for plane in planes[1:]:
        candidates |= plane
    need = np.full(rows, top_n, dtype=np.int64)
    chosen = np.zeros_like(candidates)
    for plane in reversed(planes):
        with_bit = candidates & plane
        count = _row_counts(with_bit)
        fits = count < need
        wide = fits[:, None]
        chosen |= np.where(wide, with_bit, zero)
        candidates = np.where(wide, candidates & ~plane, with_bit)
        need -= np.where(fits, count, 0)
    # Take the first ``need`` papers of ``candidates`` in rank order.
    per_word = np.bitwise_count(candidates).astype(np.int64)
    upto = np.cumsum(per_word, axis=1)
    before = upto - per_word
    need2 = need[:, None]
    chosen |= np.where(upto <= need2, candidates, zero)
    split_r, split_w = np.nonzero((before < need2) & (upto > need2))
    if split_r.size:
        chosen[split_r, split_w] |= _lowest_bits(
            candidates[split_r, split_w], need[split_r] - before[split_r, split_w], top_n
        )
    # Read the chosen bits out (at most top_n per row).
    nz_r, nz_w = np.nonzero(chosen)
    values = chosen[nz_r, nz_w]
    found_r, found_pos = [], []
    for _ in range(top_n):
        live = values != zero
        if not live.any():
            break
        nz_r, nz_w, values = nz_r[live], nz_w[live], values[live]
        low = values & (~values + np.uint64(1))
        found_r.append(nz_r)
        found_pos.append(nz_w * 64 + np.bitwise_count(low - np.uint64(1)).astype(np.int64))
        values = values ^ low
    ranks = np.full((rows, top_n), -1, dtype=np.int64)
    points = np.zeros((rows, top_n), dtype=np.int64)
    if not found_r:
        return ranks, points
    r = np.concatenate(found_r)
    pos = np.concatenate(found_pos)
    pts = np.zeros(r.size, dtype=np.int64)
    word_of, bit_of = pos >> 6, (pos & 63).astype(np.uint64)
    for k, plane in enumerate(planes):
        pts |= ((plane[r, word_of] >> bit_of) & np.uint64(1)).astype(np.int64) << k
    span = words * 64
    max_points = (1 << len(planes)) - 1
    order = np.argsort((r * (max_points + 1) + (max_points - pts)) * span + pos, kind="stable")
    r, pos, pts = r[order], pos[order], pts[order]
    starts = np.searchsorted(r, np.arange(rows))
    slot = np.arange(r.size) - starts[r]
    ranks[r, slot] = pos
    points[r, slot] = pts
    return ranks, points


_NARROW_BLOCK = 4
"""Rows of up to this many filters and topics share a block; wider rows share one with
rows at most twice as wide as the block's narrowest."""


def rank_subscribers(
    edition: Edition,
    subscribers: Sequence[tuple[int, Sequence[str], Sequence[int]]],
    topics: Mapping[int, str],
    *,
    excluded: Mapping[int, Collection[int]] | None = None,
    top_n: int = 10,
    chunk: int = 2048,
) -> Ranking:
    """Every subscriber's top ``top_n`` papers of ``edition``, as arrays (see
    :class:`Ranking`; formula in the module docstring).

    ``subscribers`` are ``(subscriber_id, filter_texts, topic_ids)``; ``topics`` maps topic
    id → query text; ``excluded`` maps subscriber id → paper ids never to select (already
    sent). Filters and topics that do not parse, and unknown topic ids, match nothing.
    At most ``chunk`` subscribers are added up at a time, those of similar width
    (:data:`_NARROW_BLOCK`; working memory ≈ ``chunk × words × 8`` bytes × 4 per filter
    or topic of the widest subscriber). Raises ``ValueError`` when
    ``top_n`` < 1.
    """
    if top_n < 1:
        raise ValueError("top_n must be at least 1")
    # Compiling allocates hundreds of thousands of small acyclic objects while the
    # caller's heap may hold millions (the subscribers); each full collection would walk
    # them all, for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        bank, items, subscriber_ids = _compile(edition, subscribers, topics)
    finally:
        if collecting:
            gc.enable()
    excluded_rows, excluded_bits = _exclusion_rows(edition, subscriber_ids, excluded or {})
    # Only the rows of the queries these subscribers use, renumbered: the edition's bank
    # holds every query met so far.
    present = np.zeros(len(bank.weak), dtype=bool)
    present[items] = True
    used_queries = np.flatnonzero(present)
    renumber = np.cumsum(present, dtype=np.int32) - 1
    local = renumber[items]
    weak, strong = bank.arrays(used_queries.tolist())
    # The few used queries with papers where their plain words stand together: their
    # bitsets, then a row of zeros; ``together_row`` maps each used query to its row.
    with_together = np.array(bank.with_together, dtype=np.int64)
    with_together = with_together[present[with_together]]
    together = _to_rows([bank.together[i] for i in with_together.tolist()] + [0], edition.words)
    together_row = np.full(len(used_queries), len(with_together), dtype=np.int32)
    together_row[renumber[with_together]] = np.arange(len(with_together), dtype=np.int32)
    invalid = {}
    if bank.invalid:
        # The edition's invalid texts these subscribers use: filters, then topics.
        used_texts = dict.fromkeys(chain.from_iterable(texts for _, texts, _ in subscribers))
        used_texts.update(
            dict.fromkeys(topics[t] for _, _, ids in subscribers for t in ids if t in topics)
        )
        invalid = {t: bank.invalid[t] for t in used_texts if t in bank.invalid}

    matched = weak | strong
    n_subs = len(subscriber_ids)
    matched_items: list[list[tuple[int, int, int, int, bool]]] = [[] for _ in range(n_subs)]
    paper_ids = np.full((n_subs, top_n), -1, dtype=np.int64)
    points = np.zeros((n_subs, top_n), dtype=np.float64)
    scores = np.zeros((n_subs, top_n), dtype=np.float64)
    # Rows are added up in blocks of similar width (filters and topics), narrowest
    # first: a block pads every row to its widest, and the widths run from 1 to 20+.
    # (A row's width: up to its last query that parses; one that does not is a 0.)
    nonzero = items != 0
    widths = np.where(nonzero.any(axis=1), items.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)
    order = np.argsort(widths, kind="stable")
    position = np.empty(n_subs, dtype=np.int64)
    position[order] = np.arange(n_subs)
    by_position = np.argsort(position[excluded_rows], kind="stable")
    excluded_at, excluded_bits = position[excluded_rows][by_position], excluded_bits[by_position]
    sorted_widths = widths[order]
    lo = 0
    while lo < n_subs:
        widest = max(_NARROW_BLOCK, 2 * int(sorted_widths[lo]))
        hi = min(lo + chunk, int(np.searchsorted(sorted_widths, widest, side="right")))
        rows = order[lo:hi]
        block = items[rows]
        used = int(sorted_widths[hi - 1])
        if used == 0 or edition.size == 0:  # nobody here has a query, or nothing to match
            lo = hi
            continue
        index = np.ascontiguousarray(local[rows, :used].T)
        # Points are added up in halves when some item's words stand together in some
        # paper: those items (few) are a third kind of input, each row's taken first.
        together_at = together_row[index]
        extra = int((together_at < len(with_together)).sum(axis=0).max(initial=0))
        if extra:
            picked = np.sort(together_at, axis=0)[:extra]  # the zero row sorts last
            inputs = {0: list(together[picked]), 1: list(weak[index]), 2: list(strong[index])}
            unit, most = 0.5, 4 * used + extra
        else:  # whole points (weak 1, strong 2): one bit plane fewer
            inputs = {0: list(weak[index]), 1: list(strong[index])}
            unit, most = 1.0, 2 * used
        planes = _bit_planes(inputs, most.bit_length(), (hi - lo, edition.words))
        a, b = np.searchsorted(excluded_at, [lo, hi])
        if b > a:
            at_rows, keep = excluded_at[a:b] - lo, ~excluded_bits[a:b]
            for plane in planes:
                plane[at_rows] &= keep
        ranks, got = _top_of_chunk(planes, top_n)
        found = ranks >= 0
        safe = np.where(found, ranks, 0)
        paper_ids[rows] = np.where(found, edition.paper_ids[safe], -1)
        got_points = got * unit
        points[rows] = got_points
        scores[rows] = np.where(found, got_points + edition.fraction[safe], 0.0)
        # Which of each row's items match each chosen paper, for the reasons: one gather
        # for the block instead of a test per (paper, item) later.
        shift = (safe & 63).astype(np.uint64)[:, :, None]
        at = (index.T[:, None, :], (safe >> 6)[:, :, None])
        hit = (matched[at] >> shift) & np.uint64(1)
        r, slot, k = np.nonzero(hit.astype(bool) & found[:, :, None])  # by r, slot, k
        strong_hit = (strong[at][r, slot, k] >> shift[r, slot, 0]) & np.uint64(1)
        entries = list(
            zip(
                slot.tolist(),
                k.tolist(),
                block[r, k].tolist(),
                safe[r, slot].tolist(),
                strong_hit.astype(bool).tolist(),
                strict=True,
            )
        )
        starts = np.flatnonzero(np.diff(r, prepend=-1))  # each row's first entry
        ends = np.append(starts[1:], len(r))[: len(starts)]
        for row, start, end in zip(
            rows[r[starts]].tolist(), starts.tolist(), ends.tolist(), strict=True
        ):
            matched_items[row] = entries[start:end]
        lo = hi
    return Ranking(
        subscriber_ids,
        paper_ids,
        points,
        scores,
        invalid=invalid,
        distinct_queries=int(np.count_nonzero(used_queries)),
        edition=edition,
        bank=bank,
        matched_items=matched_items,
    )


def _compile(
    edition: Edition,
    subscribers: Sequence[tuple[int, Sequence[str], Sequence[int]]],
    topics: Mapping[int, str],
) -> tuple[_Bank, np.ndarray, np.ndarray]:
    """The bank of distinct queries, each subscriber's row of query indexes (filters then
    topics, int32, padded with 0), and the subscriber ids (int64)."""
    bank = edition.queries()
    by_text = bank.by_text
    topic_index = {tid: by_text[text] for tid, text in topics.items()}
    n_subs = len(subscribers)
    subscriber_ids = np.fromiter((s[0] for s in subscribers), dtype=np.int64, count=n_subs)
    n_filters = np.fromiter((len(s[1]) for s in subscribers), dtype=np.int32, count=n_subs)
    n_topics = np.fromiter((len(s[2]) for s in subscribers), dtype=np.int32, count=n_subs)
    # The dict's __missing__ parses and evaluates a text the first time it is seen.
    filter_items = np.fromiter(
        map(by_text.__getitem__, chain.from_iterable(s[1] for s in subscribers)),
        dtype=np.int32,
        count=int(n_filters.sum()),
    )
    topic_items = np.fromiter(
        (topic_index.get(t, 0) for t in chain.from_iterable(s[2] for s in subscribers)),
        dtype=np.int32,
        count=int(n_topics.sum()),
    )
    width = max(1, int((n_filters + n_topics).max(initial=0)))
    items = np.zeros((n_subs, width), dtype=np.int32)
    everyone = np.arange(n_subs, dtype=np.int32)
    row = np.repeat(everyone, n_filters)
    items[row, _positions_in_row(n_filters)] = filter_items
    row = np.repeat(everyone, n_topics)
    items[row, _positions_in_row(n_topics) + n_filters[row]] = topic_items
    return bank, items, subscriber_ids


def _positions_in_row(counts: np.ndarray) -> np.ndarray:
    # For rows holding counts[i] items laid end to end: each item's position in its row.
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int32) - np.repeat(starts, counts)


def _exclusion_rows(
    edition: Edition, subscriber_ids: np.ndarray, excluded: Mapping[int, Collection[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (ascending int64) with papers to leave out, and for each a uint64 bitset row
    of those papers (shape ``(rows, words)``)."""
    masks: dict[int, int] = {}
    rank_of = edition.rank_of
    pairs: Iterable[tuple[int, Collection[int] | None]] = excluded.items()
    if len(excluded) > len(subscriber_ids):  # a mapping for more than these subscribers
        pairs = ((sid, excluded.get(sid)) for sid in subscriber_ids.tolist())
    for sid, paper_ids in pairs:
        mask = 0
        for pid in paper_ids if paper_ids is not None else ():
            rank = rank_of.get(pid)
            if rank is not None:
                mask |= 1 << rank
        if mask:
            masks[sid] = mask
    order = np.argsort(subscriber_ids, kind="stable")
    known = subscriber_ids[order]
    sids = np.fromiter(masks, dtype=np.int64, count=len(masks))
    at = np.minimum(np.searchsorted(known, sids), max(len(known) - 1, 0))
    present = (known[at] == sids) if len(known) else np.zeros(len(sids), dtype=bool)
    rows = order[at[present]]
    bitsets = _to_rows([masks[s] for s in sids[present].tolist()], edition.words)
    by_row = np.argsort(rows, kind="stable")
    return rows[by_row], bitsets[by_row]


# ---------------------------------------------------------------------------------------
# The simple API, with reasons


@dataclass(frozen=True, slots=True)
class Reason:
    """Why one filter or topic selected a paper: ``filter`` (its text as written) or
    ``topic_id``, whether the match is ``strong`` (title or author hit), and the ``hits``."""

    filter: str | None
    topic_id: int | None
    strong: bool
    hits: tuple[Hit, ...]

    def __str__(self) -> str:
        what = (
            f"your filter `{self.filter}`" if self.filter is not None else f"topic {self.topic_id}"
        )
        found = ", ".join(str(h) for h in self.hits)
        return f"matched {what} ({found})" if found else f"matched {what}"


@dataclass(frozen=True, slots=True)
class Match:
    """One selected paper: ``score`` as in the module docstring, ``reasons`` in the order
    of the subscriber's filters, then topics."""

    paper_id: int
    score: float
    reasons: tuple[Reason, ...]


def match_edition(
    papers: Sequence[PaperText] | Edition,
    subscribers: Sequence[tuple[int, Sequence[str], Sequence[int]]],
    topics: Mapping[int, str],
    *,
    excluded: Mapping[int, Collection[int]] | None = None,
    top_n: int = 10,
) -> dict[int, list[Match]]:
    """Subscriber id → their top ``top_n`` :class:`Match` es, best first (empty list when
    nothing matches), with reasons.

    ``papers`` may be an :class:`Edition` already built by :func:`index_papers`, to index
    an edition once for many calls. Other arguments as for :func:`rank_subscribers`.
    """
    edition = papers if isinstance(papers, Edition) else index_papers(papers)
    ranking = rank_subscribers(edition, subscribers, topics, excluded=excluded, top_n=top_n)
    result: dict[int, list[Match]] = {}
    for row, (sid, filter_texts, topic_ids) in enumerate(subscribers):
        found = ranking.paper_ids[row] >= 0
        paper_ids = ranking.paper_ids[row][found].tolist()
        scores = ranking.scores[row][found].tolist()
        reasons = ranking.reasons(paper_ids, filter_texts, topic_ids, topics)
        result[sid] = [Match(*m) for m in zip(paper_ids, scores, reasons, strict=True)]
    return result


def query_bits(edition: Edition, text: str) -> tuple[int, int]:
    """``(weak, strong)``: bitsets of the papers of ``edition`` (bit ``r`` is the paper at
    rank ``r``) the filter ``text`` matches weakly and strongly (disjoint; see the module
    docstring). A text that does not parse matches nothing. One filter's ranking is then
    read off directly, with :func:`together_bits` for a filter of plain words, as
    :func:`rank_subscribers` would rank them, without its per-call set-up."""
    bank = _Bank(edition)
    found = bank.by_text[text]
    return bank.weak[found], bank.strong[found]


def together_bits(edition: Edition, text: str) -> int:
    """The bitset of the papers of ``edition`` that the filter ``text`` matches and where
    its plain words stand together (module docstring); 0 for any other filter and for a
    text that does not parse."""
    bank = _Bank(edition)
    return bank.together[bank.by_text[text]]


# ---------------------------------------------------------------------------------------
# The specification of the ranking


def _reference_together(query: Query, paper: PaperText) -> tuple[Phrase | None, list[str]]:
    # The filter's phrase when it is made of plain words, and where they stand together.
    phrase = together_phrase(query.source) if query.source else None
    if phrase is None:
        return None, []
    return phrase, reference_together(phrase, paper.title, paper.abstract)


def reference_points(query: Query, paper: PaperText) -> float:
    """Points ``query`` gives ``paper`` by the reference evaluator: 0 when it does not
    match, :data:`STRONG_POINTS` when a helping term is in the title or authors,
    :data:`WEAK_POINTS` otherwise, plus :data:`TOGETHER_POINTS` when ``query`` is made of
    plain words (``query.source``) that stand together in the paper
    (:func:`digest.matching.query.reference_together`)."""
    if not reference_match(query, paper.title, paper.abstract, paper.authors, paper.categories):
        return 0
    hits = explain(query, paper.title, paper.abstract, paper.authors, paper.categories)
    strong = any(h.where in ("title", "author") for h in hits)
    points: float = STRONG_POINTS if strong else WEAK_POINTS
    if _reference_together(query, paper)[1]:
        points += TOGETHER_POINTS
    return points


def reference_hits(query: Query, paper: PaperText) -> tuple[Hit, ...]:
    """The hits a reason lists for ``query`` on ``paper`` (which it must match):
    :func:`digest.matching.query.explain`, put as :func:`together_hits` says when the
    query's plain words stand together in the paper."""
    hits = explain(query, paper.title, paper.abstract, paper.authors, paper.categories)
    phrase, places = _reference_together(query, paper)
    if phrase is None or not places:
        return tuple(hits)
    return together_hits(phrase.label, places, hits)


def together_hits(label: str, places: Sequence[str], hits: Sequence[Hit]) -> tuple[Hit, ...]:
    """The hits of a filter of plain words whose words stand together in ``places``
    (``title`` and/or ``abstract``, in that order), kept short: the phrase ``label`` in
    the first of them (``"state space models" in title``), and when that is the
    abstract, the words found in the title (they are what makes the match strong). The
    other hits say nothing more and are left out."""
    if places[0] == "title":
        return (Hit(label, "title"),)
    return (Hit(label, places[0]), *(hit for hit in hits if hit.where == "title"))


def reference_top(
    papers: Sequence[PaperText],
    queries: Sequence[Query | None],
    *,
    excluded: Collection[int] = (),
    top_n: int = 10,
) -> list[tuple[int, float]]:
    """One subscriber's top ``top_n`` as ``(paper_id, points)``, computed paper by paper
    with :func:`reference_points` (``None`` queries match nothing) and ordered by points,
    then trend (higher first), then paper id."""
    scored = []
    for paper in papers:
        if paper.id in excluded:
            continue
        points = sum(reference_points(q, paper) for q in queries if q is not None)
        if points:
            scored.append((-points, -paper.trend, paper.id))
    scored.sort()
    return [(pid, -neg) for neg, _, pid in scored[:top_n]]
