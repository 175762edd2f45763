"""Filter previews: which recent papers a query matches, answered from one index.

The public ``/preview.json`` and the settings page's Preview buttons ask this for every
keystroke or click. Scanning every recent paper with the reference evaluator cost
seconds a request with thousands of papers; instead the recent papers are indexed once
by the engine (:func:`digest.matching.engine.index_papers`) and each preview is set
algebra on that index (:func:`digest.matching.engine.query_bits`): well under a
millisecond for 5,000 papers.

The index is built once per process per *edition of the recent papers*, keyed by
:func:`edition_key` — the latest ingest run, the number of recent papers, and the
hidden state — so an ingest, a hidden or shown paper or a merge makes a preview rebuild
it. The key costs two aggregate queries (milliseconds with thousands of papers), so a
process reads it at most once every ``settings.PREVIEW_INDEX_TTL`` seconds (5): a
change shows in previews within that time. A moderator's edit of a title shows at the
next ingest or hide. Work per preview is bounded: the
query is at most :data:`~digest.matching.query.MAX_QUERY_LENGTH` characters and the index
holds at most ``settings.PREVIEW_MAX_PAPERS`` papers (the most upvoted).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from digest.matching.engine import Edition, PaperText, index_papers, query_bits, together_bits
from digest.matching.query import plain_words, query_warnings, together_phrase
from digest.models import IngestRun, Paper

__all__ = [
    "PREVIEW_DAYS",
    "PREVIEW_LIMIT",
    "Preview",
    "PreviewIndex",
    "edition_key",
    "plain_phrase",
    "preview",
    "preview_result",
    "recent",
]

PREVIEW_DAYS = 7
"""A preview looks at the papers seen on the pages in this many past days."""
PREVIEW_LIMIT = 10
"""Papers a preview lists (it counts them all)."""

# Memoised leaf results an index may keep (each a bitset of the papers): strangers'
# queries add to them, so they are dropped past this many.
_MAX_MEMO = 20_000


def recent(now: datetime | None = None):  # type: ignore[no-untyped-def]
    """Visible papers seen in the last :data:`PREVIEW_DAYS` days, most upvoted first
    (then newest, then highest id): a queryset."""
    since = (now or timezone.now()) - timedelta(days=PREVIEW_DAYS)
    return (
        Paper.objects.visible()
        .filter(last_seen_at__gte=since)
        # Unknown upvotes (NULL) after every known count, PostgreSQL sorting them first.
        .order_by(F("upvotes").desc(nulls_last=True), "-published_on", "-id")
    )


def edition_key(now: datetime | None = None) -> tuple[object, ...]:
    """What the recent papers' index depends on: the hour of the 7-day window's start,
    the latest ingest run id, and the count, hidden count and latest hide time of the
    papers seen in the window. One aggregate query each."""
    now = now or timezone.now()
    since = now - timedelta(days=PREVIEW_DAYS)
    latest_run = IngestRun.objects.aggregate(latest=Max("id"))["latest"]
    papers = Paper.objects.filter(last_seen_at__gte=since).aggregate(
        n=Count("id"),
        hidden=Count("id", filter=Q(hidden_at__isnull=False)),
        last_hidden=Max("hidden_at"),
        last_id=Max("id"),
    )
    hour = since.replace(minute=0, second=0, microsecond=0)
    return (
        hour,
        latest_run,
        papers["n"],
        papers["hidden"],
        papers["last_hidden"],
        papers["last_id"],
    )


@dataclass
class PreviewIndex:
    """The recent papers indexed for previews: ``edition`` ranks them in the order of
    :func:`recent` (its ``trend`` is minus the position there) and ``papers`` maps each
    id to its row (``id``, ``title``, ``arxiv_id``, ``upvotes``, ``published_on``
    loaded)."""

    key: tuple[object, ...]
    edition: Edition
    papers: dict[int, Paper]


def build_index(key: tuple[object, ...], now: datetime | None = None) -> PreviewIndex:
    """Read the recent papers (at most ``settings.PREVIEW_MAX_PAPERS``) and index them."""
    rows = list(
        recent(now).only(
            "id",
            "title",
            "abstract",
            "authors",
            "categories",
            "upvotes",
            "published_on",
            "arxiv_id",
        )[: settings.PREVIEW_MAX_PAPERS]
    )
    texts = [
        PaperText(
            id=p.pk,
            title=p.title,
            abstract=p.abstract,
            authors=tuple(p.authors or ()),
            categories=tuple(p.categories or ()),
            trend=-float(position),
        )
        for position, p in enumerate(rows)
    ]
    for p in rows:  # kept in memory for the process: only what a preview shows
        p.abstract = ""
        p.authors = []
    return PreviewIndex(key=key, edition=index_papers(texts), papers={p.pk: p for p in rows})


_lock = threading.Lock()
_current: PreviewIndex | None = None
_checked_at = float("-inf")  # time.monotonic() of the last edition_key read


def current_index(now: datetime | None = None) -> PreviewIndex:
    """This process's index of the recent papers, rebuilt when :func:`edition_key`
    changed since it was built; the key is read at most once every
    ``settings.PREVIEW_INDEX_TTL`` seconds (one thread builds; the others wait)."""
    global _current, _checked_at
    index = _current
    if index is not None and time.monotonic() - _checked_at < settings.PREVIEW_INDEX_TTL:
        return index
    key = edition_key(now)
    if index is not None and index.key == key:
        _checked_at = time.monotonic()
        return index
    with _lock:
        if _current is None or _current.key != key:
            _current = build_index(key, now)
        _checked_at = time.monotonic()
        return _current


def plain_phrase(text: str) -> str | None:
    """The phrase a filter of two or more plain words would be in quotes, in the order
    written (``state space models`` → ``"state space models"``), or ``None`` when
    ``text`` is anything else (one word, quotes, operators, fields, prefixes,
    exclusions or groups; :func:`digest.matching.query.together_phrase`): only plain
    words scatter."""
    if together_phrase(text) is None:
        return None
    return '"' + " ".join(plain_words(text) or ()) + '"'


@dataclass(frozen=True)
class Preview:
    """What a preview shows: ``count`` recent papers match, ``papers`` the first
    :data:`PREVIEW_LIMIT` of them; for a filter of plain words, ``phrase`` is it in
    quotes, ``together`` how many of the matches hold its words together (as the
    phrase or within a few words, as the digest ranks them; they are listed first) and
    ``as_phrase`` how many of those hold the exact phrase (what quoting would keep),
    else ``None``, 0 and 0; ``warnings`` are :func:`digest.matching.query.query_warnings`."""

    count: int
    papers: list[Paper]
    phrase: str | None = None
    together: int = 0
    as_phrase: int = 0
    warnings: tuple[str, ...] = ()


def preview_result(text: str, now: datetime | None = None) -> Preview:
    """The :class:`Preview` of the filter ``text``, ranked as a digest ranks papers
    (title and author matches first, then by upvotes), except that papers where the
    words of a plain-word filter stand together (as the phrase, or within a few words:
    :func:`digest.matching.engine.together_bits`) come before those where they are
    scattered. ``text`` must parse (:func:`digest.matching.query.parse_query`); one that
    does not matches nothing."""
    index = current_index(now)
    edition = index.edition
    weak, strong = query_bits(edition, text)
    together = as_phrase = 0
    phrase = plain_phrase(text)
    if phrase is not None:
        together = together_bits(edition, text)
        phrase_weak, phrase_strong = query_bits(edition, phrase)
        as_phrase = (phrase_weak | phrase_strong) & (weak | strong)
    ranks: list[int] = []
    # Together first, then the rest; strong before weak within each, each in rank order.
    for bits in (strong & together, weak & together, strong & ~together, weak & ~together):
        while bits and len(ranks) < PREVIEW_LIMIT:
            low = bits & -bits
            ranks.append(low.bit_length() - 1)
            bits ^= low
    memo = getattr(edition, "_leaf_memo", None)
    if memo is not None and len(memo) > _MAX_MEMO:
        memo.clear()
    return Preview(
        count=(weak | strong).bit_count(),
        papers=[index.papers[edition.papers[r].id] for r in ranks],
        phrase=phrase,
        together=together.bit_count(),
        as_phrase=as_phrase.bit_count(),
        warnings=tuple(query_warnings(text)),
    )


def preview(text: str, now: datetime | None = None) -> tuple[int, list[Paper]]:
    """``(how many recent papers the filter ``text`` matches, the first
    :data:`PREVIEW_LIMIT` of them)``, as :func:`preview_result` ranks them."""
    result = preview_result(text, now)
    return result.count, result.papers
