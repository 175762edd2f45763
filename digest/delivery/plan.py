"""Planning: claim each subscriber's edition and choose its papers, once.

The :class:`~digest.models.Digest` row of an edition is unique per (subscriber, period)
and its :class:`~digest.models.DigestItem` rows per (subscriber, paper), so planning
again changes nothing and a paper never goes to the same subscriber twice.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from django.db import DatabaseError, transaction
from django.db import connection as db
from django.db.models import Max

from digest.delivery.compose import new_message_id
from digest.matching.ranking import (
    PINNED_REASON,
    Candidate,
    PreparedEdition,
    Selection,
    SubscriberSpec,
    prepare_edition,
    select_for_subscribers,
)
from digest.matching.trend import trend_score, upvote_growth
from digest.models import Digest, DigestItem, Feedback, Paper, PaperEmbedding, Sighting, Topic
from digest.relevance.embed import DIMENSIONS, MODEL_NAME, READABLE_MODELS, load_vectors
from digest.relevance.profile import rebuild_profile
from digest.relevance.score import EditionVectors, Learner
from digest.relevance.vectors import from_bytes, stack
from subscriptions.models import Filter, Subscriber
from subscriptions.schedule import window

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["bounded_reason", "error_text", "plan_digest", "plan_digests"]

_TABLE = Digest._meta.db_table
_ITEM_COLUMNS = "(digest_id, subscriber_id, paper_id, rank, reason, suggested)"
_ITEM_SQL = (
    f"INSERT INTO {DigestItem._meta.db_table} {_ITEM_COLUMNS} "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
_ITEMS_SQL = (
    f"INSERT INTO {DigestItem._meta.db_table} {_ITEM_COLUMNS} "
    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::int[], %s::text[], "
    "%s::boolean[]) ON CONFLICT DO NOTHING"
)


def error_text(exc: BaseException) -> str:
    """An error as stored in ``Digest.last_error``: its type and message, at most 2,000
    characters."""
    return f"{type(exc).__name__}: {exc}"[:2000]


# --- Planning ---------------------------------------------------------------------------


def _load_candidates(since: datetime, now: datetime) -> list[Candidate]:
    """Visible papers last seen at or after ``since``, each with its trend
    (:func:`digest.matching.trend.trend_score` at ``now``)."""
    rows = list(
        Paper.objects.visible()
        .filter(last_seen_at__gte=since)
        .values_list(
            "id",
            "title",
            "abstract",
            "authors",
            "upvotes",
            "published_on",
            "first_seen_at",
            "last_seen_at",
            "pinned_at",
            "categories",
        )
    )
    gained = upvote_growth([row[0] for row in rows])
    return [
        Candidate(
            id=pk,
            title=title,
            abstract=abstract,
            authors=tuple(authors or ()),
            trend=trend_score(
                upvotes or 0, gained.get(pk, 0), published_on or first_seen.date(), now
            ),
            last_seen_at=last_seen,
            pinned_at=pinned,
            categories=tuple(categories or ()),
        )
        for (
            pk,
            title,
            abstract,
            authors,
            upvotes,
            published_on,
            first_seen,
            last_seen,
            pinned,
            categories,
        ) in rows
    ]


# The editions this worker process prepared lately: what they were built from → the
# candidates, and → each frequency's prepared edition. Small: a tick meets one or two
# windows (daily, weekly) and an ingest or a moderator's hide or pin starts new ones.
_MEMO_SIZE = 8
_memo: OrderedDict[tuple[object, ...], object] = OrderedDict()

# Every visible paper of the window with its row version: xmin (the transaction that
# wrote the row) and ctid (where that version lies; a new one for every update, even in
# the same transaction). Any ingest, edit, hide, pin, merge or deletion changes the list.
_VERSIONS_SQL = (
    f"SELECT id, xmin::text, ctid::text FROM {Paper._meta.db_table} "
    "WHERE hidden_at IS NULL AND last_seen_at >= %s ORDER BY id"
)
_LAST_SIGHTING_SQL = f"SELECT max(id) FROM {Sighting._meta.db_table}"


def _remembered(key: tuple[object, ...] | None, build: Callable[[], T]) -> T:
    if key is None:
        return build()
    found = _memo.get(key)
    if found is None:
        found = _memo[key] = build()
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
    else:
        _memo.move_to_end(key)
    return found  # type: ignore[return-value]


def _version(since: datetime, now: datetime) -> tuple[object, ...] | None:
    """What the edition of the papers seen since ``since`` is built from, in one cheap
    key (PostgreSQL only; elsewhere None: built every time): the database, the day (the
    trend's age term), the latest sighting (upvote growth) and every visible paper's
    row version."""
    if db.vendor != "postgresql":
        return None
    with db.cursor() as cursor:
        cursor.execute(_VERSIONS_SQL, [since])
        versions = tuple(cursor.fetchall())
        cursor.execute(_LAST_SIGHTING_SQL)
        (last_sighting,) = cursor.fetchone()
    return (db.settings_dict["NAME"], now.date(), last_sighting, versions)


def _editions(
    subscribers: Sequence[Subscriber], now: datetime, lookback: timedelta | None = None
) -> dict[str, PreparedEdition]:
    """Each frequency of ``subscribers`` → its edition at ``now``: the visible papers seen
    within its window (or within ``lookback`` for every frequency), with their trends,
    prepared for matching. Built once per worker process while the papers stay the same
    (see :func:`_version`), so every chunk of a daily run shares the index, the trends,
    the upvote growth and each evaluated query.
    """
    frequencies = {s.frequency for s in subscribers}

    def window_of(frequency: str) -> timedelta:
        return window(frequency) if lookback is None else lookback

    widest = now - max(window_of(f) for f in frequencies)
    version = _version(widest, now)
    candidates = _remembered(
        None if version is None else ("candidates", version),
        lambda: _load_candidates(widest, now),
    )
    editions: dict[str, PreparedEdition] = {}
    for frequency in frequencies:
        since = now - window_of(frequency)
        papers = [c for c in candidates if c.last_seen_at is None or c.last_seen_at >= since]
        key = None if version is None else ("edition", version, tuple(c.id for c in papers))
        editions[frequency] = _remembered(key, partial(prepare_edition, papers))
    return editions


def _select(
    subscribers: Sequence[Subscriber], now: datetime, lookback: timedelta | None = None
) -> dict[int, list[Selection]]:
    """Each subscriber's papers for the edition at ``now``: one matching pass per
    frequency over the papers of its window (or of ``lookback``), skipping papers
    already sent to them, kept as each one's choices say (:func:`_carried`)."""
    editions = _editions(subscribers, now, lookback)
    candidate_ids = sorted({c.id for e in editions.values() for c in e.papers})
    ids = [s.pk for s in subscribers]
    excluded: dict[int, set[int]] = defaultdict(set)
    for sid, pid in DigestItem.objects.filter(
        subscriber_id__any=ids, paper_id__any=candidate_ids
    ).values_list("subscriber_id", "paper_id"):
        excluded[sid].add(pid)
    topic_ids: dict[int, list[int]] = defaultdict(list)
    for sid, tid in Subscriber.topics.through.objects.filter(subscriber_id__any=ids).values_list(
        "subscriber_id", "topic_id"
    ):
        topic_ids[sid].append(tid)
    wanted_topics = {t for ts in topic_ids.values() for t in ts}
    topics, similar = {}, []
    for pk, name, query, similarity in Topic.objects.filter(pk__in=wanted_topics).values_list(
        "pk", "name", "query", "similarity"
    ):
        topics[pk] = (name, query)
        if similarity is not None:
            similar.append(pk)
    # Papers that joined a topic by similarity (digest.matching.topics), by topic.
    semantic: dict[int, set[int]] = defaultdict(set)
    if similar:
        for tid, pid in Paper.topics.through.objects.filter(
            topic_id__any=similar, paper_id__any=candidate_ids
        ).values_list("topic_id", "paper_id"):
            semantic[tid].add(pid)
    filters: dict[int, list[str]] = defaultdict(list)
    for sid, query in Filter.objects.filter(subscriber_id__any=ids).values_list(
        "subscriber_id", "query"
    ):
        filters[sid].append(query)

    _refresh_stale_profiles(subscribers)
    learners = _learners(subscribers)
    vectors = _edition_vectors(candidate_ids) if learners else None
    suggestions = {s.pk: s.suggestions for s in subscribers}

    def select(
        group: Sequence[Subscriber], edition: PreparedEdition, limit: int
    ) -> dict[int, list[Selection]]:
        specs = [SubscriberSpec(s.pk, tuple(filters[s.pk]), tuple(topic_ids[s.pk])) for s in group]
        return select_for_subscribers(
            specs,
            edition,
            limit=limit,
            excluded=excluded,
            topics=topics,
            learners=learners,
            vectors=vectors,
            suggestions=suggestions,
            semantic=semantic,
        )

    selections: dict[int, list[Selection]] = {}
    for frequency, edition in editions.items():
        group = [s for s in subscribers if s.frequency == frequency]
        # One pass for the group at its largest papers per digest, each cut to its own.
        limit = max(s.max_papers for s in group)
        chosen = select(group, edition, limit)
        # Only strong matches: abstract-only papers may have taken the first pass's
        # places; a subscriber left short looks at every paper of the edition once more.
        short = [
            s
            for s in group
            if s.strong_only
            and len([c for c in chosen[s.pk] if not c.suggested]) >= limit
            and len(_carried(s, chosen[s.pk])) < s.max_papers
        ]
        if short:
            chosen.update(select(short, edition, max(len(edition.papers), 1)))
        selections.update({s.pk: _carried(s, chosen[s.pk]) for s in group})
    return selections


def _carried(subscriber: Subscriber, chosen: Sequence[Selection]) -> list[Selection]:
    """What the digest of ``subscriber`` carries of ``chosen`` (best first): strong
    matches only (a term in the title or authors) when ``strong_only``, at most
    ``max_papers``, then the "you may also like" papers; nothing when no match is left
    (pinned papers lead a digest and suggestions follow one; neither makes one on its
    own)."""
    matches = [c for c in chosen if not c.suggested]
    kept = [
        c for c in matches if not subscriber.strong_only or c.strong or c.reason == PINNED_REASON
    ]
    if all(c.reason == PINNED_REASON for c in kept):
        return []
    return kept[: subscriber.max_papers] + [c for c in chosen if c.suggested]


def _refresh_stale_profiles(subscribers: Sequence[Subscriber]) -> None:
    """Rebuild, now, the profiles older than their subscriber's latest vote (a vote
    written without the model's signals, or whose rebuild task has not run yet), and
    update ``subscribers`` in place. One query for the chunk; a rebuild is rare."""
    latest = dict(
        Feedback.objects.filter(subscriber_id__any=[s.pk for s in subscribers])
        .values("subscriber_id")
        .annotate(latest=Max("updated_at"))
        .values_list("subscriber_id", "latest")
    )
    for subscriber in subscribers:
        voted = latest.get(subscriber.pk)
        built = subscriber.profile_updated_at
        if voted is not None and (built is None or built < voted):
            rebuild_profile(subscriber.pk)
            subscriber.profile, subscriber.profile_updated_at = Subscriber.objects.values_list(
                "profile", "profile_updated_at"
            ).get(pk=subscriber.pk)


def _learners(subscribers: Sequence[Subscriber]) -> dict[int, Learner]:
    """Subscriber id → what planning knows of their taste, for those with a profile
    (:mod:`digest.relevance.profile`): one query for the votes of all of them."""
    profiles = {
        s.pk: from_bytes(s.profile, DIMENSIONS) for s in subscribers if len(s.profile or b"")
    }
    if not profiles:
        return {}
    votes: dict[int, list[tuple[int, int, str, str, bytes | memoryview | None]]]
    votes = defaultdict(list)
    for sid, pid, vote, source, title, vector, model in Feedback.objects.filter(
        subscriber_id__any=list(profiles)
    ).values_list(
        "subscriber_id",
        "paper_id",
        "vote",
        "source",
        "paper__title",
        "paper__embedding__vector",
        "paper__embedding__model",
    ):
        votes[sid].append((pid, vote, source, title, vector if model in READABLE_MODELS else None))
    learners = {}
    for sid, profile in profiles.items():
        mine = votes.get(sid, [])
        liked = [v for v in mine if v[1] > 0 and v[4] is not None]
        disliked = [v for v in mine if v[1] < 0 and v[4] is not None]
        learners[sid] = Learner(
            profile=profile,
            liked=stack([from_bytes(v[4] or b"", DIMENSIONS) for v in liked], DIMENSIONS),
            liked_titles=tuple(v[3] for v in liked),
            liked_how=tuple("picked" if v[2] == Feedback.PICKED else "liked" for v in liked),
            disliked=stack([from_bytes(v[4] or b"", DIMENSIONS) for v in disliked], DIMENSIONS),
            voted=frozenset(v[0] for v in mine),
        )
    return learners


def _edition_vectors(paper_ids: list[int]) -> EditionVectors:
    """The embeddings of the edition's papers, loaded once per worker process while the
    papers and their embeddings stay the same (:func:`_remembered`)."""
    count = PaperEmbedding.objects.filter(paper_id__any=paper_ids, model=MODEL_NAME).count()
    key = ("vectors", db.settings_dict["NAME"], tuple(paper_ids), count)

    def build() -> EditionVectors:
        ids, matrix = load_vectors(paper_ids)
        return EditionVectors(tuple(ids), matrix)

    return _remembered(key if db.vendor == "postgresql" else None, build)


def plan_digests(
    subscribers: Sequence[Subscriber],
    now: datetime,
    *,
    period: str | None = None,
    lookback: timedelta | None = None,
) -> dict[int, Digest]:
    """Claim this period's digest of each subscriber and choose its papers, once.

    The rows are inserted if absent in one statement; matching runs once for the batch,
    outside any lock; the choices are recorded under the row locks, skipping rows another
    worker is planning. Returns subscriber id → digest. A digest with nothing matched is
    ``empty`` — or ``pending`` with no papers when the subscriber wants the "nothing
    matched" note (:attr:`Subscriber.wants_empty_notes`), which it then sends. Planning
    again in the same period changes nothing.

    ``period`` names an edition outside the schedule for every subscriber (the welcome
    digest, one asked for: :mod:`digest.delivery.extra`) instead of each one's
    :meth:`~Subscriber.period_key`; it looks back over ``lookback`` instead of each
    frequency's window, and sends its note when nothing matched unless the subscriber
    reads the feed only. Its papers are recorded as any edition's, so the scheduled
    digest never carries them again.

    One subscriber never stops the others: a subscriber whose matching or recording
    fails gets a ``failed`` digest with the error in ``last_error`` (logged as
    ``digest_plan_failed``) and the rest are planned. Errors of the database itself
    (:class:`django.db.DatabaseError` while matching, a lost connection) propagate.
    """
    if not subscribers:
        return {}
    periods = {s.pk: period or s.period_key(now) for s in subscribers}
    Digest.objects.bulk_create(
        [Digest(subscriber_id=pk, period=period) for pk, period in periods.items()],
        ignore_conflicts=True,
    )
    digests = {
        d.subscriber_id: d
        for d in Digest.objects.filter(
            subscriber_id__any=list(periods), period__in=set(periods.values())
        )
        if d.period == periods[d.subscriber_id]
    }
    unplanned = [
        s
        for s in subscribers
        if digests[s.pk].status == Digest.PENDING and digests[s.pk].planned_at is None
    ]
    if unplanned:
        selections, errors = _select_isolated(unplanned, now, lookback)
        notes = {
            s.pk: not s.feed_only if period is not None else s.wants_empty_notes for s in unplanned
        }
        digests.update(_record_plans(unplanned, digests, selections, errors, notes, now))
    return digests


def _select_isolated(
    subscribers: Sequence[Subscriber], now: datetime, lookback: timedelta | None = None
) -> tuple[dict[int, list[Selection]], dict[int, str]]:
    """:func:`_select` for the batch; when it raises, the batch is halved until the
    subscribers that fail are alone (a few extra passes per failing subscriber).
    Returns the selections and subscriber id → error of those that failed."""
    try:
        return _select(subscribers, now, lookback), {}
    except DatabaseError:
        raise
    except Exception as exc:
        if len(subscribers) == 1:
            return {}, {subscribers[0].pk: error_text(exc)}
    half = len(subscribers) // 2
    chosen, errors = _select_isolated(subscribers[:half], now, lookback)
    more, more_errors = _select_isolated(subscribers[half:], now, lookback)
    return {**chosen, **more}, {**errors, **more_errors}


def bounded_reason(reason: str, limit: int = DigestItem.REASON_MAX_CHARS) -> str:
    """``reason`` cut at the last word boundary within ``limit`` characters, with "…"
    (unchanged when it fits)."""
    if len(reason) <= limit:
        return reason
    cut = reason[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;") + "…"


def _record_plans(
    subscribers: Sequence[Subscriber],
    digests: dict[int, Digest],
    selections: dict[int, list[Selection]],
    errors: dict[int, str],
    notes: dict[int, bool],
    now: datetime,
) -> dict[int, Digest]:
    with transaction.atomic():
        if db.vendor == "postgresql":
            # Foreign keys are checked at each statement, not at commit, so a paper
            # deleted meanwhile fails its digest's insert below, not the whole commit.
            with db.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        locked = list(
            Digest.objects.select_for_update(skip_locked=True).filter(
                pk__any=[digests[s.pk].pk for s in subscribers],
                status=Digest.PENDING,
                planned_at__isnull=True,
            )
        )
        rows: dict[int, list[tuple[int, int, int, int, str, bool]]] = {}
        for digest in locked:
            digest.planned_at = now
            digest.message_id = new_message_id()
            if digest.subscriber_id in errors:
                _mark_plan_failed(digest, errors[digest.subscriber_id])
                continue
            chosen = selections.get(digest.subscriber_id, [])
            if not chosen and not notes.get(digest.subscriber_id, False):
                digest.status = Digest.EMPTY
            rows[digest.pk] = [
                (
                    digest.pk,
                    digest.subscriber_id,
                    s.paper_id,
                    rank,
                    bounded_reason(s.reason),
                    s.suggested,
                )
                for rank, s in enumerate(chosen, 1)
            ]
        try:
            with transaction.atomic():  # a savepoint: a failed insert keeps the locks
                _insert_items([row for items in rows.values() for row in items])
        except DatabaseError:
            if not db.is_usable():
                raise
            # One digest's papers made the batch fail (a paper deleted meanwhile…): each
            # digest on its own, so only that one fails.
            for digest in locked:
                try:
                    with transaction.atomic():
                        _insert_items(rows.get(digest.pk, []))
                except DatabaseError as exc:
                    if not db.is_usable():
                        raise
                    _mark_plan_failed(digest, error_text(exc))
        with db.cursor() as cursor:  # bulk_update's CASE per row costs ~1 ms a digest
            cursor.executemany(
                f"UPDATE {_TABLE} SET planned_at = %s, message_id = %s, status = %s, "
                "last_error = %s WHERE id = %s",
                [(d.planned_at, d.message_id, d.status, d.last_error, d.pk) for d in locked],
            )
    return {d.subscriber_id: d for d in locked}


def _mark_plan_failed(digest: Digest, error: str) -> None:
    digest.status, digest.last_error = Digest.FAILED, error
    log.error(
        "digest_plan_failed digest_id=%s subscriber_id=%s error=%s",
        digest.pk,
        digest.subscriber_id,
        error[:500],
    )


def _insert_items(items: list[tuple[int, int, int, int, str, bool]]) -> None:
    """The digests' papers as plain rows, not models: ten per digest, where the ORM cost
    ~0.25 ms a digest. A paper recorded meanwhile in another edition of the same
    subscriber is skipped."""
    if not items:
        return
    with db.cursor() as cursor:
        if db.vendor == "postgresql":  # one statement of five arrays
            cursor.execute(_ITEMS_SQL, [list(column) for column in zip(*items, strict=True)])
        else:
            cursor.executemany(_ITEM_SQL, items)


def plan_digest(subscriber: Subscriber, now: datetime) -> Digest:
    """:func:`plan_digests` for one subscriber."""
    return plan_digests([subscriber], now)[subscriber.pk]
