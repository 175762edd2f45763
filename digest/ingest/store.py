"""Store parsed pages: one :class:`IngestRun` per page, papers upserted in bulk.

A page is stored atomically (all of its papers or none). A paper already known — by
arXiv id (version dropped), or by normalised title when no id is known — is updated
(upvotes, last seen, details the new source adds), never duplicated, whichever of
Hugging Face and arXiv showed it first (:func:`_merge` says which source gives what).
Each run records every paper's upvotes as a :class:`Sighting`, so upvote growth between
ingests can be measured (:func:`digest.matching.trend.upvote_growth`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from digest.formats import FORMATS
from digest.ingest.parsers import Paging, ParsedPaper, ParseError, normalise_title, parse_page
from digest.ingest.parsers.detect import MAX_PAGE_BYTES
from digest.matching.engine import PaperText, tag_papers
from digest.models import IngestRun, Paper, Sighting, Source, Topic

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ANNOUNCE_TYPES",
    "PageResult",
    "failed_run",
    "ingest_bytes",
    "ingest_source",
    "read_source",
    "select_entries",
    "store_papers",
    "tag_topics",
]

DEFAULT_ANNOUNCE_TYPES = frozenset({"new", "cross"})
"""Announcements taken when a source does not say: new papers and cross-lists, not
replacements (a new version of a paper already announced)."""

# Every field an update may change; see _merge for which source wins.
_UPDATED_FIELDS = [
    "arxiv_id",
    "upvotes",
    "last_seen_at",
    "abstract",
    "authors",
    "authors_count",
    "published_on",
    "num_comments",
    "ai_keywords",
    "ai_summary",
    "github_repo",
    "project_page",
    "title",
    "title_key",
    "categories",
    "arxiv_version",
    "comment",
    "journal_ref",
    "doi",
    "origins",
]
_URL_PREFIXES = ("https://", "http://")
_URL_MAX = 500  # Paper.github_repo and Paper.project_page
_JOURNAL_REF_MAX = 500  # Paper.journal_ref
_DOI_MAX = 200  # Paper.doi


def _doi(value: str) -> str:
    """A DOI that fits its column whole, else ``""`` (a DOI cut short would name another)."""
    return value if len(value) <= _DOI_MAX else ""


@dataclass
class PageResult:
    """The outcome of ingesting one page, as ``ingest --json`` reports it.

    ``status`` is the run's (:attr:`IngestRun.status`) and ``paging`` the page's place
    in a longer arXiv answer (:class:`~digest.ingest.parsers.base.Paging`); neither is
    part of the JSON summary, whose shape stays ``{"source", "format", "papers", "new", "updated",
    "error"}``.
    """

    source: str
    format: str
    papers: int = 0
    new: int = 0
    updated: int = 0
    error: str | None = None
    run_id: int | None = None
    status: str = IngestRun.RUNNING
    paging: Paging | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "format": self.format,
            "papers": self.papers,
            "new": self.new,
            "updated": self.updated,
            "error": self.error,
        }


def _web_url(value: str) -> str:
    """``value`` when it is an http(s) URL that fits the column, else ``""``: these are
    rendered as links, and a ``javascript:`` URL in an ``href`` runs when clicked, which
    HTML escaping does not prevent."""
    if value.startswith(_URL_PREFIXES) and len(value) <= _URL_MAX and " " not in value:
        return value
    return ""


def select_entries(
    papers: Sequence[ParsedPaper],
    *,
    announce_types: frozenset[str] = DEFAULT_ANNOUNCE_TYPES,
    categories: Sequence[str] = (),
) -> list[ParsedPaper]:
    """The entries of a page a source takes, in order.

    An announcement (``announce_type`` set) is kept when its type is in
    ``announce_types`` (empty: every type). When ``categories`` are given, a paper that
    lists categories is kept when one of them is named there, or lies in an archive named
    there (``cs`` takes ``cs.CL``); papers without categories (Hugging Face pages) are
    always kept.
    """
    wanted = {c.lower() for c in categories}
    archives = tuple(c + "." for c in wanted if "." not in c)
    kept = []
    for paper in papers:
        if announce_types and paper.announce_type and paper.announce_type not in announce_types:
            continue
        if wanted and paper.categories:
            names = [c.lower() for c in paper.categories]
            if not any(n in wanted or n.startswith(archives) for n in names):
                continue
        kept.append(paper)
    return kept


def store_papers(
    papers: Iterable[ParsedPaper], run: IngestRun, now: datetime, *, origin: str = ""
) -> tuple[int, int]:
    """Upsert ``papers`` and record a sighting of each in ``run``; ``origin`` is where
    the page came from (:attr:`digest.formats.PageFormat.origin`), added to each paper's
    ``origins``.

    Returns ``(new, updated)`` counts of distinct papers. Runs a constant number of
    queries whatever the page size. Call inside a transaction.
    """
    # (paper, its title key) by identity; the key is computed once per paper.
    unique: dict[str, tuple[ParsedPaper, str]] = {}
    for parsed in papers:
        key = normalise_title(parsed.title)
        identity = f"arxiv:{parsed.arxiv_id}" if parsed.arxiv_id else f"title:{key}"
        unique.setdefault(identity, (parsed, key))
    if not unique:
        return 0, 0

    ids = {p.arxiv_id for p, _ in unique.values() if p.arxiv_id}
    keys = {key for _, key in unique.values()}
    by_arxiv: dict[str, Paper] = {}
    by_title: dict[str, Paper] = {}
    for known in Paper.objects.filter(Q(arxiv_id__in=ids) | Q(title_key__in=keys)):
        if known.arxiv_id:
            by_arxiv[known.arxiv_id] = known
        # A row without an id is the one a new id should merge into.
        if known.title_key not in by_title or not known.arxiv_id:
            by_title[known.title_key] = known

    created: list[Paper] = []
    updated: dict[int, Paper] = {}
    sightings: list[tuple[Paper, int | None]] = []
    for parsed, key in unique.values():
        row = by_arxiv.get(parsed.arxiv_id) if parsed.arxiv_id else None
        if row is None:
            candidate = by_title.get(key)
            if candidate is not None and (
                not parsed.arxiv_id
                or not candidate.arxiv_id
                or candidate.arxiv_id == parsed.arxiv_id
            ):
                row = candidate
        if row is None:
            row = Paper(
                arxiv_id=parsed.arxiv_id,
                title=parsed.title,
                title_key=key,
                abstract=parsed.abstract,
                authors=list(parsed.authors),
                authors_count=parsed.authors_count
                if parsed.authors_count is not None
                else (len(parsed.authors) or None),
                published_on=parsed.published_on,
                upvotes=parsed.upvotes,
                num_comments=parsed.num_comments,
                ai_keywords=list(parsed.ai_keywords),
                ai_summary=parsed.ai_summary,
                github_repo=_web_url(parsed.github_repo),
                project_page=_web_url(parsed.project_page),
                categories=list(parsed.categories),
                arxiv_version=parsed.version,
                comment=parsed.comment,
                journal_ref=parsed.journal_ref[:_JOURNAL_REF_MAX],
                doi=_doi(parsed.doi),
                origins=[origin] if origin else [],
                first_seen_at=now,
                last_seen_at=now,
            )
            created.append(row)
            by_title[key] = row
            if parsed.arxiv_id:
                by_arxiv[parsed.arxiv_id] = row
        elif row.pk is None:
            # Two entries of this page are one paper (an id on one, only the title on
            # the other): the row is not stored yet, so merge into the pending insert.
            _merge(row, parsed, key, now, origin)
        else:
            _merge(row, parsed, key, now, origin)
            updated[row.pk] = row
        sightings.append((row, parsed.upvotes))

    Paper.objects.bulk_create(created)
    if updated:
        # One INSERT … ON CONFLICT (id) DO UPDATE of the changed columns: far cheaper to
        # build and run than bulk_update's CASE WHEN per column and row. (A row deleted
        # since it was read above is inserted again, as this page shows it.)
        Paper.objects.bulk_create(
            list(updated.values()),
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=_UPDATED_FIELDS,
        )
    # One sighting per paper and run, even when two entries of the page merged into one.
    seen: dict[int, Sighting] = {}
    for row, upvotes in sightings:
        if id(row) not in seen or upvotes is not None:
            seen[id(row)] = Sighting(paper=row, run=run, upvotes=upvotes, seen_at=now)
    Sighting.objects.bulk_create(list(seen.values()))
    return len(created), len(updated)


def tag_topics(paper_ids: Sequence[int]) -> int:
    """Tag the papers ``paper_ids`` with every topic whose query matches them
    (:func:`digest.matching.engine.tag_papers`: each paper read once, each topic query evaluated
    once). Existing tags stay. Returns how many tags the papers now have from topics."""
    topics = dict(Topic.objects.exclude(query="").values_list("pk", "query"))
    if not topics or not paper_ids:
        return 0
    texts = [
        PaperText(pk, title, abstract, tuple(authors or ()), categories=tuple(categories or ()))
        for pk, title, abstract, authors, categories in Paper.objects.filter(
            pk__in=paper_ids
        ).values_list("pk", "title", "abstract", "authors", "categories")
    ]
    links = [
        (paper_id, topic_id)
        for topic_id, tagged in tag_papers(topics, texts).items()
        for paper_id in tagged
    ]
    if not links:
        return 0
    # Plain rows, not model instances: an arXiv day tags tens of thousands of pairs, and
    # building and binding a model per pair cost seconds.
    table = Paper.topics.through._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one statement of two arrays
            # Ids sent as two comma-separated strings: psycopg adapts a list of ints one
            # element at a time in Python, the server splits a string far faster.
            cursor.execute(
                f"INSERT INTO {table} (paper_id, topic_id) "
                "SELECT * FROM unnest(string_to_array(%s, ',')::bigint[], "
                "string_to_array(%s, ',')::bigint[]) ON CONFLICT DO NOTHING",
                [",".join(str(p) for p, _ in links), ",".join(str(t) for _, t in links)],
            )
        else:
            cursor.executemany(
                f"INSERT INTO {table} (paper_id, topic_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                links,
            )
    return len(links)


def _merge(row: Paper, parsed: ParsedPaper, key: str, now: datetime, origin: str) -> None:
    """Update ``row`` from a new sighting (``key``: the title key of ``parsed``).

    Counts that change over time (upvotes, comments) and details only richer sources
    give (author names, keywords, links, Hugging Face's AI summary) take the new value
    when the source shows one; facts a poorer source may lack (abstract, author count,
    publication date) are only filled in. A newer arXiv version than the one recorded
    (or the first version seen) replaces the title and abstract and is recorded; arXiv's
    categories, comment, journal reference and DOI are taken from any version not older
    than the recorded one. No source erases what another gave: an empty value never
    replaces a stored one, and Hugging Face pages (no version) never change the title.
    """
    known = row.arxiv_version or 0
    if parsed.version is not None and parsed.version > known:
        row.arxiv_version = parsed.version
        if parsed.title != row.title:
            row.title, row.title_key = parsed.title, key
        if parsed.abstract:
            row.abstract = parsed.abstract
    if parsed.version is None or parsed.version >= known:
        if parsed.categories:
            row.categories = list(parsed.categories)
        if parsed.comment:
            row.comment = parsed.comment
        if parsed.journal_ref:
            row.journal_ref = parsed.journal_ref[:_JOURNAL_REF_MAX]
        if doi := _doi(parsed.doi):
            row.doi = doi
    if origin and origin not in row.origins:
        row.origins = [*row.origins, origin]
    if parsed.arxiv_id and not row.arxiv_id:
        row.arxiv_id = parsed.arxiv_id
    if parsed.upvotes is not None:
        row.upvotes = parsed.upvotes
    if parsed.num_comments is not None:
        row.num_comments = parsed.num_comments
    row.last_seen_at = now
    if parsed.authors:
        row.authors = list(parsed.authors)
    if row.authors_count is None:
        row.authors_count = parsed.authors_count or (len(parsed.authors) or None)
    if row.published_on is None:
        row.published_on = parsed.published_on
    if not row.abstract and parsed.abstract:
        row.abstract = parsed.abstract
    if parsed.ai_keywords:
        row.ai_keywords = list(parsed.ai_keywords)
    if parsed.ai_summary:
        row.ai_summary = parsed.ai_summary
    if github_repo := _web_url(parsed.github_repo):
        row.github_repo = github_repo
    if project_page := _web_url(parsed.project_page):
        row.project_page = project_page


def _check_sizes(papers: list[ParsedPaper], source: str) -> None:
    """Raise :class:`ParseError` for a paper whose title or arXiv id cannot be stored
    whole, rather than cut it (the title is the identity of a paper without an id)."""
    title_max = Paper.title.field.max_length or 0
    id_max = Paper.arxiv_id.field.max_length or 0
    for index, paper in enumerate(papers):
        if len(paper.title) > title_max:
            raise ParseError(
                f"paper {index}: title is {len(paper.title):,} characters, "
                f"more than the {title_max:,} stored",
                source=source,
            )
        if paper.arxiv_id and len(paper.arxiv_id) > id_max:
            raise ParseError(
                f"paper {index}: arXiv id {paper.arxiv_id[:40]!r} is too long", source=source
            )


def ingest_bytes(
    data: bytes | str,
    *,
    source: str,
    format: str | None = None,
    now: datetime | None = None,
    from_source: Source | None = None,
) -> PageResult:
    """Parse and store one page, recording an :class:`IngestRun` (linked to
    ``from_source`` when the page was fetched for a scheduled :class:`Source`).

    Of an arXiv page, only the entries the source takes are stored
    (:func:`select_entries` with the source's announcement types and categories;
    without a source, new papers and cross-lists of every category). The result's
    ``paging`` tells where the page sits in a longer arXiv answer.

    Never raises for bad input: a :class:`ParseError` (empty, binary, oversized or
    undecodable data, a page its parser cannot read, a page without papers) or a
    database error is recorded in the run and returned in ``PageResult.error``;
    nothing of the page is stored then.
    """
    now = now or timezone.now()
    run = IngestRun.objects.create(
        source=source[:2000], from_source=from_source, format=format or "", started_at=now
    )
    result = PageResult(source=source, format=format or "", run_id=run.pk)
    try:
        page = parse_page(data, source=source, format=format, today=timezone.localdate(now))
        result.format = run.format = page.format
        if not page.papers:
            raise ParseError("no papers found on the page", source=source)
        _check_sizes(page.papers, source)
    except ParseError as exc:
        return _fail(run, result, str(exc))
    result.paging = page.paging
    result.papers = run.papers_parsed = len(page.papers)
    run.page_date = page.page_date
    taken = select_entries(
        page.papers,
        announce_types=from_source.announce_type_set() if from_source else DEFAULT_ANNOUNCE_TYPES,
        categories=from_source.category_list() if from_source else (),
    )
    origin = FORMATS[page.format].origin
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                result.new, result.updated = store_papers(taken, run, now, origin=origin)
                tag_topics(list(run.sightings.values_list("paper_id", flat=True)))
            break
        except IntegrityError as exc:
            # Another worker stored one of these papers meanwhile: the retry sees its row.
            if attempt == 2:
                return _fail(run, result, f"{source}: could not store papers: {exc}")
        except DatabaseError as exc:
            # A value the database refuses (e.g. a NUL character in PostgreSQL text).
            return _fail(run, result, f"{source}: could not store papers: {exc}")
    run.papers_new, run.papers_updated = result.new, result.updated
    result.status = run.status = IngestRun.OK
    run.finished_at = timezone.now()
    run.save()
    log.info(
        "ingest_run run_id=%s source=%s format=%s parsed=%s new=%s updated=%s",
        run.pk,
        source,
        page.format,
        result.papers,
        result.new,
        result.updated,
    )
    return result


def _fail(run: IngestRun, result: PageResult, error: str) -> PageResult:
    result.error = error
    result.status = run.status = IngestRun.FAILED
    run.error = error
    run.finished_at = timezone.now()
    run.save()
    log.warning("ingest_run run_id=%s source=%s failed: %s", run.pk, run.source, error)
    return result


def failed_run(
    source: str,
    error: str,
    *,
    format: str | None = None,
    from_source: Source | None = None,
    started_at: datetime | None = None,
) -> PageResult:
    """Record a page that could not even be read (missing file, failed fetch) as a
    failed :class:`IngestRun` and return its result."""
    run = IngestRun.objects.create(
        source=source[:2000],
        from_source=from_source,
        format=format or "",
        started_at=started_at or timezone.now(),
    )
    return _fail(run, PageResult(source=source, format=format or "", run_id=run.pk), error)


def read_source(source: str, *, max_bytes: int = MAX_PAGE_BYTES) -> bytes:
    """The bytes of a file path or an ``http(s)://`` URL, at most ``max_bytes`` long.

    Raises :class:`ParseError` (``"<source>: <reason>"``) when the file cannot be read or
    is larger than ``max_bytes``, or when the URL cannot be fetched
    (:func:`digest.ingest.fetch.fetch`: after its retries, or a body over the limit).
    """
    if source.startswith(_URL_PREFIXES):
        from digest.ingest.fetch import FetchError, fetch

        try:
            response = fetch(
                source,
                max_bytes=max_bytes,
                allow_private=settings.FETCH_ALLOW_PRIVATE_ADDRESSES,
                deadline=settings.FETCH_DEADLINE,
            )
        except FetchError as exc:
            # exc names the URL too; the ParseError adds it once.
            raise ParseError(exc.reason, source=source) from None
        return response.content or b""
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            # Refused before reading, so a huge file is never held in memory.
            raise ParseError(
                f"file is {size:,} bytes, more than the {max_bytes:,}-byte limit", source=source
            )
        return path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror}", source=source) from None


def ingest_source(source: str, *, format: str | None = None) -> PageResult:
    """Read a file path or URL and ingest it. Never raises for bad input."""
    started_at = timezone.now()
    try:
        data = read_source(source)
    except ParseError as exc:
        return failed_run(source, str(exc), format=format, started_at=started_at)
    return ingest_bytes(data, source=source, format=format)
