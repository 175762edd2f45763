"""Store parsed pages: one :class:`IngestRun` per page, papers upserted in bulk.

A page is stored atomically (all of its papers or none). A paper already known — by
arXiv id, or by normalised title when no id is known — is updated (upvotes, last seen,
details the new source adds), never duplicated. Each run records every paper's upvotes
as a :class:`Sighting`, so upvote growth between ingests can be measured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .models import IngestRun, Paper, Sighting
from .parsers import ParsedPaper, ParseError, normalise_title, parse_page

log = logging.getLogger(__name__)

__all__ = ["PageResult", "ingest_bytes", "ingest_source", "read_source", "store_papers"]

# Fields a later, richer source may fill in on an existing row.
_FILLABLE = ("authors", "authors_count", "published_on")


@dataclass
class PageResult:
    """The outcome of ingesting one page, as ``ingest --json`` reports it."""

    source: str
    format: str
    papers: int = 0
    new: int = 0
    updated: int = 0
    error: str | None = None
    run_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "format": self.format,
            "papers": self.papers,
            "new": self.new,
            "updated": self.updated,
            "error": self.error,
        }


def _identity(paper: ParsedPaper) -> str:
    return f"arxiv:{paper.arxiv_id}" if paper.arxiv_id else f"title:{normalise_title(paper.title)}"


def store_papers(papers: Iterable[ParsedPaper], run: IngestRun, now: datetime) -> tuple[int, int]:
    """Upsert ``papers`` and record a sighting of each in ``run``.

    Returns ``(new, updated)`` counts of distinct papers. Runs a constant number of
    queries whatever the page size. Call inside a transaction.
    """
    unique: dict[str, ParsedPaper] = {}
    for parsed in papers:
        unique.setdefault(_identity(parsed), parsed)
    if not unique:
        return 0, 0

    ids = {p.arxiv_id for p in unique.values() if p.arxiv_id}
    keys = {normalise_title(p.title) for p in unique.values()}
    by_arxiv: dict[str, Paper] = {}
    by_title: dict[str, Paper] = {}
    for row in Paper.objects.filter(Q(arxiv_id__in=ids) | Q(title_key__in=keys)):
        if row.arxiv_id:
            by_arxiv[row.arxiv_id] = row
        # A row without an id is the one a new id should merge into.
        if row.title_key not in by_title or not row.arxiv_id:
            by_title[row.title_key] = row

    created: list[Paper] = []
    updated: dict[int, Paper] = {}
    sightings: list[tuple[Paper, int | None]] = []
    for parsed in unique.values():
        key = normalise_title(parsed.title)
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
                upvotes=parsed.upvotes or 0,
                first_seen_at=now,
                last_seen_at=now,
            )
            created.append(row)
            by_title[key] = row
            if parsed.arxiv_id:
                by_arxiv[parsed.arxiv_id] = row
        else:
            _merge(row, parsed, now)
            updated[row.pk] = row
        sightings.append((row, parsed.upvotes))

    Paper.objects.bulk_create(created)
    if updated:
        Paper.objects.bulk_update(
            list(updated.values()),
            ["arxiv_id", "upvotes", "last_seen_at", "abstract", *_FILLABLE],
        )
    Sighting.objects.bulk_create(
        [Sighting(paper=row, run=run, upvotes=upvotes, seen_at=now) for row, upvotes in sightings],
        ignore_conflicts=True,
    )
    return len(created), len(updated)


def _merge(row: Paper, parsed: ParsedPaper, now: datetime) -> None:
    if parsed.arxiv_id and not row.arxiv_id:
        row.arxiv_id = parsed.arxiv_id
    if parsed.upvotes is not None:
        row.upvotes = parsed.upvotes
    row.last_seen_at = now
    if parsed.authors and not row.authors:
        row.authors = list(parsed.authors)
    if row.authors_count is None:
        row.authors_count = parsed.authors_count or (len(parsed.authors) or None)
    if row.published_on is None:
        row.published_on = parsed.published_on
    if not row.abstract and parsed.abstract:
        row.abstract = parsed.abstract


def ingest_bytes(
    data: bytes | str, *, source: str, format: str | None = None, now: datetime | None = None
) -> PageResult:
    """Parse and store one page, recording an :class:`IngestRun`.

    Never raises for bad input: a :class:`ParseError` or a database conflict is recorded
    in the run and returned in ``PageResult.error``; nothing of the page is stored then.
    """
    now = now or timezone.now()
    run = IngestRun.objects.create(source=source[:2000], format=format or "", started_at=now)
    result = PageResult(source=source, format=format or "", run_id=run.pk)
    try:
        page = parse_page(data, source=source, format=format, today=timezone.localdate(now))
    except ParseError as exc:
        return _fail(run, result, str(exc))
    result.format = run.format = page.format
    result.papers = run.papers_parsed = len(page.papers)
    run.page_date = page.page_date
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                result.new, result.updated = store_papers(page.papers, run, now)
            break
        except IntegrityError as exc:
            # Another worker stored one of these papers meanwhile: the retry sees its row.
            if attempt == 2:
                return _fail(run, result, f"{source}: could not store papers: {exc}")
    run.papers_new, run.papers_updated = result.new, result.updated
    run.status = IngestRun.OK
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
    run.status = IngestRun.FAILED
    run.error = error
    run.finished_at = timezone.now()
    run.save()
    log.warning("ingest_run run_id=%s source=%s failed: %s", run.pk, run.source, error)
    return result


def read_source(source: str) -> bytes:
    """The bytes of a file path or an ``http(s)://`` URL.

    Raises :class:`ParseError` when the file cannot be read or the URL fetched.
    """
    if source.startswith(("http://", "https://")):
        from .fetch import FetchError, fetch

        try:
            response = fetch(source)
        except FetchError as exc:
            raise ParseError(str(exc), source=source) from None
        return response.content or b""
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror}", source=source) from None


def ingest_source(source: str, *, format: str | None = None) -> PageResult:
    """Read a file path or URL and ingest it. Never raises for bad input."""
    try:
        data = read_source(source)
    except ParseError as exc:
        run = IngestRun.objects.create(source=source[:2000], format=format or "")
        return _fail(run, PageResult(source=source, format=format or "", run_id=run.pk), str(exc))
    return ingest_bytes(data, source=source, format=format)
